"""SDK test fixtures: a real `causalwatch up` (SQLite, API only) and the real CLI.

The SDK is a client: what matters is what a real backend stores from it, so every test that
streams runs against `causalwatch up` in a subprocess (tests/utils/backend_server.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from utils.backend_server import BackendServer


@pytest.fixture(autouse=True)
def sdk_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No settings from the developer's shell; run folders under this test's tmp_path (every
    SDK test: a run without `dir=` must never land in the source tree)."""
    for name in ("CAUSALWATCH_SERVER", "CAUSALWATCH_TOKEN", "CAUSALWATCH_DIR"):
        monkeypatch.delenv(name, raising=False)
    runs = tmp_path / "sdk-runs"
    monkeypatch.setenv("CAUSALWATCH_DIR", str(runs))
    # Where the SDK looks for a server's generated token: never the project's own ./runs.
    monkeypatch.setenv("CAUSALWATCH_RUNS_DIR", str(tmp_path / "no-server-here"))
    return runs


@pytest.fixture
def sdk_backend(tmp_path: Path, uci_csv_path: Path, sdk_env: Path) -> Iterator[BackendServer]:
    """A real backend on SQLite for one test; stopped (and its trainers killed) after it."""
    (tmp_path / "backend").mkdir()
    with BackendServer(tmp_path / "backend", uci_csv_path) as server:
        yield server


@pytest.fixture(scope="module")
def shared_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path
) -> Iterator[BackendServer]:
    """One real backend for a module's tests that neither stop it nor count its runs."""
    root = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with BackendServer(root, uci_csv_path) as server:
        yield server
