"""dashboard/format.py: every number the dashboard writes as text."""

from __future__ import annotations

import pytest

from dashboard import format as fmt


@pytest.mark.parametrize(("value", "text"), [
    (None, "—"),
    (float("nan"), "—"),
    (0.210526, "0.211"),
    (2.94428, "2.94"),
    (85.9649, "86"),
    (10.0, "10"),  # a float that is an integer reads as one
    (13, "13"),
    (0.0, "0"),
    (1e-05, "1e-5"),  # tiny: scientific, as the launch form takes it
    (3e-05, "3e-5"),
    (0.0005, "5e-4"),
    (2.24e-10, "2.24e-10"),
    (1.08e6, "1.08e6"),  # huge: scientific
    (48213.7, "48214"),
    (-0.33333, "-0.333"),
    (True, "true"),
    (False, "false"),
    ("topk", "topk"),
    (float("inf"), "∞"),
])
def test_number(value: object, text: str) -> None:
    assert fmt.number(value) == text


def test_number_takes_more_digits_when_asked() -> None:
    assert fmt.number(408100.0, digits=4) == "4.081e5"
    assert fmt.number(1.17912, digits=4) == "1.179"


@pytest.mark.parametrize(("value", "text"), [
    (85.9649, "86.0%"),
    (100.0, "100%"),
    (0, "0%"),
    (54.36, "54.4%"),
    (0.5, "0.5%"),
    (0.05, "0.05%"),
    (1.1e-9, "1.1e-9%"),  # a vanishing share keeps its magnitude: it is the finding
    (None, "—"),
])
def test_percent(value: object, text: str) -> None:
    assert fmt.percent(value) == text


def test_scores_have_two_decimals_and_counts_none() -> None:
    assert fmt.score(0.210526) == "0.21"
    assert fmt.score(0.2) == "0.20"
    assert fmt.score(None) == "—"
    assert fmt.count(13.0) == "13"
    assert fmt.count(29) == "29"
    assert fmt.count(None) == "—"


def test_a_metric_is_written_in_its_fields_style() -> None:
    assert fmt.metric("clip_pct", 85.9649) == "86.0%"
    assert fmt.metric("share_sparse", 1.1e-9) == "1.1e-9%"
    assert fmt.metric("f1", 0.0645161) == "0.06"
    assert fmt.metric("f1_skeleton", 0.5) == "0.50"
    assert fmt.metric("shd", 29) == "29"
    assert fmt.metric("logit_std", 2.94428) == "2.94"
    assert fmt.metric("val_recon", 408100.0) == "4.08e5"
    assert fmt.metric("logit_std", None) == "—"


@pytest.mark.parametrize("value", [None, float("nan"), 0.123456789, 1e-12, 1e12, 7, True])
def test_no_text_says_none_or_carries_six_decimals(value: object) -> None:
    for write in (fmt.number, fmt.percent, fmt.score, fmt.count):
        if write is not fmt.number and isinstance(value, bool):
            continue
        text = write(value)
        assert "None" not in text and "nan" not in text.lower()
        assert "123456" not in text
