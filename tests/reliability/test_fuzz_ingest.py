"""Fuzzing the trainer ingest websocket `/ws/ingest/{run_id}` of hand-fed runs (hypothesis).

One real backend (`causalwatch up`, SQLite file) for the module; each run here is of kind sdk
(no trainer of ours), so every frame it gets is ours. Properties,
for every generated input:

- the server stays up: /healthz answers 200 after each example;
- every frame gets exactly one answer, in order — an ack or an error frame, with the `seq` of
  the message it answers (None when the frame was not a JSON object) — or the connection is
  closed with a documented code (1007 invalid UTF-8, 1009 frame above uvicorn's 2 MiB
  `ws_max_size`, 4404 unknown run); an error frame names what was wrong, field first;
- the run goes on: a valid record sent after the example is acked and stored;
- nothing malformed is stored: GET /api/runs/{id}/metrics holds exactly the epochs acked as
  valid, each equal to the record validation of what was sent (the first one for an epoch
  sent twice), each validating as trainer.protocol.PartialEpochRecord, what an sdk run's
  records are (any metric may be absent; a custom dict of the loop's own numbers).

The expected answer comes from `expect()`, a model of the protocol (trainer/protocol.py and
DESIGN.md), not from the server.

The bugs the fuzzers found are pinned by the tests at the end: integers beyond SQLite's
64-bit range where they reach the database (a record bounced as "database busy", a graph
never answered), `started` data whose `stats` the red-flag rules could not read (never
answered, the run's ingest wedged), and unknown run ids whose close reason is over 125 UTF-8
bytes (handler crash instead of 4404).

Floods: 2,000 frames pipelined on one connection, and 10 connections at once (2 per run,
sending the same epochs) — every answer in order, every epoch stored once.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from utils.backend_server import BackendServer
from utils.records import epoch_record
from utils.records import message as envelope
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from trainer.config import TrainConfig
from trainer.protocol import MAX_INT, MESSAGE_TYPES, GraphSnapshot, StartedData
from trainer.protocol import PartialEpochRecord as EpochRecord

EPOCHS = 100_000  # the config maximum: every example gets fresh epoch numbers
PLAN = TrainConfig(dataset="synthetic", epochs=EPOCHS)  # the hand-fed runs' evaluation epochs
MAX_FRAME_CHARS = 1_000_000  # backend/api/ws.py MAX_FRAME_BYTES (it counts characters)
WS_MAX_SIZE = 2**21  # backend/cli.py: uvicorn's ws_max_size
INT64 = (-(2**63), 2**63 - 1)
TYPES = MESSAGE_TYPES  # any other type (PAYLOADS tries "alert") is refused
RECORD_FIELDS = list(EpochRecord.model_fields)
INT_FIELDS = [n for n, f in EpochRecord.model_fields.items() if "int" in str(f.annotation)]
REPLY_TIMEOUT = 10.0

SETTINGS = settings(
    deadline=None, derandomize=True, database=None,
    # the function-scoped fixture is the example's run: one per test function, on purpose
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
COUNTS: Counter[str] = Counter()  # examples and frames per test, printed at the end


# --- a model of the protocol -----------------------------------------------------------------


class Model:
    """What the server should hold: run id → epoch → stored record."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[int, dict[str, Any]]] = {}
        self.next_epoch: dict[str, int] = {}
        self.closed: set[str] = set()  # runs whose finished/failed message was acked
        self.variables: dict[str, int] = {}  # how many variables a run's started data named

    def epoch(self, run_id: str) -> int:
        self.next_epoch[run_id] = self.next_epoch.get(run_id, 0) + 1
        return self.next_epoch[run_id]


MODEL = Model()


def valid_record(run_id: str, epoch: int, **fields: Any) -> dict[str, Any]:
    """A valid record, unless `epoch` or `fields` make it otherwise (the factory validates,
    so an out-of-range epoch is set after it)."""
    return {**epoch_record(1, run_id), "epoch": epoch, **fields}


def _int_seq(seq: Any) -> bool:
    return isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0


