"""The websocket emitter against a real ingest server: delivery, faults, and the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from trainer.emitter import Emitter, ingest_url

if TYPE_CHECKING:
    from utils.ws_ingest_server import IngestServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Short backoff keeps reconnect-driven tests fast; the production default is 5 s.
FAST = 0.2


def epoch_record(run_id: str, epoch: int) -> dict[str, Any]:
    """A valid trainer.protocol.EpochRecord (the test server validates epoch messages)."""
    return {
        "run_id": run_id, "epoch": epoch, "step": epoch * 10, "time": 1700000000.0 + epoch,
        "lr": 1e-4, "loss_total": 1.0 / epoch, "loss_recon": 0.9 / epoch,
        "loss_sparse": 0.05, "loss_acyclic": 0.03, "loss_disen": 0.02,
        "share_recon": 90.0, "share_sparse": 5.0, "share_acyclic": 3.0, "share_disen": 2.0,
        "clip_pct": 0.0, "grad_norm_mean": 0.5, "grad_norm_max": 0.9,
        "logit_mean": -1.0, "logit_std": 0.7, "edges_at_05": 4, "threshold_tuned": 0.4,
        "edges_tuned": 5, "edges_topk": 6, "epoch_seconds": 0.01, "eta_seconds": 1.0,
    }


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
    em = Emitter(ingest_server.url, "run-a", max_backoff=FAST)
    em.start()
    seqs = [em.send("epoch", record=epoch_record("run-a", e)) for e in range(1, 201)]
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
    em = Emitter(ingest_server.url, "run-b", max_backoff=FAST)
    em.start()
    sent = {em.send("epoch", record=epoch_record("run-b", e)): e for e in range(1, 201)}

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
    em = Emitter(ingest_server.url, "run-x", max_backoff=FAST)
    em.start()
    for e in range(1, 201):
        em.send("epoch", record=epoch_record("run-x", e))

    stats = em.close(timeout=10.0)
    assert (stats["acked"], stats["unacked"], stats["reconnects"]) == (200, 0, 1)
    assert ingest_server.drops == 1
    assert [m["seq"] for m in ingest_server.received("run-x")] == list(range(200))
    assert ingest_server.receive_count > 200


def test_backend_restart_mid_run(ingest_server: IngestServer) -> None:
    em = Emitter(ingest_server.url, "run-r", max_backoff=FAST)
    em.start()
    for e in range(1, 21):
        em.send("epoch", record=epoch_record("run-r", e))
    assert wait_until(lambda: em.stats["acked"] == 20)

    ingest_server.stop()
    assert wait_until(lambda: not em.stats["connected"])
    for e in range(21, 41):
        em.send("epoch", record=epoch_record("run-r", e))
    assert em.stats["unacked"] == 20
    ingest_server.restart()

    stats = em.close(timeout=5.0)
    assert (stats["acked"], stats["unacked"], stats["reconnects"]) == (40, 0, 1)
    assert [m["seq"] for m in ingest_server.received("run-r")] == list(range(40))


def test_backend_down_at_start_then_up(ingest_server: IngestServer) -> None:
    ingest_server.stop()  # nothing listens on the port now
    em = Emitter(ingest_server.url, "run-c", max_backoff=FAST)
    em.start()
    for e in range(1, 51):
        t0 = time.perf_counter()
        em.send("epoch", record=epoch_record("run-c", e))
        assert time.perf_counter() - t0 < 0.010
    assert em.stats["unacked"] == 50 and not em.stats["connected"]

    ingest_server.restart()
    stats = em.close(timeout=5.0)
    assert (stats["sent"], stats["acked"], stats["unacked"]) == (50, 50, 0)
    assert [m["seq"] for m in ingest_server.received("run-c")] == list(range(50))


def test_backend_never_up_close_is_bounded(ingest_server: IngestServer) -> None:
    ingest_server.stop()
    em = Emitter(ingest_server.url, "run-d", max_backoff=FAST)
    em.start()
    for e in range(1, 11):
        em.send("epoch", record=epoch_record("run-d", e))

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
    em = Emitter(ingest_server.url, "run-e", max_backoff=FAST)
    em.start()
    for e in range(1, 7):
        em.send("epoch", record=epoch_record("run-e", e))

    stats = em.close(timeout=5.0)
    assert (stats["acked"], stats["refused"], stats["unacked"]) == (5, 1, 0)
    assert len(stats["errors"]) == 1
    assert stats["errors"][0]["seq"] == 3
    assert "refused" in stats["errors"][0]["detail"]
    assert [m["seq"] for m in ingest_server.received("run-e")] == [0, 1, 2, 4, 5]


def test_unknown_and_duplicate_frames_are_harmless(ingest_server: IngestServer) -> None:
    ingest_server.noisy = True
    em = Emitter(ingest_server.url, "run-n", max_backoff=FAST)
    em.start()
    for e in range(1, 11):
        em.send("epoch", record=epoch_record("run-n", e))
    stats = em.close(timeout=5.0)
    assert (stats["sent"], stats["acked"], stats["unacked"], stats["refused"]) == (10, 10, 0, 0)


def test_slow_acks_never_slow_the_producer(ingest_server: IngestServer) -> None:
    ingest_server.ack_delay = 0.02
    em = Emitter(ingest_server.url, "run-s", max_backoff=FAST)
    em.start()
    for e in range(1, 21):
        t0 = time.perf_counter()
        em.send("epoch", record=epoch_record("run-s", e))
        assert time.perf_counter() - t0 < 0.010
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
