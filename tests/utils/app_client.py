"""The backend app in the test's own process, behind FastAPI's TestClient.

For tests whose point is the API's answers (validation, refusals, presets, uploads), not a
real process: no `causalwatch up` subprocess, no port. The app is the one `up` serves
(`backend.main.create_app`), lifespan included: a real store on a SQLite file or PostgreSQL,
the real supervisor. Trainers cannot reach an app without a port, so runs get the idle
stand-in (utils/idle_trainer.py): a run exists, is queued and started, and trains nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from fastapi.testclient import TestClient

from backend.main import create_app
from backend.settings import Settings
from utils.backend_server import BackendClient, kill_leftover_trainers

# Any loopback name passes the app's Host check; the port is a name only, nothing listens.
BASE_URL = "http://127.0.0.1:8000"


class AppBackend(BackendClient):
    """`BackendServer`'s API helpers on an in-process app; `close()` runs its shutdown."""

    def __init__(
        self,
        root: Path,
        data: Path,
        idle_python: Path,
        *,
        max_runs: int = 2,
        db_url: str | None = None,
        **settings: Any,
    ) -> None:
        self.runs_dir = root / "runs"
        self.db_url = db_url
        self.settings = Settings(
            runs_dir=self.runs_dir, data=str(data), max_runs=max_runs, max_probes=0,
            database_url=db_url, python=str(idle_python), token=None, **settings,
        )
        # As any script would: the header says "not a cross-site form" (backend/origins.py).
        self.client = TestClient(
            create_app(self.settings), base_url=BASE_URL,
            headers={"X-Causalwatch-Client": "tests"},
        )

    def start(self) -> Self:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.client.__enter__()  # the lifespan: store, supervisor, ingest writer
        return self

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.dispose_engine()
        kill_leftover_trainers(self.runs_dir)
