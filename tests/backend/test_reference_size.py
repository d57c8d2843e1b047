"""A run's reference size: one rule in backend/scorecard.py, served as RunPublic fields."""

from __future__ import annotations

from typing import Any

import pytest

from backend.scorecard import has_reference, reference_size
from trainer.config import build_config

UCI = build_config("uci").model_dump()
SYNTHETIC = build_config("synthetic", {"synthetic_edges": 20}).model_dump()
CSV = build_config("standard", {"dataset": "csv", "data_file": "x.csv"}).model_dump()
CSV_WITH_REFERENCE = {**CSV, "reference_file": "g.json"}


@pytest.mark.parametrize(
    ("config", "data", "expected"),
    [
        # The trainer's report decides, whatever the config expected.
        (SYNTHETIC, {"reference_kind": "ground truth", "reference_edges": [["a", "b"]] * 18},
         18),
        (UCI, {"reference_kind": "plausibility reference",
               "reference_edges": [["a", "b"]] * 13}, 13),
        (CSV, {"reference_kind": "none", "reference_edges": None}, None),
        # Before it: the UCI reference, and the synthetic generator's expected edge count.
        (UCI, None, 13),
        (SYNTHETIC, None, 20),
        ({"dataset": "synthetic"}, None, 13),  # the config field's default, not 0
        # A CSV without a reference file never has one; with one, its size is not known yet.
        (CSV, None, None),
        (CSV_WITH_REFERENCE, None, None),
        # A loop of the user's own with no dataset of ours and no reference.
        ({"lr": 1e-3}, {"reference_kind": "none"}, None),
    ],
)
def test_reference_size(config: dict[str, Any], data: dict[str, Any] | None,
                        expected: int | None) -> None:
    assert reference_size(config, data) == expected


def test_has_reference() -> None:
    assert has_reference(CSV, None) is False
    assert has_reference(CSV_WITH_REFERENCE, None) is True
    assert has_reference(UCI, {"reference_kind": "plausibility reference"}) is True
    assert has_reference(UCI, {"reference_kind": "none"}) is False
