"""The websocket emitter against a real ingest server: delivery, faults, and the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from utils.records import epoch_record

from trainer.emitter import Emitter, ingest_url

if TYPE_CHECKING:
    from utils.ws_ingest_server import IngestServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Short backoff keeps reconnect-driven tests fast; the production default is 5 s.
FAST = 0.2


def streaming(server: IngestServer, run_id: str, epochs: Iterable[int] = ()) -> Emitter:
    """A started emitter that has queued one epoch message per epoch of `epochs`."""
    em = Emitter(server.url, run_id, max_backoff=FAST)
    em.start()
    send_epochs(em, run_id, epochs)
    return em


def send_epochs(em: Emitter, run_id: str, epochs: Iterable[int]) -> list[int]:
    return [em.send("epoch", record=epoch_record(e, run_id)) for e in epochs]


def send_without_blocking(em: Emitter, run_id: str, epochs: Iterable[int]) -> None:
    """Each send returns at once, whatever the connection is doing."""
    for e in epochs:
        record = epoch_record(e, run_id)
        t0 = time.perf_counter()
        em.send("epoch", record=record)
        assert time.perf_counter() - t0 < 0.010


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def emitter_threads(run_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"causalwatch-emitter-{run_id}"]


@pytest.mark.parametrize(
    ("backend_url", "expected"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/ingest/r1"),
        ("https://example.org", "wss://example.org/ws/ingest/r1"),
        ("ws://localhost:9/", "ws://localhost:9/ws/ingest/r1"),
        ("WSS://h:1/prefix/", "wss://h:1/prefix/ws/ingest/r1"),
    ],
)
def test_ingest_url_maps_http_to_ws(backend_url: str, expected: str) -> None:
    assert ingest_url(backend_url, "r1") == expected


def test_ingest_url_quotes_the_run_id_and_rejects_bad_input() -> None:
    assert ingest_url("http://h", "a b/c").endswith("/ws/ingest/a%20b%2Fc")
    with pytest.raises(ValueError, match="backend_url"):
        ingest_url("ftp://h", "r1")
    with pytest.raises(ValueError, match="backend_url"):
        ingest_url("localhost:8000", "r1")
    with pytest.raises(ValueError, match="run_id"):
        ingest_url("http://h", "")
    with pytest.raises(ValueError, match="max_backoff"):
        Emitter("http://h", "r1", max_backoff=0)


def test_200_messages_arrive_once_in_order(ingest_server: IngestServer) -> None:
    em = streaming(ingest_server, "run-a")
    seqs = send_epochs(em, "run-a", range(1, 201))
    assert seqs == list(range(200))

    t0 = time.monotonic()
    stats = em.close(timeout=5.0)
    assert time.monotonic() - t0 < 2.0
    assert stats == {
        "sent": 200, "acked": 200, "unacked": 0, "refused": 0, "reconnects": 0,
        "connected": True, "errors": [],
    }
    stored = ingest_server.received("run-a")
    assert [m["seq"] for m in stored] == list(range(200))
    assert [m["record"]["epoch"] for m in stored] == list(range(1, 201))
    assert all(m["v"] == 1 and m["type"] == "epoch" and m["run_id"] == "run-a" for m in stored)
    assert ingest_server.receive_count == 200  # no fault, so no resend
    assert em.close() == stats  # idempotent
    assert emitter_threads("run-a") == []


def test_repeated_drops_lose_and_duplicate_nothing(ingest_server: IngestServer) -> None:
    ingest_server.drop_after = 37
    ingest_server.drop_every = True
    em = streaming(ingest_server, "run-b")
    sent = {em.send("epoch", record=epoch_record(e, "run-b")): e for e in range(1, 201)}

    stats = em.close(timeout=10.0)
    assert stats["unacked"] == 0 and stats["acked"] == 200
    assert stats["reconnects"] >= 1
    assert ingest_server.drops >= 3
    stored = ingest_server.received("run-b")
    assert [m["seq"] for m in stored] == list(range(200))
    assert [m["record"]["epoch"] for m in stored] == [sent[m["seq"]] for m in stored]
    assert ingest_server.receive_count > len(stored)  # resends happened
    # Acks that reached the client before each drop count: only the cut message is resent.
    assert ingest_server.receive_count == len(stored) + ingest_server.drops


def test_connection_reset_mid_stream(ingest_server: IngestServer) -> None:
    # A reset also destroys acks the client has not read yet: more resends, still no loss.
    ingest_server.drop_after = 37
    ingest_server.drop_mode = "abort"
    em = streaming(ingest_server, "run-x", range(1, 201))

    stats = em.close(timeout=10.0)
    assert (stats["acked"], stats["unacked"], stats["reconnects"]) == (200, 0, 1)
    assert ingest_server.drops == 1
    assert [m["seq"] for m in ingest_server.received("run-x")] == list(range(200))
    assert ingest_server.receive_count > 200


def test_backend_restart_mid_run(ingest_server: IngestServer) -> None:
    em = streaming(ingest_server, "run-r", range(1, 21))
    assert wait_until(lambda: em.stats["acked"] == 20)

    ingest_server.stop()
    assert wait_until(lambda: not em.stats["connected"])
    send_epochs(em, "run-r", range(21, 41))
    assert em.stats["unacked"] == 20
    ingest_server.restart()

    stats = em.close(timeout=5.0)
    assert (stats["acked"], stats["unacked"], stats["reconnects"]) == (40, 0, 1)
    assert [m["seq"] for m in ingest_server.received("run-r")] == list(range(40))


def test_backend_down_at_start_then_up(ingest_server: IngestServer) -> None:
    ingest_server.stop()  # nothing listens on the port now
    em = streaming(ingest_server, "run-c")
    send_without_blocking(em, "run-c", range(1, 51))
    assert em.stats["unacked"] == 50 and not em.stats["connected"]

    ingest_server.restart()
    stats = em.close(timeout=5.0)
    assert (stats["sent"], stats["acked"], stats["unacked"]) == (50, 50, 0)
    assert [m["seq"] for m in ingest_server.received("run-c")] == list(range(50))


def test_backend_never_up_close_is_bounded(ingest_server: IngestServer) -> None:
    ingest_server.stop()
    em = streaming(ingest_server, "run-d", range(1, 11))

    t0 = time.monotonic()
    stats = em.close(timeout=0.5)
    assert time.monotonic() - t0 < 1.2
    assert stats["unacked"] == stats["sent"] == 10
    assert stats["acked"] == 0 and stats["connected"] is False
    assert emitter_threads("run-d") == []
    with pytest.raises(RuntimeError, match="closed"):
        em.send("finished", summary={})


def test_error_frame_drops_and_counts_the_refused_message(ingest_server: IngestServer) -> None:
    ingest_server.refuse_seqs = {3}
    em = streaming(ingest_server, "run-e", range(1, 7))

    stats = em.close(timeout=5.0)
    assert (stats["acked"], stats["refused"], stats["unacked"]) == (5, 1, 0)
    assert len(stats["errors"]) == 1
    assert stats["errors"][0]["seq"] == 3
    assert "refused" in stats["errors"][0]["detail"]
    assert [m["seq"] for m in ingest_server.received("run-e")] == [0, 1, 2, 4, 5]


def test_unknown_and_duplicate_frames_are_harmless(ingest_server: IngestServer) -> None:
    ingest_server.noisy = True
    em = streaming(ingest_server, "run-n", range(1, 11))
    stats = em.close(timeout=5.0)
    assert (stats["sent"], stats["acked"], stats["unacked"], stats["refused"]) == (10, 10, 0, 0)


def test_slow_acks_never_slow_the_producer(ingest_server: IngestServer) -> None:
    ingest_server.ack_delay = 0.02
    em = streaming(ingest_server, "run-s")
    send_without_blocking(em, "run-s", range(1, 21))
    stats = em.close(timeout=5.0)
    assert stats["acked"] == 20


def test_token_is_sent_as_bearer_header(ingest_server: IngestServer) -> None:
    with Emitter(ingest_server.url, "run-t", token="s3cret", max_backoff=FAST) as em:
        em.send("failed", reason="test")
    with Emitter(ingest_server.url, "run-u", max_backoff=FAST) as em:
        em.send("failed", reason="test")
    first, second = ingest_server.request_headers
    assert first["Authorization"] == "Bearer s3cret"
    assert "Authorization" not in second


def test_messages_sent_before_start_are_delivered(ingest_server: IngestServer) -> None:
    em = Emitter(ingest_server.url, "run-p", max_backoff=FAST)
    em.send("started", config={}, data={})
    em.start()
    em.send("finished", summary={"status": "completed"})
    assert em.close(timeout=5.0)["acked"] == 2
    assert [m["type"] for m in ingest_server.received("run-p")] == ["started", "finished"]


@pytest.mark.cli
@pytest.mark.timeout(240)
def test_real_cli_streams_every_record_once_despite_a_drop(
    ingest_server: IngestServer, tmp_path: Path
) -> None:
    ingest_server.drop_after = 3
    cmd = [
        sys.executable, "-m", "trainer", "--preset", "synthetic", "--epochs", "6",
        "--set", "synthetic_samples=300", "--backend", ingest_server.url,
        "--run-id", "stream-test", "--runs-dir", str(tmp_path), "--quiet",
    ]
    proc = subprocess.run(
        cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=200, check=False
    )
    assert proc.returncode == 0, proc.stderr

    stored = ingest_server.received("stream-test")
    assert ingest_server.refused == []
    assert ingest_server.drops == 1
    assert ingest_server.receive_count > len(stored)  # the unacked 3rd message was resent
    types = [m["type"] for m in stored]
    assert types.count("started") == 1 and types[0] == "started"
    assert types.count("finished") == 1 and types[-1] == "finished"
    records = [m["record"] for m in stored if m["type"] == "epoch"]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]

    lines = (tmp_path / "stream-test" / "metrics.jsonl").read_text("utf-8").splitlines()
    assert records == [json.loads(line) for line in lines]
