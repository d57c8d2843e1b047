"""backend/thresholds.py: the numbers runs are judged by, and their public view."""

from __future__ import annotations

from backend import thresholds


def test_the_thresholds_view_is_a_copy() -> None:
    view = thresholds.as_dict()
    view["level_targets"]["clip_pct"]["by_level"]["Good"] = 99.0
    view["level_epoch"]["Good"] = 1
    assert thresholds.LEVEL_TARGETS["clip_pct"][1]["Good"] == 10.0
    assert thresholds.as_dict()["level_epoch"]["Good"] == 30
