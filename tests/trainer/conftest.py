"""Shared fixtures for the trainer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from utils.ws_ingest_server import IngestServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cli: runs the real trainer CLI (python -m trainer) in a subprocess"
    )


@pytest.fixture
def ingest_server() -> Iterator[IngestServer]:
    """A real ingest websocket server on 127.0.0.1 (free port); set its faults before use."""
    server = IngestServer().start()
    try:
        yield server
    finally:
        server.close()
