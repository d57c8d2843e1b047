"""A stranger's loop streams through cw.init / log / finish to a real `causalwatch up`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import stranger_loop
from utils.backend_server import BackendServer

import causalwatch as cw
from causalwatch.local import is_synced, read_messages


def assert_stored(stored: list[dict[str, Any]], logged: list[dict[str, float]]) -> None:
    """Every logged value is on the server: record fields as fields, the rest as custom."""
    assert [r["epoch"] for r in stored] == list(range(1, len(logged) + 1))
    for record, values in zip(stored, logged, strict=True):
        assert record["step"] == record["epoch"] * 10
        for key, value in values.items():
            if "/" in key or key == "weight_norm":
                assert record["custom"][key] == pytest.approx(value, rel=1e-12), key
            else:
                assert record[key] == pytest.approx(value, rel=1e-12), key
        shares = [record[f"share_{t}"] for t in ("recon", "sparse", "acyclic", "disen")]
        assert sum(shares) == pytest.approx(100.0)
        assert record["epoch_seconds"] >= 0 and record["eta_seconds"] >= 0
        assert record["time"] == pytest.approx(time.time(), abs=600)


def test_stranger_loop_streams_every_field_and_raises_a_red_flag(
    shared_backend: BackendServer, sdk_env: Path
) -> None:
    run = cw.init(
        name="tiny SEM", config={"lr": 0.05, "lambda_sparse": 1e-7, "hidden": [4, 4]},
        server=shared_backend.url, reference=stranger_loop.REFERENCE,
        variables=stranger_loop.VARIABLES, epochs=30,
    )
    assert cw.current_run() is run and not run.offline
    logged = stranger_loop.train(run, 30)
    cw.finish()
    assert cw.current_run() is None

    server = shared_backend.run(run.id)
    assert server["kind"] == "sdk" and server["status"] == "completed", server
    assert server["name"] == "tiny SEM"
    assert server["config"]["hidden"] == [4, 4]
    assert_stored(shared_backend.metrics(run.id), logged)
    graph = shared_backend.client.get(f"/api/runs/{run.id}/graph").json()
    assert graph["epoch"] == 30 and len(graph["probabilities"]) == 4
    # The regularizers are a vanishing share of this loss: the same rule as for our trainer.
    alerts = shared_backend.client.get(f"/api/runs/{run.id}/alerts").json()
    assert "regularizers_silent" in {a["rule"] for a in alerts}, alerts
    # Everything was acknowledged: the local copy says it needs no sync.
    assert is_synced(run.folder)
    kinds = [m["type"] for m in read_messages(run.folder)]
    assert kinds[0] == "started" and kinds[-1] == "finished" and kinds.count("epoch") == 30


def test_backend_killed_mid_run_loses_and_duplicates_nothing(
    sdk_backend: BackendServer, sdk_env: Path
) -> None:
    slowest = [0.0]

    class Timed:
        """The run, with each log call timed: logging must never wait for the server."""

        def __init__(self, run: cw.Run) -> None:
            self.run = run

        def log(self, *args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            self.run.log(*args, **kwargs)
            slowest[0] = max(slowest[0], time.perf_counter() - started)

        def log_graph(self, *args: Any, **kwargs: Any) -> None:
            self.run.log_graph(*args, **kwargs)

    def outage(epoch: int) -> None:
        if epoch == 8:
            sdk_backend.kill()  # SIGKILL: the backend loses whatever it had not committed
        if 8 <= epoch < 20:
            time.sleep(0.05)  # the loop goes on training while the server is gone
        if epoch == 20:
            sdk_backend.start()  # the same port and database

    run = cw.init(name="outage", server=sdk_backend.url, epochs=30)
    logged = stranger_loop.train(Timed(run), 30, on_epoch=outage)
    run.finish()
    # Waiting on the network would take seconds (connect timeouts, backoff); 0.5 s leaves
    # room for a loaded test machine's scheduling.
    assert slowest[0] < 0.5, f"a log() call took {slowest[0]:.3f} s"
    assert_stored(sdk_backend.metrics(run.id), logged)
    assert sdk_backend.run(run.id)["status"] == "completed"
    assert is_synced(run.folder)


def test_context_manager_marks_a_crashed_loop_failed(
    shared_backend: BackendServer, sdk_env: Path
) -> None:
    with pytest.raises(ZeroDivisionError), cw.init(server=shared_backend.url) as run:
        run.log({"loss_total": 1.0, "my_metric": 2})
        _ = 1 / 0
    server = shared_backend.run(run.id)
    assert server["status"] == "failed"
    assert "ZeroDivisionError('division by zero')" in server["status_reason"]
    assert [r["custom"] for r in shared_backend.metrics(run.id)] == [{"my_metric": 2.0}]


EXITING_SCRIPT = """
import sys
import causalwatch as cw
run = cw.init(name=sys.argv[2], server=sys.argv[1])
for step in range(3):
    run.log({"loss_total": 1.0 / (step + 1)})
print(run.id, flush=True)
if sys.argv[2] == "crash":
    raise RuntimeError("the loop crashed")
"""


@pytest.mark.parametrize(("how", "status"), [("crash", "failed"), ("exit", "completed")])
def test_process_end_finishes_an_open_run(
    shared_backend: BackendServer, sdk_env: Path, tmp_path: Path, how: str, status: str
) -> None:
    import subprocess
    import sys

    script = tmp_path / "loop.py"
    script.write_text(EXITING_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), shared_backend.url, how], cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )
    run_id = proc.stdout.split()[0]
    server = shared_backend.run(run_id)
    assert server["status"] == status, (server, proc.stderr)
    assert len(shared_backend.metrics(run_id)) == 3
    if how == "crash":
        assert proc.returncode == 1 and "Traceback" in proc.stderr  # the user's hook still ran
        assert "RuntimeError('the loop crashed')" in server["status_reason"]
    folder = sdk_env / run_id  # $CAUSALWATCH_DIR
    assert json.loads((folder / "run.json").read_text())["server_run_id"] == run_id
    assert oct((folder / "run.json").stat().st_mode & 0o777) == "0o600"


def test_a_server_with_a_token_takes_runs_that_present_it(
    tmp_path: Path,
    uci_csv_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "sdk-test-admin-token-0123456789"
    server = BackendServer(tmp_path / "guarded", uci_csv_path, env={"CAUSALWATCH_TOKEN": token})
    server.root.mkdir()
    server.client.headers["Authorization"] = f"Bearer {token}"
    server.start()
    try:
        with cw.init(name="with token", server=server.url, token=token) as run:
            run.log({"loss_total": 1.0})
        assert server.run(run.id)["status"] == "completed"
        assert len(server.metrics(run.id)) == 1

        # Without it the run still happens, offline, and says why.
        stray = cw.init(name="no token", server=server.url)
        assert stray.offline
        assert "refused the run (HTTP 401" in capsys.readouterr().err
        stray.finish()
        with pytest.raises(ConnectionError, match="HTTP 401"):
            cw.init(server=server.url, mode="online")

        # A script in the folder `causalwatch up` ran from finds the token it generated.
        runs_dir = tmp_path / "project" / "runs"
        runs_dir.mkdir(parents=True)
        (runs_dir / ".causalwatch-token").write_text(token + "\n")
        monkeypatch.setenv("CAUSALWATCH_RUNS_DIR", str(runs_dir))
        found = cw.init(name="token file", server=server.url, mode="online")
        found.finish()
        assert server.run(found.id)["status"] == "completed"
    finally:
        server.close()