def expect(run_id: str, frame: str | bytes) -> tuple[str, Any, Any]:
    """(kind, seq, detail) the protocol prescribes for one frame; kind is "ack", "error" or
    "close"; for an acked epoch, detail is the record as it must be stored."""
    if isinstance(frame, bytes):
        return "error", None, "text"
    if len(frame.encode("utf-8", "surrogatepass")) > WS_MAX_SIZE:
        return "close", 1009, None
    if len(frame) > MAX_FRAME_CHARS:
        return "error", None, "exceeds"
    try:
        message = json.loads(frame)
    except ValueError:
        return "error", None, "JSON"
    if not isinstance(message, dict):
        return "error", None, "object"
    seq = message.get("seq")
    if message.get("v") != 1:
        return "error", seq, "v"
    if not _int_seq(seq):
        return "error", seq, "seq"
    if message.get("run_id") != run_id:
        return "error", seq, "run_id"
    msg_type = message.get("type")
    if msg_type not in TYPES:
        return "error", seq, "type"
    if run_id in MODEL.closed:
        return "error", seq, "run_id"
    if msg_type == "epoch":
        raw = message.get("record")
        if not isinstance(raw, dict):
            return "error", seq, "record"
        try:
            record = EpochRecord.model_validate(raw).model_dump()
        except ValidationError as err:
            loc = ".".join(str(p) for p in err.errors()[0]["loc"])
            return "error", seq, f"record.{loc}" if loc else "record"
        if record["run_id"] != run_id:
            return "error", seq, "record.run_id"
        if record["epoch"] > EPOCHS:
            return "error", seq, "record.epoch"
        earlier = MODEL.stored.get(run_id, {}).get(record["epoch"])
        if earlier is not None and not same(earlier, record):
            return "error", seq, "record.epoch"  # a stored epoch is never replaced
        return "ack", seq, record
    if msg_type == "started":
        if not isinstance(message.get("data"), dict):
            return "error", seq, "data"
        try:
            StartedData.model_validate(message["data"])
        except ValidationError:
            return "error", seq, "data"
    if msg_type == "failed" and not isinstance(message.get("reason"), str):
        return "error", seq, "reason"
    if msg_type == "graph":
        try:
            GraphSnapshot.model_validate(
                {"epoch": message.get("epoch"), "probabilities": message.get("probabilities")}
            )
        except ValidationError as err:
            return "error", seq, str(err.errors()[0]["loc"][0])
        if not PLAN.is_eval_epoch(message["epoch"]):
            return "error", seq, "epoch"
        size = MODEL.variables.get(run_id)
        if size is not None and len(message["probabilities"]) != size:
            return "error", seq, "probabilities"
    return "ack", seq, None


