"""Offline runs and `causalwatch sync`: uploaded exactly once, however often or interrupted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from utils.backend_server import BackendServer
from utils.sdk_cli import cli_argv, cli_env, run_cli

import causalwatch as cw
from causalwatch.local import RunInfo, is_synced, read_messages


def offline_run(runs: Path, rows: int) -> cw.Run:
    run = cw.init(name="offline", config={"lr": 0.01}, mode="offline", dir=runs, epochs=rows)
    for i in range(rows):
        run.log({"loss_recon": 1.0 + i, "loss_sparse": 0.5, "accuracy": i / rows}, step=i)
    run.finish()
    return run


def sdk_runs(backend: BackendServer) -> list[dict[str, object]]:
    return backend.client.get("/api/runs", params={"kind": "sdk"}).json()["runs"]


def assert_uploaded_once(backend: BackendServer, server_id: str, rows: int) -> None:
    records = backend.metrics(server_id)
    assert [r["epoch"] for r in records] == list(range(1, rows + 1))
    assert [r["step"] for r in records] == list(range(rows))
    assert all(r["loss_recon"] == 1.0 + i for i, r in enumerate(records))
    assert all(r["custom"] == {"accuracy": i / rows} for i, r in enumerate(records))
    assert backend.run(server_id)["status"] == "completed"
    assert [r["id"] for r in sdk_runs(backend)] == [server_id]


def test_offline_run_then_sync_twice_uploads_once(
    sdk_backend: BackendServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    run = offline_run(runs, 30)
    assert run.offline and run.id.startswith("offline-")
    err = capsys.readouterr().err
    assert f"causalwatch sync {run.folder}" in err  # the one line telling what to do

    first = run_cli("sync", str(runs), "--server", sdk_backend.url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    server_id = RunInfo.read(run.folder).server_run_id
    assert server_id is not None and f"synced 30 epoch(s) to {sdk_backend.url}" in first.stdout
    assert_uploaded_once(sdk_backend, server_id, 30)

    second = run_cli("sync", str(run.folder), "--server", sdk_backend.url, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already synced" in second.stdout and "nothing to do" in second.stdout
    assert_uploaded_once(sdk_backend, server_id, 30)

    # The marker lost (say, the folder copied without it), the server named another way: the
    # finished server run refuses the socket, and its stored epochs prove the upload complete.
    (run.folder / "synced").unlink()
    alias = sdk_backend.url.replace("127.0.0.1", "localhost")
    third = run_cli("sync", str(runs), "--server", alias, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert is_synced(run.folder)
    assert_uploaded_once(sdk_backend, server_id, 30)


def test_interrupted_sync_resumes_the_same_server_run(
    sdk_backend: BackendServer, tmp_path: Path
) -> None:
    rows = 4000
    runs = tmp_path / "runs"
    run = offline_run(runs, rows)
    sync = subprocess.Popen(
        cli_argv("sync", str(runs), "--server", sdk_backend.url), cwd=tmp_path, env=cli_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        server_id = None
        while time.monotonic() < deadline:
            server_id = RunInfo.read(run.folder).server_run_id
            if server_id and (sdk_backend.run(server_id).get("last_epoch") or 0) >= 200:
                break
            time.sleep(0.02)
        sync.send_signal(signal.SIGKILL)
        sync.wait(10)
    finally:
        if sync.poll() is None:
            sync.kill()
    assert server_id is not None
    cut = sdk_backend.run(server_id)
    assert cut["status"] == "running" and cut["last_epoch"] < rows, "killed too late"
    assert not is_synced(run.folder)

    resumed = run_cli("sync", str(runs), "--server", sdk_backend.url, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "refused" not in resumed.stdout  # every resent record was identical: acked
    assert RunInfo.read(run.folder).server_run_id == server_id  # no second server run
    assert_uploaded_once(sdk_backend, server_id, rows)


def test_online_run_whose_server_went_away_is_synced_later(
    sdk_backend: BackendServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = cw.init(name="left behind", server=sdk_backend.url, epochs=5)
    sdk_backend.kill()
    for i in range(5):
        run.log({"loss_recon": 1.0 + i, "loss_sparse": 0.5, "accuracy": i / 5}, step=i)
    started = time.monotonic()
    run.finish()
    assert time.monotonic() - started < 10  # finish waits a bounded time, then hands over
    err = capsys.readouterr().err
    assert f"upload it with: causalwatch sync {run.folder}" in err
    assert not is_synced(run.folder)

    sdk_backend.start()
    synced = run_cli("sync", str(run.folder.parent), cwd=tmp_path)  # the URL from run.json
    assert synced.returncode == 0, synced.stderr
    assert "refused" not in synced.stdout
    assert_uploaded_once(sdk_backend, run.id, 5)


def test_sync_without_a_server_keeps_the_folder_and_says_so(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = offline_run(runs, 3)
    proc = run_cli("sync", str(runs), "--server", "http://127.0.0.1:9", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "unreachable" in proc.stderr and run.folder.name in proc.stderr
    assert not is_synced(run.folder)
    assert RunInfo.read(run.folder).server_run_id is None


def test_sync_of_a_missing_folder_names_it(tmp_path: Path) -> None:
    proc = run_cli("sync", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == f"causalwatch sync: {tmp_path / 'nowhere'}: no such directory\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("sync", str(empty), cwd=tmp_path)
    assert proc.returncode == 2 and "no causalwatch run folder" in proc.stderr


def test_rows_the_server_refuses_are_named_and_do_not_block_the_sync(
    sdk_backend: BackendServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    run = cw.init(mode="offline", dir=runs, epochs=3)
    for i in range(5):  # two rows more than the run's declared length
        run.log({"loss_total": 1.0 + i})
    run.finish()
    assert "row 4 is beyond epochs=3" in capsys.readouterr().err
    proc = run_cli("sync", str(runs), "--server", sdk_backend.url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "synced 3 epoch(s)" in proc.stdout
    assert "2 epoch(s) refused by the server (record.epoch: 4 is beyond" in proc.stdout
    server_id = RunInfo.read(run.folder).server_run_id
    assert server_id is not None
    assert [r["epoch"] for r in sdk_backend.metrics(server_id)] == [1, 2, 3]
    again = run_cli("sync", str(runs), "--server", sdk_backend.url, cwd=tmp_path)
    assert "already synced" in again.stdout


ENDLESS_LOOP = """
import sys, time
import causalwatch as cw
run = cw.init(name="killed", mode="offline", dir=sys.argv[1])
print(run.folder, flush=True)
step = 0
while True:
    run.log({"loss_recon": 1.0 + step, "loss_sparse": 0.5, "accuracy": step / 1e6}, step=step)
    step += 1
    time.sleep(0.0005)
