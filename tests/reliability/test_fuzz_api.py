"""Property-based fuzzing of the HTTP API from its OpenAPI schema (schemathesis 4).

One real backend (`causalwatch up`, SQLite file) serves the whole module. Every operation of
the schema is fuzzed through schemathesis' examples, coverage and fuzzing phases, with
positive and negative data, and every response must hold these properties:

- no 5xx, whatever the input (schemathesis' `not_a_server_error`);
- a 2xx body matches its documented response schema and content type;
- data the schema forbids is rejected (`negative_data_rejection`);
- every 4xx is JSON with a `detail` naming what was wrong: a 422 names the offending
  field or parameter (in `loc`, `field` or `msg`), a 404/409 names the run or preset it
  is about.

The schema fuzzed is the app's own OpenAPI document; `test_fuzzed_schema_is_the_served_one`
checks it equals what the live server serves at /openapi.json. (schemathesis' lazy
`from_fixture` loader does not run on pytest 9.2 — `'Function' object has no attribute
'_nodeid'` — so the document is built in a subprocess at collection, where `backend` is the
installed package and not the `tests/backend` folder.)

Every built-in check runs but one, `positive_data_acceptance`: `overrides` is a free-form
object in the schema, and the config validation behind it refuses unknown or out-of-range
fields with a 422 by design. Error statuses (404, 409, 413, 429, 503, 507) are declared per
route, so `status_code_conformance` holds; a 405 lists every method of the path
(`allow_header_conformance`).

Run ids: a generated id that fits the pattern almost never exists, so a positive `run_id`
is swapped (deterministically, by its hash) for one of the module's known runs — a running
one, a fed one with metrics/graph/alerts/log, a queued one — or kept as generated.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from utils.backend_server import BackendServer
from utils.records import epoch_record
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 30  # fuzzing-phase examples per operation (examples + coverage phases add theirs)

_BUILD_SCHEMA = (
    "import json; from backend.main import create_app; print(json.dumps(create_app().openapi()))"
)
OPENAPI: dict[str, Any] = json.loads(
    subprocess.run(
        [sys.executable, "-c", _BUILD_SCHEMA], cwd=ROOT, capture_output=True, text=True,
        check=True, timeout=120,
    ).stdout
)
schema = schemathesis.openapi.from_dict(OPENAPI)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
    negative_data_rejection,
    allow_header_conformance,
]
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
PRESETS = ("standard", "synthetic", "uci")

# label → counters; failures as "label status: what" lines (printed by the last test).
STATS: dict[str, Counter[str]] = defaultdict(Counter)
FAILURES: list[str] = []


# --- the module's backend and its runs ---------------------------------------------------


def _feed(server: BackendServer, run_id: str) -> None:
    """What a trainer would have sent: started (raw data → an alert), 4 epochs, 2 graphs."""
    variables = [f"X{i}" for i in range(5)]
    messages: list[dict[str, Any]] = [
        {"type": "started", "data": {
            "name": "synthetic", "variables": variables, "reference_kind": "ground truth",
            "reference_edges": [["X0", "X1"], ["X1", "X2"]], "standardized": False,
            "stats": {"variance_ratio": 43.0, "raw_variances": {"X0": 0.9, "X1": 38.7}},
        }},
    ]
    for epoch in range(1, 5):
        evaluation: dict[str, Any] = {}
        if epoch % 2 == 0:
            evaluation = {"shd": 2, "f1": 0.5, "precision": 0.5, "recall": 0.5,
                          "f1_skeleton": 0.6, "val_recon": 1.0, "is_best": True}
        messages.append({"type": "epoch", "record": epoch_record(epoch, run_id, **evaluation)})
        if epoch % 2 == 0:
            probabilities = [[0.0 if i == j else 0.1 * (i + j) / 8 for j in range(5)]
                             for i in range(5)]
            messages.append({"type": "graph", "epoch": epoch, "probabilities": probabilities})
    with connect(f"{server.ws_url}/ws/ingest/{run_id}", open_timeout=10,
                 additional_headers=server.ingest_headers(run_id)) as ws:
        for seq, message in enumerate(messages):
            ws.send(json.dumps({"v": 1, "run_id": run_id, "seq": seq, **message}))
            reply = json.loads(ws.recv(timeout=10))
            assert reply == {"type": "ack", "seq": seq}, (message["type"], reply)
    run_dir = server.runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "train.log").write_text("epoch 1 loss 2.0\nepoch 2 loss 2.0\n")


@pytest.fixture(scope="module")
def known_runs(fuzz_backend: BackendServer) -> list[str]:
    """A running run (idle trainer in the only slot), a run of kind sdk fed by hand with
    metrics, graphs, an alert and a log, then stopped, and a queued run."""
    running = fuzz_backend.create("synthetic", epochs=20)
    fuzz_backend.wait_for(running["id"], lambda r: r["status"] == "running", timeout=30)
    fed = fuzz_backend.create_sdk("synthetic", epochs=20)
    _feed(fuzz_backend, fed["id"])
    assert fuzz_backend.client.post(f"/api/runs/{fed['id']}/stop").status_code == 200
    alerts = fuzz_backend.client.get(f"/api/runs/{fed['id']}/alerts").json()
    assert alerts, "the fed run needs an alert to restart from"
    queued = fuzz_backend.create("uci", epochs=20)
    return [running["id"], fed["id"], queued["id"]]


# --- the properties ----------------------------------------------------------------------


def _aim(case: schemathesis.Case, known_runs: list[str]) -> None:
    """Swap a well-formed generated run id / preset name for an existing one, by its hash."""
    params = case.path_parameters or {}
    for name, pool in (("run_id", known_runs), ("name", list(PRESETS))):
        value = params.get(name)
        if isinstance(value, str) and RUN_ID_RE.match(value):
            pick = zlib.crc32(value.encode()) % (len(pool) + 1)
            if pick < len(pool):
                params[name] = pool[pick]


def _inputs(case: schemathesis.Case) -> set[str]:
    """Every name a client can get wrong: declared parameters, the body's top-level fields,
    and whatever names this request sent (an unknown body field is named as sent)."""
    operation = OPENAPI["paths"][case.operation.path][case.operation.method.lower()]
    names = {p["name"] for p in operation.get("parameters", [])}
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content:
        ref = content["schema"].get("$ref", "")
        body = OPENAPI["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
        names |= set(body.get("properties", {}))
    for sent in (case.body, case.query):
        if isinstance(sent, dict):
            names |= {str(key) for key in sent}
    return names


INT64_MAX = 2**63 - 1


def _beyond_int64(case: schemathesis.Case) -> bool:
    """An integer SQLite cannot bind anywhere in the query or the body."""

    def walk(value: Any) -> bool:
        if isinstance(value, dict):
            return any(walk(v) for v in value.values())
        if isinstance(value, list):
            return any(walk(v) for v in value)
        if isinstance(value, str):
            return value.lstrip("-").isdigit() and abs(int(value)) > INT64_MAX
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX

    return walk(case.query or {}) or walk(case.body if isinstance(case.body, dict) else {})


def _header(response: Any, name: str) -> str:
    """schemathesis' Response keeps each header as a list of values."""
    values = response.headers.get(name) or [""]
    return ", ".join(values) if isinstance(values, list) else str(values)