def same(a: Any, b: Any) -> bool:
    """JSON equality where NaN equals NaN (an error frame echoes the seq it was sent)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


FRAME_ERRORS = ("text", "JSON", "object", "exceeds")  # words of the frame-level refusals


def check_reply(run_id: str, frame: str | bytes, reply: dict[str, Any]) -> None:
    kind, seq, detail = expect(run_id, frame)
    shown = frame[:200]
    assert kind != "close", f"expected a close, got {reply} for {shown!r}"
    assert reply.get("type") == kind, f"expected {kind} for {shown!r}, got {reply}"
    assert same(reply.get("seq"), seq), f"reply out of order: seq {seq!r} expected, got {reply}"
    if kind == "error":
        text = reply.get("detail")
        assert isinstance(text, str) and text, reply
        if detail in FRAME_ERRORS:
            assert detail in text, f"the error should say {detail!r}: {reply}"
        else:  # names the offending field first, e.g. "seq: ..." or "record.clip_pct: ..."
            assert text.startswith((f"{detail}:", f"{detail}.")), (
                f"the error should start with {detail!r}: {reply}"
            )
    elif isinstance(detail, dict):  # an acked record: it is stored now (first one wins)
        MODEL.stored.setdefault(run_id, {}).setdefault(detail["epoch"], detail)
    else:  # an acked message of another type
        message = json.loads(frame)
        if message["type"] in ("finished", "failed"):
            MODEL.closed.add(run_id)
        elif message["type"] == "started" and message["data"].get("variables"):
            MODEL.variables[run_id] = len(message["data"]["variables"])


# --- talking to the server --------------------------------------------------------------------


def ingest(server: BackendServer, run_id: str) -> ClientConnection:
    return connect(f"{server.ws_url}/ws/ingest/{run_id}", open_timeout=10, max_size=None,
                   additional_headers=server.ingest_headers(run_id))


def exchange(server: BackendServer, run_id: str, frames: list[str | bytes]) -> None:
    """Send every frame (pipelined), then a valid record; expect one answer each, in order."""
    epoch = MODEL.epoch(run_id)
    sentinel = json.dumps(envelope(run_id, 10**9 + epoch, record=valid_record(run_id, epoch)))
    with ingest(server, run_id) as ws:
        for frame in [*frames, sentinel]:
            ws.send(frame)
        for frame in frames:
            check_reply(run_id, frame, json.loads(ws.recv(timeout=REPLY_TIMEOUT)))
        check_reply(run_id, sentinel, json.loads(ws.recv(timeout=REPLY_TIMEOUT)))
    if run_id not in MODEL.closed:  # a finished run refuses it (check_reply saw to that)
        stored = MODEL.stored[run_id].get(epoch)
        assert stored is not None, "the valid record after was not acked"


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {name} in a response")

    return json.loads(text, parse_constant=refuse)


def assert_healthy_and_stored(server: BackendServer, run_id: str) -> None:
    assert server.client.get("/healthz").status_code == 200
    run = server.client.get(f"/api/runs/{run_id}")
    assert run.status_code == 200, run.text[:300]
    _strict_json(run.text)
    metrics = server.client.get(f"/api/runs/{run_id}/metrics")
    assert metrics.status_code == 200, metrics.text[:300]
    stored = _strict_json(metrics.text)
    expected = MODEL.stored.get(run_id, {})
    assert [r["epoch"] for r in stored] == sorted(expected), "stored epochs ≠ acked epochs"
    for record in stored:
        assert EpochRecord.model_validate(record).model_dump() == record
        assert record == expected[record["epoch"]], f"epoch {record['epoch']} differs"


def hand_fed_run(server: BackendServer) -> str:
    """A run nobody trains but the test: kind sdk, running until its feeder ends it."""
    return str(server.create_sdk("synthetic", epochs=EPOCHS)["id"])


@pytest.fixture(scope="module")
def slot_taken(fuzz_backend: BackendServer) -> BackendServer:
    """max_runs=1 and one run holding the slot (an idle trainer): every other run queues."""
    holder = fuzz_backend.create("synthetic", epochs=10)
    fuzz_backend.wait_for(holder["id"], lambda r: r["status"] == "running", timeout=30)
    return fuzz_backend


@pytest.fixture
def run_id(slot_taken: BackendServer) -> str:
    return hand_fed_run(slot_taken)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    start = time.monotonic()
    yield
    print(f"\n[test_fuzz_ingest] module wall time {time.monotonic() - start:.1f}s")


# --- strategies ---------------------------------------------------------------------------

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
# What can reach the database: integers SQLite can bind (beyond: the pinned bug tests below).
stored_scalars = (
    st.none() | st.booleans() | st.integers(*INT64) | st.floats() | st.text(max_size=20)
)
stored_values = st.recursive(
    stored_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


def _square(values: st.SearchStrategy[float]) -> st.SearchStrategy[list[list[float]]]:
    return st.integers(1, 4).flatmap(
        lambda d: st.lists(st.lists(values, min_size=d, max_size=d), min_size=d, max_size=d)
    )


square_matrices = _square(st.floats(0, 1)) | _square(st.floats())  # probabilities, or not
extreme_numbers = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 0.0, -0.0, -1, -1.5, 101.0,
     2**53 + 1, INT64[1], INT64[0], 10**400]  # 10**400: a float field gets an int it can't hold
)


def _dumps(value: Any) -> str:
    return json.dumps(value)  # Python's json writes NaN/Infinity: the server's json reads them


# --- the property tests ---------------------------------------------------------------------


@given(values=st.lists(json_values, min_size=1, max_size=5))
@settings(SETTINGS, max_examples=40)
def test_random_json_values_get_one_error_frame_each(
    slot_taken: BackendServer, run_id: str, values: list[Any]
) -> None:
    frames: list[str | bytes] = [_dumps(v) for v in values]
    exchange(slot_taken, run_id, frames)
    assert_healthy_and_stored(slot_taken, run_id)
    COUNTS["random_json examples"] += 1
    COUNTS["random_json frames"] += len(frames) + 1


@given(
    field=st.sampled_from(["v", "type", "run_id", "seq", "record"]),
    value=json_values,
    delete=st.booleans(),
)
@settings(SETTINGS, max_examples=40)
def test_envelope_fields_with_wrong_values_are_refused_by_name(
    slot_taken: BackendServer, run_id: str, field: str, value: Any, delete: bool
) -> None:
    epoch = MODEL.epoch(run_id)
    message = envelope(run_id, epoch, record=valid_record(run_id, epoch))
    if delete:
        del message[field]
    else:
        message[field] = value
    kind, _, named = expect(run_id, _dumps(message))
    if kind == "ack":  # the value happened to be right for the field (e.g. v=1.0)
        COUNTS["envelope valid-by-chance"] += 1
    else:
        assert named == field or named.startswith(f"{field}."), (field, named)
    exchange(slot_taken, run_id, [_dumps(message)])
    assert_healthy_and_stored(slot_taken, run_id)
    COUNTS["envelope examples"] += 1


def _bad_value(field: str) -> st.SearchStrategy[Any]:
    ints = st.integers(*INT64) if field in INT_FIELDS else st.integers()
    return st.one_of(extreme_numbers.filter(lambda v: field not in INT_FIELDS or
                                            not isinstance(v, int) or INT64[0] <= v <= INT64[1]),
                     ints, stored_values)


@st.composite
def record_mutations(draw: st.DrawFn) -> list[tuple[str, str, Any]]:
    """1–3 changes to a valid record: set a field to a bad value, drop it, or add a key."""
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["set", "set", "set", "drop", "extra"]))
        if action == "extra":
            changes.append(("extra", draw(st.text(min_size=1, max_size=10)), draw(stored_values)))
        else:
            field = draw(st.sampled_from(RECORD_FIELDS))
            value = draw(_bad_value(field)) if action == "set" else None
            changes.append((action, field, value))
    return changes


@given(mutations=record_mutations(), epoch_offset=st.sampled_from([0, 0, 0, EPOCHS, -10**6]))
@settings(SETTINGS, max_examples=60)
def test_epoch_records_with_bad_values_are_refused_or_stored_exactly(
    slot_taken: BackendServer, run_id: str, mutations: list[tuple[str, str, Any]],
    epoch_offset: int,
) -> None:
    epoch = MODEL.epoch(run_id)
    record = valid_record(run_id, epoch + epoch_offset)
    for action, field, value in mutations:
        if action == "drop":
            record.pop(field, None)
        else:
            record[field] = value
    frame = _dumps(envelope(run_id, epoch, record=record))
    COUNTS[f"record {expect(run_id, frame)[0]}"] += 1
    exchange(slot_taken, run_id, [frame])
    assert_healthy_and_stored(slot_taken, run_id)
    COUNTS["record examples"] += 1


# Per type: the payload a trainer sends, with its values drawn from anything JSON.
PAYLOADS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "started": st.fixed_dictionaries(
        {"data": st.tuples(
            st.dictionaries(st.text(max_size=8), stored_values, max_size=4),
            # The fields the backend reads, near their real shape (or not).
            st.fixed_dictionaries({}, optional={
                "variables": st.lists(st.text(max_size=6), max_size=3) | stored_scalars,
                "standardized": st.booleans() | stored_scalars,
                "reference_edges": st.lists(st.lists(st.text(max_size=4), max_size=3),
                                            max_size=3) | stored_scalars,
                "stats": st.fixed_dictionaries({}, optional={
                    "variance_ratio": stored_scalars,
                    "raw_variances": st.dictionaries(st.text(max_size=4), stored_scalars,
                                                     max_size=3) | stored_scalars,
                    "near_deterministic": st.lists(
                        st.fixed_dictionaries({"column": stored_scalars, "r2": stored_scalars}),
                        max_size=2,
                    ) | stored_scalars,
                }) | stored_values,
            }),
        ).map(lambda parts: {**parts[0], **parts[1]})},
        optional={"config": stored_values, "preset": stored_values},
    ),
    "graph": st.fixed_dictionaries(
        {"epoch": st.integers(1, 10**6) | stored_scalars, "probabilities": square_matrices}
    ),
    "finished": st.fixed_dictionaries({}, optional={"summary": stored_values}),
    "failed": st.fixed_dictionaries(
        {"reason": st.text(max_size=50) | stored_scalars}, optional={"summary": stored_values}
    ),
    "alert": st.fixed_dictionaries({}, optional={"alert": stored_values}),
}


@given(
    payload=st.sampled_from(sorted(PAYLOADS)).flatmap(
        lambda t: st.tuples(st.just(t), PAYLOADS[t])
    ),
    junk=st.dictionaries(st.text(max_size=8), stored_values, max_size=2),
)
@settings(SETTINGS, max_examples=50)
def test_other_message_types_with_random_payloads(
    slot_taken: BackendServer, payload: tuple[str, dict[str, Any]], junk: dict[str, Any]
) -> None:
    """started / graph / finished / failed / alert with JSON-anything values and extra keys;
    the graph of an acked graph message reads back as sent."""
    msg_type, fields = payload
    run_id = hand_fed_run(slot_taken)  # started data sticks to a run: one run per example
    message = {**junk, **envelope(run_id, 0, msg_type, **fields)}
    frame = _dumps(message)
    exchange(slot_taken, run_id, [frame])
    assert_healthy_and_stored(slot_taken, run_id)
    kind = expect(run_id, frame)[0]
    if msg_type == "graph" and kind == "ack":
        graph = slot_taken.client.get(f"/api/runs/{run_id}/graph",
                                      params={"epoch": fields["epoch"]})
        assert graph.status_code == 200, graph.text[:300]
        assert _strict_json(graph.text)["probabilities"] == fields["probabilities"]
    COUNTS[f"{msg_type} {kind}"] += 1
    COUNTS["other examples"] += 1


finite = st.floats(allow_nan=False, allow_infinity=False)  # ±1.8e308, subnormals, -0.0
non_negative = st.floats(min_value=0, allow_infinity=False)
percent = st.floats(min_value=0, max_value=100)
counts = st.integers(0, MAX_INT)  # the protocol's bound (trainer.protocol.MAX_INT)
VALID_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "step": counts, "time": finite, "lr": finite,
    **{f"loss_{t}": finite for t in ("total", "recon", "sparse", "acyclic", "disen")},
    **{f"share_{t}": percent for t in ("recon", "sparse", "acyclic", "disen")},
    "clip_pct": percent, "grad_norm_mean": finite, "grad_norm_max": finite,
    "grad_norm_p90": st.none() | non_negative,
    "logit_mean": finite, "logit_std": finite, "edges_at_05": counts,
    "threshold_tuned": finite, "edges_tuned": counts, "edges_topk": counts,
    "shd": st.none() | st.integers(0, MAX_INT), "f1": st.none() | finite,
    "precision": st.none() | finite, "recall": st.none() | finite,
    "f1_skeleton": st.none() | finite, "val_recon": st.none() | finite,
    "is_best": st.booleans(), "epoch_seconds": non_negative, "eta_seconds": non_negative,
    **{f"grad_norm_{t}": st.none() | non_negative for t in ("recon", "sparse", "acyclic", "disen")},
    "update_ratio": st.none() | non_negative,
    "custom": st.none() | st.dictionaries(
        st.from_regex(r"\A[A-Za-z0-9_./-]{1,64}\Z"), finite, max_size=5
    ),
}
assert set(VALID_FIELDS) | {"run_id", "epoch"} == set(RECORD_FIELDS)


@given(records=st.lists(st.fixed_dictionaries(VALID_FIELDS), min_size=1, max_size=6))
@settings(SETTINGS, max_examples=25)
def test_valid_records_with_extreme_values_are_acked_and_stored_exactly(
    slot_taken: BackendServer, records: list[dict[str, Any]]
) -> None:
    """Every value in its field's range, extremes included: the red-flag rules evaluate
    each one over the run's history (a fresh run per example) and must not choke."""
    run_id = hand_fed_run(slot_taken)
    frames: list[str | bytes] = []
    for fields in records:
        epoch = MODEL.epoch(run_id)
        frames.append(_dumps(envelope(run_id, epoch, record={**fields, "run_id": run_id,
                                                             "epoch": epoch})))
        assert expect(run_id, frames[-1])[0] == "ack"
    exchange(slot_taken, run_id, frames)
    assert_healthy_and_stored(slot_taken, run_id)
    for suffix in ("/alerts", "/scorecard", "/metrics?format=csv"):
        assert slot_taken.client.get(f"/api/runs/{run_id}{suffix}").status_code == 200
    COUNTS["extreme-valid examples"] += 1
    COUNTS["extreme-valid records"] += len(records)


