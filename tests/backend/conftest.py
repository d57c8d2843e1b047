"""Backend test fixtures: a real backend server, a real database, real trainers.

Real trainers where what the model does matters (a run streamed to completion on each
database, red flags, probes); elsewhere the streaming stand-in (`stream_backend`): the
trainer's own command line, files and emitter around a loop that needs no torch.

End-to-end backend tests run on the default SQLite file under the runs dir. Those where the
database itself is the point (streaming a run to completion, duplicates, a killed backend,
concurrent writers) are marked `postgresql` and run a second time on a real PostgreSQL
server the tests start themselves (`DATABASE_URL`, as a team would configure it); where
PostgreSQL is not installed those variants skip. The store suite (test_store.py) runs every
query on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from utils.backend_server import BackendServer, StartBackend
from utils.pg_server import PostgresServer


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_db" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "postgresql"
    ):
        metafunc.parametrize("backend_db", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def backend_db(request: pytest.FixtureRequest) -> str | None:
    """The database a test's backend uses: None is the SQLite default, as users get it."""
    if getattr(request, "param", "sqlite") == "sqlite":
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


@pytest.fixture
def stream_backend(start_backend: StartBackend) -> BackendServer:
    """A backend whose trainers are stand-ins (utils/stream_trainer.py): for tests about a
    run's stream, its process or its files rather than what the model learns."""
    return start_backend(trainer="stream")