def _check_error_body(case: schemathesis.Case, response: Any) -> None:
    """A 4xx is JSON whose `detail` says which input was wrong."""
    status = response.status_code
    if not 400 <= status < 500:
        return
    content_type = _header(response, "content-type")
    assert content_type.startswith("application/json"), f"{status} is not JSON: {content_type}"
    body = response.json()
    assert isinstance(body, dict) and "detail" in body, f"{status} without detail: {body}"
    detail = body["detail"]
    if status == 400:  # a body that is not JSON (or not UTF-8)
        assert detail[0]["field"] == "body" and "JSON" in detail[0]["msg"], body
        STATS[case.operation.label]["400_body_not_json"] += 1
        return
    if status == 403:  # a write refused by the browser guard: it names why
        assert case.method.upper() not in ("GET", "HEAD", "OPTIONS"), body
        assert detail[0]["field"] in ("origin", "content-type"), body
        return
    if status == 405:  # schemathesis' unsupported-method probe: the method is what was wrong
        assert case.method.upper() != case.operation.method.upper()
        assert detail == "Method Not Allowed" and _header(response, "allow"), body
        return
    assert isinstance(detail, list) and detail, f"{status} detail is not a non-empty list: {body}"
    first = detail[0]
    msg = first.get("msg")
    assert isinstance(msg, str) and msg, f"{status} detail[0] has no msg: {body}"
    if status == 422:
        loc = [str(part) for part in first.get("loc", [])]
        field = str(first.get("field") or "")
        assert loc and loc[0] in ("body", "path", "query", "header", "cookie"), body
        named = set(loc) | set(field.split("."))
        inputs = _inputs(case)
        whole_body = loc == ["body"] or first.get("type") == "json_invalid"  # loc: body, offset
        assert whole_body or named & inputs or any(name in msg for name in inputs), (
            f"422 names none of {sorted(inputs)}: {body}"
        )
        phase = case.meta.phase.data if case.meta else None
        mutated = getattr(phase, "parameter", None)
        if case.meta and case.meta.generation.mode.is_negative and mutated in inputs:
            # schemathesis knows which input it broke: some error item must name it (it may
            # not be first when other inputs were broken too)
            everything = " ".join(json.dumps(item) for item in detail)
            STATS[case.operation.label]["negated_input_named"] += 1
            assert mutated in everything or whole_body, (
                f"negated {mutated!r}, 422 names: {body}"
            )
    elif status in (404, 409):
        # schemathesis percent-encodes path parameters; the server names them decoded
        values = [unquote(str(v)) for v in (case.path_parameters or {}).values()]
        assert any(repr(v) in msg for v in values), f"{status} names none of {values}: {body}"
    elif status == 429:  # the queue is full: a sweep queues up to 1000 runs at once
        assert "max_queued" in msg, body
    else:
        raise AssertionError(f"unexpected {status}: {body}")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)
