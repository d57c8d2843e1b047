"""Reliability fixtures: one real backend per test module, with idle stand-in trainers.

The fuzzers need runs, not training: a `POST /api/runs` the fuzzer gets right would otherwise
start a real trainer (torch on every core) for the rest of the module. Here trainers are the
idle stand-in (utils/idle_trainer.py, fixture `idle_trainer_python`). Everything else is
the real thing: the `causalwatch up` subprocess, uvicorn, a SQLite file, the supervisor that
spawns, stops and reaps those processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from utils.backend_server import BackendServer


@pytest.fixture(scope="module")
def fuzz_backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    uci_csv_path: Path,
    idle_trainer_python: Path,
) -> Iterator[BackendServer]:
    """One real backend for the whole module (max_runs=1: created runs queue, cheaply)."""
    root = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with BackendServer(
        root, uci_csv_path, max_runs=1, env={"CAUSALWATCH_PYTHON": str(idle_trainer_python)}
    ) as server:
        yield server
