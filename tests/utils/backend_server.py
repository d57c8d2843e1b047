"""A real backend for tests: `causalwatch up` in a subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Self

import httpx
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from utils.idle_trainer import write_idle_trainer
from utils.processes import stop_process, wait_until_answers
from utils.stream_trainer import write_stream_trainer

# What the backend's trainers are: `python -m trainer` itself, or a stand-in for tests about
# the stream rather than the model (utils/stream_trainer.py) or about processes only
# (utils/idle_trainer.py).
Trainer = Literal["real", "stream", "idle"]
STAND_INS: dict[str, Callable[[Path], Path]] = {
    "stream": write_stream_trainer, "idle": write_idle_trainer,
}

# Settings a backend under test never takes from the environment pytest runs in.
INHERITED_NOT = ("DATABASE_URL", "CAUSALWATCH_DB", "CAUSALWATCH_TOKEN")


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` ports free on `host`, all different: the sockets stay open until every port
    is picked, so the kernel cannot hand one out twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


class BackendClient:
    """What the tests do with a backend over its API, however it is served.

    `client` is an httpx client on the API; `runs_dir` and `db_url` are the backend's own.
    """

    runs_dir: Path
    db_url: str | None
    client: httpx.Client
    _engine: Engine | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db_path(self) -> Path:
        return self.runs_dir / "causalwatch.db"

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.db_path}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Read the backend's database directly (SQLite or PostgreSQL), behind its back."""
        if self._engine is None:
            self._engine = create_engine(self.database_url, poolclass=NullPool)
        with self._engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def create(self, preset: str = "synthetic", **overrides: Any) -> dict[str, Any]:
        resp = self.client.post("/api/runs", json={"preset": preset, "overrides": overrides})
        assert resp.status_code == 201, resp.text
        return resp.json()

    def create_sdk(self, preset: str = "synthetic", **overrides: Any) -> dict[str, Any]:
        """A run of kind sdk: running at once, fed by the test itself (`ingest_headers`)."""
        resp = self.client.post(
            "/api/runs", json={"preset": preset, "overrides": overrides, "kind": "sdk"}
        )
        assert resp.status_code == 201, resp.text
        run = resp.json()
        assert run["status"] == "running" and run["ingest_token"], run
        return run

    def run(self, run_id: str) -> dict[str, Any]:
        resp = self.client.get(f"/api/runs/{run_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait_for(
        self, run_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 120
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        run = self.run(run_id)
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if until(run):
                return run
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting on {run_id}: {json.dumps(run)[:2000]}")

    def wait_finished(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        return self.wait_for(
            run_id, lambda r: r["status"] in ("completed", "stopped", "failed"), timeout
        )

    def ingest_token(self, run_id: str) -> str:
        """The run's own ingest token, read behind the API's back (it never serves it)."""
        ((token,),) = self.query("select ingest_token from runs where id = :id", id=run_id)
        return str(token)

    def ingest_headers(self, run_id: str) -> dict[str, str]:
        """What a trainer presents on `WS /ws/ingest/{run_id}`."""
        return {"Authorization": f"Bearer {self.ingest_token(run_id)}"}

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        resp = self.client.get(f"/api/runs/{run_id}/metrics")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def dispose_engine(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class BackendServer(BackendClient):
    """Start, kill -9 and restart a backend on the same port, runs dir and database.

    API only by default (`--no-dashboard`): a dashboard on the fixed default port 8050 would
    collide between tests. Pass `dashboard_port` (e.g. `free_port()`) to have `causalwatch up`
    serve the dashboard there too; `start()` then also waits for the dashboard to answer.
    `trainer` picks what the backend spawns for a run (`Trainer`): real trainers by default.
    """

    # What the dashboard answers once it serves (a token-mode one asks for the token: 401).
    dashboard_ready: tuple[int, ...] = (200,)

    def __init__(
        self,
        root: Path,
        data: Path,
        *,
        max_runs: int = 2,
        port: int | None = None,
        dashboard_port: int | None = None,
        db_url: str | None = None,
        data_dir: Path | None = None,
        max_probes: int = 0,
        env: dict[str, str] | None = None,
        token: str | None = None,
        trainer: Trainer = "real",
    ) -> None:
        self.root = root
        self.env = env or {}  # extra settings, as CAUSALWATCH_* variables
        if trainer != "real":
            stand_in = STAND_INS[trainer](root)
            self.env.setdefault("CAUSALWATCH_PYTHON", str(stand_in))
        if token is not None:  # the admin token: the backend demands it, `client` sends it
            self.env["CAUSALWATCH_TOKEN"] = token
        # Off unless a test is about them: every alert would otherwise start probe trainers.
        self.max_probes = max_probes
        self.data_dir = data_dir
        self.runs_dir = root / "runs"
        self.data = data
        self.max_runs = max_runs
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.dashboard_port = dashboard_port
        # None: the default SQLite file under the runs dir, as a user gets it.
        self.db_url = db_url
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        # As any script would: the header says "not a cross-site form" (backend/origins.py).
        self.client = httpx.Client(
            base_url=self.url, timeout=30, headers={"X-Causalwatch-Client": "tests"}
        )
        if token is not None:
            self.client.headers["Authorization"] = f"Bearer {token}"

    @property
    def dashboard_url(self) -> str | None:
        if self.dashboard_port is None:
            return None
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self) -> Self:
        self.starts += 1
        log = (self.root / f"backend-{self.starts}.log").open("wb")
        # Nothing from the developer's shell decides the database or the token: the test does.
        env = {k: v for k, v in os.environ.items() if k not in INHERITED_NOT}
        if self.db_url is not None:
            env["DATABASE_URL"] = self.db_url
        env.update(self.env)
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "backend.cli", "up",
                "--port", str(self.port), "--runs-dir", str(self.runs_dir),
                "--max-runs", str(self.max_runs), "--data", str(self.data),
                "--max-probes", str(self.max_probes),
                *(["--data-dir", str(self.data_dir)] if self.data_dir is not None else []),
                *(
                    ["--no-dashboard"] if self.dashboard_port is None
                    else ["--dashboard-port", str(self.dashboard_port)]
                ),
            ],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        wait_until_answers(f"{self.url}/healthz", self.process, self.log_text, what="backend")
        if self.dashboard_url is not None:
            wait_until_answers(
                self.dashboard_url, self.process, self.log_text,
                statuses=self.dashboard_ready, what="dashboard",
            )
        return self

    def dashboard_processes(self) -> list[Any]:
        """`up`'s dashboard child: it outlives a SIGKILLed `up`, so `stop()` ends it too."""
        import psutil

        if self.dashboard_port is None or self.process is None:
            return []
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info.get("cmdline") or []
            if "dashboard" in cmd and str(self.dashboard_port) in cmd and f"{self.url}" in cmd:
                found.append(proc)
        return found

    def log_text(self) -> str:
        return (self.root / f"backend-{self.starts}.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, exactly like a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        for proc in self.dashboard_processes():
            proc.kill()
        self.dispose_engine()

    def close(self) -> None:
        """End of a test: stop the backend and every trainer it left running."""
        self.stop()
        self.client.close()
        kill_leftover_trainers(self.runs_dir)


# A fixture's factory: start a backend with these options, stopped when the test ends.
StartBackend = Callable[..., BackendServer]


def kill_leftover_trainers(runs_dir: Path) -> None:
    """Trainers outlive a killed backend by design; a test must not leave them behind."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "trainer" in cmd and str(runs_dir) in cmd:
            proc.kill()
