"""Shared test fixtures: the data files that live beside the project, never inside it."""

from __future__ import annotations

from pathlib import Path

import pytest

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