"""


def test_a_killed_training_process_is_synced_as_failed(
    sdk_backend: BackendServer, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    script = tmp_path / "loop.py"
    script.write_text(ENDLESS_LOOP)
    loop = subprocess.Popen([sys.executable, str(script), str(runs)], cwd=tmp_path,
                            env=cli_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert loop.stdout is not None
        folder = Path(loop.stdout.readline().strip())
        journal = folder / "messages.jsonl"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and journal.stat().st_size < 60_000:
            time.sleep(0.02)
        # While its process lives, the run is not finished: sync leaves it alone.
        busy = run_cli("sync", str(runs), "--server", sdk_backend.url, cwd=tmp_path)
        assert busy.returncode == 1 and f"still being written by process {loop.pid}" in busy.stderr
    finally:
        loop.send_signal(signal.SIGKILL)  # no atexit, no finish(), maybe a torn last line
        loop.wait(10)
    assert RunInfo.read(folder).server_run_id is None
    logged = [m for m in read_messages(folder) if m["type"] == "epoch"]

    proc = run_cli("sync", str(runs), "--server", sdk_backend.url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    server_id = RunInfo.read(folder).server_run_id
    assert server_id is not None
    run = sdk_backend.run(server_id)
    assert run["status"] == "failed" and "without finish()" in run["status_reason"]
    stored = sdk_backend.metrics(server_id)
    assert [r["epoch"] for r in stored] == [m["record"]["epoch"] for m in logged]
    assert len(stored) > 100
