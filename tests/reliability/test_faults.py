"""Faults injected into real processes: nothing acknowledged is ever lost.

Each test prints a line `FAULT <name>: expected N records, stored M` (visible with -s);
docs/reliability.md collects them.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from utils.backend_server import BackendServer
from utils.stream_trainer import EPOCH_SECONDS_ENV


def report(name: str, expected: int, stored: int) -> None:
    print(f"FAULT {name}: expected {expected} records, stored {stored}")


# The faults hit the stream, the processes and the database, not the model: the trainers are
# stand-ins (utils/stream_trainer.py) with the real command line, files and emitter, paced
# so that a run is still streaming when its fault strikes.
STAND_IN: dict[str, Any] = {"trainer": "stream", "env": {EPOCH_SECONDS_ENV: "0.2"}}


@pytest.fixture
def server(tmp_path: Path, uci_csv_path: Path) -> Iterator[BackendServer]:
    with BackendServer(tmp_path, uci_csv_path, max_runs=5, **STAND_IN) as srv:
        yield srv


def _epochs(srv: BackendServer, run_id: str) -> list[int]:
    return [r["epoch"] for r in srv.metrics(run_id)]


def test_backend_sigkill_while_five_runs_stream(server: BackendServer) -> None:
    epochs = 25
    runs = [server.create("synthetic", epochs=epochs, synthetic_samples=1500, patience=0,
                          seed=i)["id"] for i in range(5)]
    for run_id in runs:
        server.wait_for(run_id, lambda r: (r["last_epoch"] or 0) >= 2, timeout=180)
    server.kill()  # trainers train on, buffering what nobody acknowledges
    time.sleep(2.0)
    server.start()
    stored = 0
    for run_id in runs:
        done = server.wait_finished(run_id, timeout=240)
        assert done["status"] == "completed", done["status_reason"]
        got = _epochs(server, run_id)
        assert got == list(range(1, epochs + 1)), (run_id, got)
        stored += len(got)
    with sqlite3.connect(server.db_path) as db:
        dupes = db.execute(
            "select count(*) from (select run_id, epoch from metrics group by 1, 2 "
            "having count(*) > 1)"
        ).fetchone()[0]
    assert dupes == 0
    report("backend SIGKILL with 5 streams", 5 * epochs, stored)


def test_trainer_sigkill_mid_epoch_keeps_every_acknowledged_epoch(server: BackendServer) -> None:
    run_id = server.create("synthetic", epochs=500, synthetic_samples=3000, patience=0)["id"]
    before = server.wait_for(run_id, lambda r: (r["last_epoch"] or 0) >= 3)["last_epoch"]
    pid = _pid(server, run_id)
    os.kill(pid, signal.SIGKILL)
    failed = server.wait_finished(run_id, timeout=60)
    assert failed["status"] == "failed" and "SIGKILL" in failed["status_reason"]
    got = _epochs(server, run_id)
    assert got == list(range(1, len(got) + 1)) and len(got) >= before
    report("trainer SIGKILL mid-epoch", len(got), len(got))


def test_a_held_sqlite_write_lock_delays_ingest_but_loses_nothing(
    server: BackendServer,
) -> None:
    epochs = 30
    run_id = server.create("synthetic", epochs=epochs, synthetic_samples=1500, patience=0)["id"]
    server.wait_for(run_id, lambda r: (r["last_epoch"] or 0) >= 2)
    # Another process takes the database's write lock for 4 s while the trainer streams.
    holder = subprocess.Popen(
        ["python3", "-c",
         "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "db.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(4); "
         "db.execute('ROLLBACK')", str(server.db_path)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.wait(30)
    done = server.wait_finished(run_id, timeout=180)
    assert done["status"] == "completed", done["status_reason"]
    got = _epochs(server, run_id)
    assert got == list(range(1, epochs + 1))
    report("SQLite write lock held 4 s", epochs, len(got))


def test_full_disk_refuses_new_runs_and_keeps_what_is_stored(
    tmp_path: Path, uci_csv_path: Path
) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                       check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        pytest.fail(f"cannot mount a tmpfs to fill (needs root): {err}")
    os.environ["CAUSALWATCH_MIN_FREE_MB"] = "2"
    try:
        srv = BackendServer(mount, uci_csv_path, **STAND_IN).start()
    finally:
        del os.environ["CAUSALWATCH_MIN_FREE_MB"]
    try:
        run_id = srv.create("synthetic", epochs=4, synthetic_samples=200)["id"]
        assert srv.wait_finished(run_id)["status"] == "completed"
        before = srv.metrics(run_id)
        filler = mount / "filler.bin"
        with filler.open("wb", buffering=0) as fh:  # to the last byte; nothing left to flush
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        resp = srv.client.post("/api/runs", json={"preset": "synthetic"})
        assert resp.status_code == 507, resp.text
        assert "MB free in the runs directory" in resp.json()["detail"][0]["msg"]
        assert srv.metrics(run_id) == before  # everything stored is still served
        assert srv.client.get("/healthz").status_code == 200
        filler.unlink()
        again = srv.create("synthetic", epochs=2, synthetic_samples=200)
        assert srv.wait_finished(again["id"])["status"] == "completed"
        report("disk full (tmpfs)", len(before), len(srv.metrics(run_id)))
    finally:
        srv.close()
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _pid(srv: BackendServer, run_id: str) -> int:
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        if run_id in (proc.info.get("cmdline") or []):
            return int(proc.pid)
    raise AssertionError(f"no trainer for {run_id}")




def test_a_run_that_ends_while_the_backend_is_down_is_recovered_from_its_files(
    server: BackendServer,
) -> None:
    run_id = server.create("synthetic", epochs=12, synthetic_samples=400, patience=0)["id"]
    server.wait_for(run_id, lambda r: (r["last_epoch"] or 0) >= 1)
    server.kill()
    import psutil

    deadline = time.monotonic() + 120  # the trainer finishes alone, then gives up on acks
    while time.monotonic() < deadline and any(
        run_id in (p.info.get("cmdline") or []) for p in psutil.process_iter(["cmdline"])
    ):
        time.sleep(0.5)
    server.start()
    done = server.wait_finished(run_id, timeout=60)
    assert done["status"] == "completed", done["status_reason"]
    assert "recovered from its files" in done["status_reason"]
    assert _epochs(server, run_id) == list(range(1, 13))
    report("run ended while the backend was down", 12, len(_epochs(server, run_id)))


def test_a_dead_dashboard_takes_up_down_so_both_restart(
    tmp_path: Path, uci_csv_path: Path
) -> None:
    """Half a service must not look healthy: the API's health check would stay green."""
    from utils.backend_server import free_port

    srv = BackendServer(
        tmp_path, uci_csv_path, dashboard_port=free_port(), **STAND_IN
    ).start()
    try:
        run = srv.create("synthetic", epochs=3, synthetic_samples=300)
        srv.wait_finished(run["id"])
        (dashboard,) = srv.dashboard_processes()
        dashboard.kill()
        assert srv.process is not None
        srv.process.wait(30)  # `up` shuts down gracefully on its own
        log = srv.log_text()
        assert "the dashboard exited" in log and "Application shutdown complete" in log
        assert "Traceback" not in log
        srv.start()  # what a supervisor does: both come back, nothing stored is lost
        assert len(srv.metrics(run["id"])) == 3
    finally:
        srv.close()
