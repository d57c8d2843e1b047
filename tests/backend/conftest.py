"""Backend test fixtures: a real backend server, SQLite on disk, real trainers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from backend_server import BackendServer, kill_leftover_trainers


@pytest.fixture
def backend(tmp_path: Path, uci_csv_path: Path) -> Iterator[BackendServer]:
    server = BackendServer(tmp_path, uci_csv_path).start()
    try:
        yield server
    finally:
        server.stop()
        server.client.close()
        kill_leftover_trainers(server.runs_dir)