@given(frames=st.lists(st.binary(max_size=300), min_size=1, max_size=4))
@settings(SETTINGS, max_examples=5)
def test_binary_frames_get_an_error_frame_each(
    slot_taken: BackendServer, run_id: str, frames: list[bytes]
) -> None:
    exchange(slot_taken, run_id, list(frames))
    assert_healthy_and_stored(slot_taken, run_id)
    COUNTS["binary examples"] += 1


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@given(payload=st.binary(min_size=1, max_size=200).filter(_not_utf8))
@settings(SETTINGS, max_examples=4)
def test_non_utf8_text_frames_close_with_1007_and_the_run_goes_on(
    slot_taken: BackendServer, run_id: str, payload: bytes
) -> None:
    with ingest(slot_taken, run_id) as ws:
        ws.send(payload, text=True)  # a Text frame whose bytes are not UTF-8
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=REPLY_TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    exchange(slot_taken, run_id, [])
    assert_healthy_and_stored(slot_taken, run_id)
    COUNTS["non-utf8 examples"] += 1


@pytest.mark.parametrize(
    ("size", "outcome"),
    [(MAX_FRAME_CHARS + 1, "error"), (1_500_000, "error"), (WS_MAX_SIZE + 1, 1009),
     (3_000_000, 1009)],
)
def test_huge_frames(slot_taken: BackendServer, run_id: str, size: int, outcome: Any) -> None:
    """Above 1 MB: an error frame and the connection goes on; above 2 MiB: close 1009."""
    epoch = MODEL.epoch(run_id)
    message = envelope(run_id, epoch, record=valid_record(run_id, epoch), pad="")
    message["pad"] = "x" * (size - len(_dumps(message)))
    frame = _dumps(message)
    assert len(frame) == size
    assert expect(run_id, frame)[0] == ("error" if outcome == "error" else "close")
    if outcome == "error":
        exchange(slot_taken, run_id, [frame])
    else:
        with ingest(slot_taken, run_id) as ws:
            ws.send(frame)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=REPLY_TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == outcome
        exchange(slot_taken, run_id, [])
    assert_healthy_and_stored(slot_taken, run_id)


