"""The backend end to end: real uvicorn, real SQLite file, real trainer processes (or the
streaming stand-in, where the model is not the point)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from utils.app_client import AppBackend
from utils.backend_server import BackendServer
from utils.records import epoch_record, frame
from websockets.sync.client import connect

from trainer.config import TrainConfig
from trainer.protocol import EpochRecord

SHORT = {"epochs": 4, "synthetic_samples": 300}


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.postgresql
def test_create_stream_complete_and_downloads_match(backend: BackendServer) -> None:
    run = backend.create("synthetic", **SHORT)
    assert run["status"] == "queued" and run["epochs_total"] == 4
    done = backend.wait_finished(run["id"])
    assert done["status"] == "completed", done["status_reason"]
    assert done["last_epoch"] == 4 and done["progress"] == 1.0
    assert done["data"]["reference_kind"] == "ground truth"

    streamed = jsonl(backend.runs_dir / run["id"] / "metrics.jsonl")
    stored = backend.metrics(run["id"])
    assert stored == streamed  # every field, exactly as the trainer wrote it
    # The best checkpoint's scores and the highest F1 are kept apart on the run.
    best = max((r for r in streamed if r["is_best"]), key=lambda r: r["epoch"])
    assert (done["best_epoch"], done["f1_at_best"], done["shd_at_best"]) == (
        best["epoch"], best["f1"], best["shd"])
    top = max(r["f1"] for r in streamed if r["f1"] is not None)
    assert done["max_f1_seen"] == top
    assert done["max_f1_epoch"] == min(r["epoch"] for r in streamed if r["f1"] == top)
    assert (done["best_f1"], done["best_shd"]) == (done["f1_at_best"], done["shd_at_best"])

    csv_resp = backend.client.get(f"/api/runs/{run['id']}/metrics", params={"format": "csv"})
    assert csv_resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(csv_resp.text)))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    # One number per cell: a run with no custom keys has no custom columns.
    assert list(rows[0]) == [f for f in EpochRecord.model_fields if f != "custom"]
    for row, rec in zip(rows, streamed, strict=True):
        assert float(row["loss_total"]) == pytest.approx(rec["loss_total"], rel=1e-12)
        assert row["f1"] == ("" if rec["f1"] is None else str(rec["f1"]))

    json_resp = backend.client.get(f"/api/runs/{run['id']}/metrics", params={"format": "json"})
    assert "attachment" in json_resp.headers["content-disposition"]
    assert json_resp.json() == streamed

    log = backend.client.get(f"/api/runs/{run['id']}/log")
    assert log.status_code == 200 and "attachment" in log.headers["content-disposition"]
    assert log.text == (backend.runs_dir / run["id"] / "train.log").read_text()

    events = backend.client.get(f"/api/runs/{run['id']}/events").json()
    assert [e["status"] for e in events] == ["queued", "running", "completed"]
    graph = backend.client.get(f"/api/runs/{run['id']}/graph").json()
    assert graph["epoch"] == 4 and len(graph["variables"]) == 13
    assert len(graph["probabilities"]) == 13
    assert all(len(row) == 13 and all(0 <= p <= 1 for p in row) for row in graph["probabilities"])
    assert all(graph["probabilities"][i][i] == 0 for i in range(13))
    earlier = backend.client.get(f"/api/runs/{run['id']}/graph", params={"epoch": 2}).json()
    assert earlier["epoch"] == 2
    missing = backend.client.get(f"/api/runs/{run['id']}/graph", params={"epoch": 3})
    assert missing.status_code == 404
    card = backend.client.get(f"/api/runs/{run['id']}/scorecard").json()
    assert [lvl["level"] for lvl in card["levels"]] == ["Minimum", "Good", "Excellent"]


def test_presets_and_healthz(app_backend: AppBackend) -> None:
    backend = app_backend
    names = [p["name"] for p in backend.client.get("/api/presets").json()]
    assert names == ["standard", "synthetic", "uci", "healthy"]
    uci = backend.client.get("/api/presets/uci").json()
    assert uci["config"]["lambda_recon"] == 100.0 and uci["config"]["standardize"] is True
    assert backend.client.get("/api/presets/nope").status_code == 404
    health = backend.client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["database"] == ("sqlite" if backend.is_sqlite else "postgresql")


def _bad_values(name: str) -> list[Any]:
    """A wrong-type value and, where the field has bounds, an out-of-range one."""
    field = TrainConfig.model_fields[name]
    bad: list[Any] = [{"not": "a value"}]
    for meta in field.metadata:
        for attr, delta in (("gt", 0), ("ge", -1), ("lt", 0), ("le", 1)):
            bound = getattr(meta, attr, None)
            if bound is not None:
                if attr in ("gt", "ge"):
                    bad.append(bound - (1 if attr == "ge" else 0) if isinstance(bound, int)
                               else bound - abs(bound) - 1)
                else:
                    bad.append(bound + delta if isinstance(bound, int) else bound * 2 + 1)
    return bad


def test_every_bad_config_field_is_named_in_a_422(app_backend: AppBackend) -> None:
    backend = app_backend
    tried = 0
    for name in TrainConfig.model_fields:
        for value in _bad_values(name):
            resp = backend.client.post(
                "/api/runs", json={"preset": "synthetic", "overrides": {name: value}}
            )
            assert resp.status_code == 422, (name, value, resp.text)
            detail = resp.json()["detail"][0]
            assert detail["field"] == f"overrides.{name}", (name, value, detail)
            assert name in detail["msg"] and "allowed" in detail["msg"]
            tried += 1
    assert tried > 2 * len(TrainConfig.model_fields) - 5
    unknown = backend.client.post(
        "/api/runs", json={"preset": "uci", "overrides": {"learning_rate": 1}}
    )
    assert unknown.status_code == 422
    assert "unknown field 'learning_rate'" in unknown.json()["detail"][0]["msg"]
    preset = backend.client.post("/api/runs", json={"preset": "fast"})
    assert preset.status_code == 422 and preset.json()["detail"][0]["field"] == "preset"
    assert backend.client.get("/api/runs").json()["count"] == 0, "nothing half-created"


def _ingest(backend: BackendServer, run_id: str):  # type: ignore[no-untyped-def]
    return connect(
        f"{backend.ws_url}/ws/ingest/{run_id}", open_timeout=10,
        additional_headers=backend.ingest_headers(run_id),
    )


def _queued_run(backend: BackendServer) -> str:
    """A run of kind sdk: no trainer of ours, the test feeds it by hand."""
    return str(backend.create_sdk("synthetic", epochs=50)["id"])


def test_malformed_frames_get_error_frames_and_the_connection_goes_on(
    backend: BackendServer,
) -> None:
    run_id = _queued_run(backend)
    bad_frames: list[str | bytes] = [
        "not json",
        b"\x00\x01binary",
        json.dumps([1, 2]),
        frame(run_id, 0).replace('"v": 1', '"v": 99'),
        frame(run_id, -1),
        frame("someone-else", 1),
        frame(run_id, 2, "gossip"),
        frame(run_id, 3, record={"epoch": 1}),
        frame(run_id, 4, record={**epoch_record(1, run_id), "loss_total": "big"}),
        frame(run_id, 5, record={**epoch_record(1, run_id), "clip_pct": 250.0}),
        frame(run_id, 6, record=epoch_record(1, run_id)).replace('"lr": 0.0001', '"lr": NaN'),
        frame(run_id, 7, record=epoch_record(51, run_id)),
        "x" * 1_500_000,
    ]
    with _ingest(backend, run_id) as ws:
        for bad in bad_frames:
            ws.send(bad)
            reply = json.loads(ws.recv(timeout=10))
            assert reply["type"] == "error", (str(bad)[:80], reply)
            assert reply["detail"]
        ws.send(frame(run_id, 8, record=epoch_record(1, run_id)))
        assert json.loads(ws.recv(timeout=10)) == {"type": "ack", "seq": 8}
    stored = backend.metrics(run_id)
    assert [r["epoch"] for r in stored] == [1]
    assert stored[0]["lr"] == 1e-4


@pytest.mark.postgresql
def test_duplicate_and_out_of_order_epochs_are_stored_once(backend: BackendServer) -> None:
    run_id = _queued_run(backend)
    order = [3, 1, 2, 2, 3, 5, 4, 1]
    with _ingest(backend, run_id) as ws:
        for seq, epoch in enumerate(order):
            ws.send(frame(run_id, seq, record=epoch_record(epoch, run_id, loss_total=float(epoch))))
            assert json.loads(ws.recv(timeout=10)) == {"type": "ack", "seq": seq}
        ws.send(json.dumps({"v": 1, "type": "finished", "run_id": run_id, "seq": len(order),
                            "summary": {"status": "completed", "reason": "fed by hand"}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "ack"
    # A run of kind sdk ends on its feeder's word.
    done = backend.run(run_id)
    assert (done["status"], done["status_reason"]) == ("completed", "fed by hand")
    stored = backend.metrics(run_id)
    assert [r["epoch"] for r in stored] == [1, 2, 3, 4, 5]
    assert [r["loss_total"] for r in stored] == [1.0, 2.0, 3.0, 4.0, 5.0]
    count = backend.query("select count(*) from metrics where run_id = :run", run=run_id)
    assert count[0][0] == 5
    # The run had ended: once its feeder is gone, the backend holds none of its state.
    deadline = time.monotonic() + 10
    while backend.client.get("/healthz").json()["runs_in_memory"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backend.client.get("/healthz").json()["runs_in_memory"] == 0


def test_browser_websocket_receives_live_records(stream_backend: BackendServer) -> None:
    backend = stream_backend
    run = backend.create("synthetic", epochs=6, synthetic_samples=600)
    seen: list[int] = []
    statuses: list[str] = []
    with connect(f"{backend.ws_url}/ws/runs/{run['id']}", open_timeout=10) as ws:
        snapshot = json.loads(ws.recv(timeout=10))
        assert snapshot["type"] == "snapshot" and snapshot["run"]["id"] == run["id"]
        seen += [m["epoch"] for m in snapshot["metrics"]]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "completed" not in statuses:
            event = json.loads(ws.recv(timeout=60))
            if event["type"] == "metric":
                seen.append(event["record"]["epoch"])
                assert event["record"]["run_id"] == run["id"]
            elif event["type"] == "status":
                statuses.append(event["run"]["status"])
    assert seen == [1, 2, 3, 4, 5, 6]
    assert statuses[-1] == "completed"


def test_all_runs_stream_sends_status_changes(stream_backend: BackendServer) -> None:
    backend = stream_backend
    with connect(f"{backend.ws_url}/ws/runs", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
        run = backend.create("synthetic", **SHORT)
        statuses = []
        while "completed" not in statuses:
            event = json.loads(ws.recv(timeout=120))
            if event["type"] == "status" and event["run_id"] == run["id"]:
                statuses.append(event["run"]["status"])
    assert statuses == ["queued", "running", "completed"]


def test_killed_trainer_marks_the_run_failed_and_keeps_its_metrics(
    stream_backend: BackendServer,
) -> None:
    backend = stream_backend
    run = backend.create("synthetic", epochs=500, synthetic_samples=2000, patience=0)
    running = backend.wait_for(run["id"], lambda r: (r["last_epoch"] or 0) >= 3)
    pid = _trainer_pid(backend, run["id"])
    os.kill(pid, signal.SIGKILL)
    failed = backend.wait_finished(run["id"], timeout=30)
    assert failed["status"] == "failed"
    assert "SIGKILL" in failed["status_reason"]
    kept = backend.metrics(run["id"])
    assert len(kept) >= running["last_epoch"]
    assert [r["epoch"] for r in kept] == list(range(1, len(kept) + 1))


def test_stop_ends_a_running_run_gracefully(stream_backend: BackendServer) -> None:
    backend = stream_backend
    run = backend.create("synthetic", epochs=500, synthetic_samples=2000, patience=0)
    backend.wait_for(run["id"], lambda r: (r["last_epoch"] or 0) >= 2)
    resp = backend.client.post(f"/api/runs/{run['id']}/stop")
    assert resp.status_code == 200
    stopped = backend.wait_finished(run["id"], timeout=30)
    assert stopped["status"] == "stopped"
    log = (backend.runs_dir / run["id"] / "train.log").read_text()
    assert "STOPPED" in log  # the trainer ended its epoch and wrote its outcome
    assert backend.client.post(f"/api/runs/{run['id']}/stop").status_code == 409


@pytest.mark.postgresql
def test_backend_killed_mid_run_restarts_and_reconciles(stream_backend: BackendServer) -> None:
    backend = stream_backend
    alive = backend.create("synthetic", epochs=40, synthetic_samples=2000, patience=0)
    doomed = backend.create("synthetic", epochs=500, synthetic_samples=2000, patience=0)
    backend.wait_for(alive["id"], lambda r: (r["last_epoch"] or 0) >= 2)
    backend.wait_for(doomed["id"], lambda r: (r["last_epoch"] or 0) >= 2)
    doomed_pid = _trainer_pid(backend, doomed["id"])
    backend.kill()
    os.kill(doomed_pid, signal.SIGKILL)  # this one dies while nobody watches
    if backend.is_sqlite:
        assert backend.query("pragma integrity_check")[0][0] == "ok"
    time.sleep(1.0)  # the surviving trainer trains on and buffers
    backend.start()
    gone = backend.wait_finished(doomed["id"], timeout=30)
    assert gone["status"] == "failed" and "backend restarted" in gone["status_reason"]
    done = backend.wait_finished(alive["id"], timeout=120)
    assert done["status"] == "completed", done["status_reason"]
    stored = backend.metrics(alive["id"])
    assert [r["epoch"] for r in stored] == list(range(1, 41)), "every epoch exactly once"
    assert stored == jsonl(backend.runs_dir / alive["id"] / "metrics.jsonl")


def test_restart_with_fix_links_runs_and_applies_the_patch(stream_backend: BackendServer) -> None:
    backend = stream_backend
    parent = backend.create("standard", epochs=3)
    backend.wait_finished(parent["id"])
    alerts = backend.client.get(f"/api/runs/{parent['id']}/alerts").json()
    raw = next(a for a in alerts if a["rule"] == "raw_variance")
    assert raw["suggested_changes"] == {"standardize": True}
    assert raw["epoch"] is None and "1.08e+06" in raw["message"]

    resp = backend.client.post(
        f"/api/runs/{parent['id']}/restart",
        json={"alert_id": raw["id"], "overrides": {"epochs": 2}},
    )
    assert resp.status_code == 201, resp.text
    child = resp.json()
    assert child["parent_id"] == parent["id"] and child["parent_alert_id"] == raw["id"]
    assert child["config"]["standardize"] is True and child["config"]["epochs"] == 2
    assert child["config"]["lambda_recon"] == parent["config"]["lambda_recon"]
    assert child["preset"] == "standard"
    assert backend.run(parent["id"])["children"] == [child["id"]]
    done = backend.wait_finished(child["id"])
    assert done["status"] == "completed"
    assert "raw_variance" not in {
        a["rule"] for a in backend.client.get(f"/api/runs/{child['id']}/alerts").json()
    }
    # The parent's alert is not the child's: no third trainer needed to show it.
    wrong = backend.client.post(f"/api/runs/{child['id']}/restart", json={"alert_id": raw["id"]})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["field"] == "alert_id"


def test_log_download_is_safe_against_path_tricks(app_backend: AppBackend) -> None:
    backend = app_backend
    for path in ["/api/runs/..%2F..%2Fetc%2Fpasswd/log", "/api/runs/../../etc/passwd/log",
                 "/api/runs/%2Fetc%2Fpasswd/log", "/api/runs/no-such-run/log"]:
        resp = backend.client.get(path)
        assert resp.status_code in (404, 422), (path, resp.status_code)
        assert "root:" not in resp.text


def _trainer_pid(backend: BackendServer, run_id: str) -> int:
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "trainer" in cmd and run_id in cmd:
            return int(proc.pid)
    raise AssertionError(f"no trainer process for {run_id}")