def test_api(case: schemathesis.Case, fuzz_backend: BackendServer, known_runs: list[str]) -> None:
    label = case.operation.label
    _aim(case, known_runs)
    STATS[label]["cases"] += 1
    # As a script would: the header says "not a cross-site form" (backend/origins.py), so
    # every write reaches its handler; the refusals without it are test_attacks.py's.
    response = case.call(base_url=fuzz_backend.url, timeout=30,
                         headers={"X-Causalwatch-Client": "schemathesis"})
    STATS[label][f"{response.status_code // 100}xx"] += 1
    try:
        case.validate_response(response, checks=CHECKS)
        _check_error_body(case, response)
    except Exception as err:
        STATS[label]["failures"] += 1
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        FAILURES.append(f"{label} → {response.status_code}: {first_line[:300]}\n      "
                        + case.as_curl_command()[:400])
        raise


def test_server_survived_and_every_operation_was_fuzzed(
    request: pytest.FixtureRequest, fuzz_backend: BackendServer
) -> None:
    """Runs after test_api (file order): the server is healthy, and cases really ran."""
    fuzzed = [item for item in request.session.items if item.name.startswith("test_api[")]
    if not fuzzed:
        pytest.skip("test_api was not selected")
    assert fuzz_backend.client.get("/healthz").status_code == 200
    assert fuzz_backend.process is not None and fuzz_backend.process.poll() is None
    width = max(len(label) for label in STATS) if STATS else 10
    print(f"\n{'operation':<{width}}  cases  2xx  4xx  5xx  failures  known-int64-500"
          "  400-body-not-json")
    for label in sorted(STATS):
        c = STATS[label]
        print(f"{label:<{width}}  {c['cases']:5}  {c['2xx']:3}  {c['4xx']:3}  {c['5xx']:3}"
              f"  {c['failures']:8}  {c['known_int64_500']:15}  {c['400_body_not_json']:17}")
    total = sum(c["cases"] for c in STATS.values())
    named = sum(c["negated_input_named"] for c in STATS.values())
    print(f"total: {total} cases, {len(FAILURES)} failures; {named} negative-mode 422s "
          "checked to name the very input schemathesis broke")
    for line in FAILURES:
        print("  FAIL", line)
    operations = {f"{m.upper()} {p}" for p, ops in OPENAPI["paths"].items() for m in ops}
    assert operations <= set(STATS), f"never fuzzed: {sorted(operations - set(STATS))}"
    assert all(STATS[op]["cases"] >= 5 for op in operations), dict(STATS)


def test_fuzzed_schema_is_the_served_one(fuzz_backend: BackendServer) -> None:
    assert fuzz_backend.client.get("/openapi.json").json() == OPENAPI


def test_openapi_documents_the_csv_download() -> None:
    content = OPENAPI["paths"]["/api/runs/{run_id}/metrics"]["get"]["responses"]["200"]["content"]
    assert "text/csv" in content, sorted(content)


# --- what schemathesis cannot send: JSON's non-standard constants ------------------------

NON_FINITE = ("NaN", "Infinity", "-Infinity")


def _post_raw(server: BackendServer, path: str, text: str) -> httpx.Response:
    # A fresh connection each time: after a 500 the server drops the connection.
    return httpx.post(server.url + path, content=text,
                      headers={"content-type": "application/json"}, timeout=30)


