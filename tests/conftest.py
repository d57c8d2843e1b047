"""Shared test fixtures: the data files that live beside the project, never inside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from utils.pg_server import PostgresServer, find_bin_dir

# The shared folder sits next to the project root (../shared/data); it is not shipped.
SHARED_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _shared_file(name: str) -> Path:
    path = SHARED_DATA_DIR / name
    if not path.is_file():
        pytest.fail(
            f"test data {path} is missing: the tests need ../shared/data/{name} next to the "
            "project root (see DESIGN.md, Data)"
        )
    return path


@pytest.fixture(scope="session")
def uci_csv_path() -> Path:
    """The original UCI Air Quality file (`;` separated, decimal comma)."""
    return _shared_file("AirQualityUCI.csv")


@pytest.fixture(scope="session")
def uci_reference_graph_path() -> Path:
    """The shared domain-knowledge reference graph that trainer/data/reference.py mirrors."""
    return _shared_file("uci_reference_graph.json")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (Debian's postgresql binaries)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed here (make test installs Debian's postgresql)")
    server = PostgresServer(bin_dir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs' / 'causalwatch.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()
