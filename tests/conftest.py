"""Shared test fixtures: the data files that live beside the project (never inside it), a
PostgreSQL server, the idle stand-in trainer and the in-process backend app."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from utils.idle_trainer import write_idle_trainer
from utils.pg_server import PostgresServer, find_bin_dir

if TYPE_CHECKING:  # the app is imported by the tests that use it, not by every run
    from utils.app_client import AppBackend

_HYPOTHESIS_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    # In-process training runs on one thread, as a trainer process does (trainer/cli.py):
    # with several pytest workers on two cores, more threads only spin against each other.
    from trainer.cli import one_math_thread

    one_math_thread()
    # Hypothesis keeps its caches in ./.hypothesis unless told otherwise: the fuzzers' go to a
    # temp dir, so the suite writes nothing into the source tree.
    from hypothesis.configuration import set_hypothesis_home_dir

    config.stash[_HYPOTHESIS_HOME] = tempfile.mkdtemp(prefix="causalwatch-hypothesis-")
    set_hypothesis_home_dir(config.stash[_HYPOTHESIS_HOME])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Long files first: a worker takes a file whole (make test's --dist loadfile), and a long
    # one taken last leaves the other worker idle until it ends. The sort is stable.
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _HYPOTHESIS_HOME in config.stash:
        shutil.rmtree(config.stash[_HYPOTHESIS_HOME], ignore_errors=True)


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


@pytest.fixture(scope="session")
def idle_trainer_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter for `CAUSALWATCH_PYTHON` whose trainers sleep until signalled."""
    return write_idle_trainer(tmp_path_factory.mktemp("idle-trainer"))


@pytest.fixture
def app_backend(
    tmp_path: Path, uci_csv_path: Path, idle_trainer_python: Path
) -> Iterator[AppBackend]:
    """The backend app in this process (SQLite, idle trainers): for the API's answers."""
    from utils.app_client import AppBackend

    with AppBackend(tmp_path, uci_csv_path, idle_trainer_python) as backend:
        yield backend