@given(
    field=st.sampled_from(["epochs", "learning_rate_max", "lambda_recon", "grad_clip_norm",
                           "seed", "standardize", "sparsify_method", "val_fraction"]),
    constant=st.sampled_from(NON_FINITE),
)
@settings(max_examples=12, deadline=None, derandomize=True, database=None)
def test_non_finite_override_values_are_422_naming_the_field(
    fuzz_backend: BackendServer, known_runs: list[str], field: str, constant: str
) -> None:
    """`NaN`/`Infinity` (Python's json accepts them) inside `overrides` reach the config
    validation, which names the field."""
    for path in ("/api/runs", f"/api/runs/{known_runs[1]}/restart"):
        resp = _post_raw(fuzz_backend, path, f'{{"overrides": {{"{field}": {constant}}}}}')
        assert resp.status_code == 422, (path, resp.status_code, resp.text[:300])
        item = resp.json()["detail"][0]
        assert item["field"] == f"overrides.{field}" and field in item["msg"], item


@given(
    target=st.sampled_from(["preset", "name", "overrides", "alert_id", "body"]),
    constant=st.sampled_from(NON_FINITE),
)
@settings(max_examples=10, deadline=None, derandomize=True, database=None)
def test_non_finite_constants_in_request_bodies_are_4xx_not_500(
    fuzz_backend: BackendServer, known_runs: list[str], target: str, constant: str
) -> None:
    if target == "body":
        text, named = constant, "body"
    else:
        text, named = f'{{"{target}": {constant}}}', target
    path = f"/api/runs/{known_runs[1]}/restart" if target == "alert_id" else "/api/runs"
    resp = _post_raw(fuzz_backend, path, text)
    assert resp.status_code == 422, (path, text, resp.status_code, resp.text[:200])
    item = resp.json()["detail"][0]
    assert named in item["loc"] or named in item["msg"], item
    assert fuzz_backend.client.get("/healthz").status_code == 200


@given(
    target=st.sampled_from(["alert_id", "since_epoch", "epoch", "offset"]),
    value=st.integers(min_value=INT64_MAX + 1, max_value=2**200),
)
@settings(max_examples=8, deadline=None, derandomize=True, database=None)
def test_integers_beyond_64_bits_are_422_not_500(
    fuzz_backend: BackendServer, known_runs: list[str], target: str, value: int
) -> None:
    run = known_runs[1]
    if target == "alert_id":
        resp = _post_raw(fuzz_backend, f"/api/runs/{run}/restart", f'{{"alert_id": {value}}}')
    else:
        path = {"since_epoch": f"/api/runs/{run}/metrics", "epoch": f"/api/runs/{run}/graph",
                "offset": "/api/runs"}[target]
        resp = httpx.get(fuzz_backend.url + path, params={target: value}, timeout=30)
    assert resp.status_code == 422, (target, value, resp.status_code, resp.text[:200])
    item = resp.json()["detail"][0]
    assert target in [str(p) for p in item["loc"]] or target in item["msg"], item


# --- 405s --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(OPENAPI["paths"]))
def test_405_allow_header_lists_every_method_of_the_path(
    fuzz_backend: BackendServer, known_runs: list[str], path: str
) -> None:
    url = path.replace("{run_id}", known_runs[1]).replace("{name}", "uci")
    documented = {m.upper() for m in OPENAPI["paths"][path]}
    resp = fuzz_backend.client.request("PATCH", url)
    assert resp.status_code == 405 and resp.json() == {"detail": "Method Not Allowed"}
    allowed = {m.strip() for m in resp.headers["allow"].split(",")} - {"HEAD", "OPTIONS"}
    assert allowed == documented, (path, resp.headers["allow"])


# --- nothing the fuzzer did left the server unwell -----------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _timing() -> Iterator[None]:
    start = time.monotonic()
    yield
    print(f"\n[test_fuzz_api] module wall time {time.monotonic() - start:.1f}s")


def test_every_stored_run_reads_back(fuzz_backend: BackendServer) -> None:
    """Whatever the fuzzer created, listed runs and their metrics serialise (no NaN leaks)."""
    runs = fuzz_backend.client.get("/api/runs", params={"limit": 5000})
    assert runs.status_code == 200
    for run in runs.json()["runs"]:
        for suffix in ("", "/metrics", "/alerts", "/scorecard", "/events"):
            resp = fuzz_backend.client.get(f"/api/runs/{run['id']}{suffix}")
            assert resp.status_code == 200, (run["id"], suffix, resp.text[:200])
            json.loads(resp.text, parse_constant=_refuse_constant)
        assert all(math.isfinite(v) for v in _numbers(run))


def _refuse_constant(name: str) -> float:
    raise AssertionError(f"non-standard JSON constant {name} in a response")


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
