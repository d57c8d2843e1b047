"""Backend test fixtures: a real backend server, a real database, real trainers.

Every end-to-end backend test runs twice: on the default SQLite file under the runs dir and
on a real PostgreSQL server the tests start themselves (`DATABASE_URL`, as a team would
configure it). Where PostgreSQL is not installed the `postgresql` variants skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from utils.backend_server import BackendServer, StartBackend
from utils.pg_server import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_db(request: pytest.FixtureRequest) -> str | None:
    """The database a test's backend uses: None is the SQLite default, as users get it."""
    if request.param == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def start_backend(
    tmp_path: Path, uci_csv_path: Path, backend_db: str | None
) -> Iterator[StartBackend]:
    """Start a backend on this test's database; every one started is stopped afterwards."""
    started: list[BackendServer] = []

    def start(**options: object) -> BackendServer:
        server = BackendServer(tmp_path, uci_csv_path, db_url=backend_db, **options)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()


@pytest.fixture
def backend(start_backend: StartBackend) -> BackendServer:
    return start_backend()