def _close_code(server: BackendServer, quoted_run_id: str) -> int | None:
    # An unknown run has no token to present: the server names the run unknown first.
    url = f"{server.ws_url}/ws/ingest/{quoted_run_id}"
    with connect(url, open_timeout=10, max_size=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=REPLY_TIMEOUT)
    return closed.value.rcvd.code if closed.value.rcvd else None


@given(run_id=st.text(st.characters(min_codepoint=32, max_codepoint=126,
                                    exclude_characters="/"), min_size=1, max_size=200))
@settings(SETTINGS, max_examples=6)
def test_unknown_run_ids_close_with_4404(slot_taken: BackendServer, run_id: str) -> None:
    """Any (ASCII, '/'-free: a '/' is another route) unknown run id: closed with 4404."""
    assert _close_code(slot_taken, quote(run_id, safe="")) == 4404
    assert slot_taken.client.get("/healthz").status_code == 200
    COUNTS["unknown-run examples"] += 1


# --- floods -----------------------------------------------------------------------------------


def _flood_frames(run_id: str, count: int, first_epoch: int, epochs: int) -> list[str | bytes]:
    """Valid records over `epochs` epochs (each sent several times, identically: resends)
    interleaved with refused frames of every kind; seq = position."""
    frames: list[str | bytes] = []
    for i in range(count):
        kind = i % 10
        epoch = first_epoch + (i // 10 * 6 + kind) % epochs
        if kind <= 5:
            frames.append(_dumps(envelope(run_id, i, record=valid_record(run_id, epoch))))
        elif kind == 6:
            bad = valid_record(run_id, epoch, clip_pct=250.0)
            frames.append(_dumps(envelope(run_id, i, record=bad)))
        elif kind == 7:
            frames.append(f"not json {i}")
        elif kind == 8:
            frames.append(_dumps(envelope("someone-else", i, record=valid_record(run_id, 1))))
        else:
            frames.append(f"binary {i}".encode())
    return frames


async def _flood(
    server: BackendServer, run_id: str, frames: list[str | bytes]
) -> list[dict[str, Any]]:
    url = f"{server.ws_url}/ws/ingest/{run_id}"
    headers = server.ingest_headers(run_id)
    async with aconnect(url, open_timeout=10, max_size=None, additional_headers=headers) as ws:

        async def send_all() -> None:
            for frame in frames:
                await ws.send(frame)

        sender = asyncio.create_task(send_all())
        replies = [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in frames]
        await sender
    return replies


def test_flood_of_2000_frames_on_one_connection(slot_taken: BackendServer, run_id: str) -> None:
    first = MODEL.next_epoch.get(run_id, 0) + 1
    MODEL.next_epoch[run_id] = first + 300
    frames = _flood_frames(run_id, 2000, first, 300)
    start = time.monotonic()
    replies = asyncio.run(_flood(slot_taken, run_id, frames))
    elapsed = time.monotonic() - start
    assert len(replies) == len(frames)
    for frame, reply in zip(frames, replies, strict=True):
        check_reply(run_id, frame, reply)
    kinds = Counter(r["type"] for r in replies)
    assert kinds == {"ack": 1200, "error": 800}, kinds
    print(f"\n[flood] 2000 frames answered in {elapsed:.2f}s ({2000 / elapsed:.0f}/s)")
    exchange(slot_taken, run_id, [])
    assert_healthy_and_stored(slot_taken, run_id)
    assert len(MODEL.stored[run_id]) == 300 + 1


def test_ten_concurrent_connections(slot_taken: BackendServer) -> None:
    """5 runs × 2 connections each, sending the same epochs at once: stored once each."""
    runs = [hand_fed_run(slot_taken) for _ in range(5)]
    plans = []
    for rid in runs:
        MODEL.next_epoch[rid] = 100
        frames = _flood_frames(rid, 200, 1, 100)
        plans += [(rid, frames), (rid, frames)]

    async def all_at_once() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(
            *(_flood(slot_taken, rid, frames) for rid, frames in plans)
        )

    start = time.monotonic()
    results = asyncio.run(all_at_once())
    elapsed = time.monotonic() - start
    for (rid, frames), replies in zip(plans, results, strict=True):
        assert len(replies) == len(frames)
        for frame, reply in zip(frames, replies, strict=True):
            check_reply(rid, frame, reply)
    print(f"\n[concurrent] 10 × 200 frames answered in {elapsed:.2f}s")
    for rid in runs:
        assert sorted(MODEL.stored[rid]) == list(range(1, 101))
        assert_healthy_and_stored(slot_taken, rid)


FUZZERS = {  # hypothesis test → the COUNTS key it bumps once per example
    "test_random_json_values_get_one_error_frame_each": "random_json examples",
    "test_envelope_fields_with_wrong_values_are_refused_by_name": "envelope examples",
    "test_epoch_records_with_bad_values_are_refused_or_stored_exactly": "record examples",
    "test_other_message_types_with_random_payloads": "other examples",
    "test_valid_records_with_extreme_values_are_acked_and_stored_exactly":
        "extreme-valid examples",
    "test_binary_frames_get_an_error_frame_each": "binary examples",
    "test_non_utf8_text_frames_close_with_1007_and_the_run_goes_on": "non-utf8 examples",
    "test_unknown_run_ids_close_with_4404": "unknown-run examples",
}


def test_every_fuzzer_ran_examples(request: pytest.FixtureRequest,
                                   slot_taken: BackendServer) -> None:
    """Runs after the fuzzers (file order): each selected one really tried examples."""
    selected = {item.name for item in request.session.items} & set(FUZZERS)
    if not selected:
        pytest.skip("no fuzzer selected")
    examples = {name: COUNTS[FUZZERS[name]] for name in sorted(selected)}
    print(f"\n[test_fuzz_ingest] examples per fuzzer: {examples}, "
          f"total {sum(examples.values())}; all counters: {dict(COUNTS)}")
    assert all(count > 0 for count in examples.values()), examples
    assert slot_taken.process is not None and slot_taken.process.poll() is None
    assert slot_taken.client.get("/healthz").status_code == 200


# --- bugs the fuzzers found, all fixed: each pinned by a test --------------------------------


def _answer_or_close(server: BackendServer, run_id: str, frame: str) -> dict[str, Any] | int:
    with ingest(server, run_id) as ws:
        ws.send(frame)
        try:
            return json.loads(ws.recv(timeout=2))  # type: ignore[no-any-return]
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else -1
        except TimeoutError:
            return 0  # no answer at all


@pytest.mark.parametrize("field", ["step", "edges_at_05", "edges_tuned", "edges_topk", "shd"])
def test_record_int_beyond_64_bits_is_refused_not_bounced(
    slot_taken: BackendServer, run_id: str, field: str
) -> None:
    record = valid_record(run_id, 1, **{field: 2**64})
    reply = _answer_or_close(slot_taken, run_id, _dumps(envelope(run_id, 0, record=record)))
    assert isinstance(reply, dict) and reply["type"] == "error" and field in reply["detail"], reply


def test_graph_epoch_beyond_64_bits_is_refused(slot_taken: BackendServer, run_id: str) -> None:
    frame = _dumps(envelope(run_id, 0, "graph", epoch=2**64, probabilities=[[0.0]]))
    reply = _answer_or_close(slot_taken, run_id, frame)
    assert isinstance(reply, dict) and reply["type"] == "error", reply


@pytest.mark.parametrize("run_id", ["é" * 100, "日本" * 30, "🙂" * 40])
def test_unknown_non_ascii_run_ids_close_with_4404(slot_taken: BackendServer, run_id: str) -> None:
    code = _close_code(slot_taken, quote(run_id, safe=""))
    assert slot_taken.client.get("/healthz").status_code == 200
    assert code == 4404


# Fixed: stored unvalidated, such stats made the rules raise out of Ingest._evaluate; the
# frame went unanswered and every later epoch of the run was stored but never acked.
@pytest.mark.parametrize(
    "stats",
    [
        {"variance_ratio": "big"},
        {"variance_ratio": 50.0, "raw_variances": {"a": "x", "b": 1.0}},
        {"near_deterministic": [1, 2]},
        [1, 2],
    ],
    ids=["ratio-str", "variances-str", "near-det-ints", "stats-list"],
)
def test_started_data_with_unreadable_stats_is_refused_and_the_run_goes_on(
    slot_taken: BackendServer, stats: Any
) -> None:
    run_id = hand_fed_run(slot_taken)
    data = {"variables": ["a", "b"], "standardized": False, "stats": stats}
    reply = _answer_or_close(slot_taken, run_id, _dumps(envelope(run_id, 0, "started",
                                                                 data=data)))
    assert isinstance(reply, dict) and reply["type"] == "error" and "data" in reply["detail"], reply
    record = _dumps(envelope(run_id, 1, record=valid_record(run_id, 1)))
    assert _answer_or_close(slot_taken, run_id, record) == {"type": "ack", "seq": 1}
