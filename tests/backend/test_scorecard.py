"""The success-criteria scorecard: pending → met / missed, epoch by epoch (backend/scorecard.py)."""

from __future__ import annotations

from typing import Any

import pytest
from utils.records import epoch_record

from backend.scorecard import CRITERIA, LEVELS, evaluate_scorecard
from trainer.config import build_config
from trainer.protocol import EpochRecord

REFERENCE_EDGES = 13
CONFIG = build_config("uci").model_dump()  # 100 epochs: every level can be decided

# Good enough for every level: clip 0%, logit std 1, F1 0.6, SHD 8 with 12 edges.
EXCELLENT = {"clip_pct": 0.0, "logit_std": 1.0}
EXCELLENT_EVAL = {"f1": 0.6, "shd": 8}


def make_record(epoch: int, **overrides: Any) -> dict[str, Any]:
    """A record good enough for every level; even epochs are evaluation epochs."""
    evaluated = epoch % 2 == 0
    # F1/SHD overrides touch evaluation epochs only: odd epochs keep them None, as on the wire.
    fields = EXCELLENT | (EXCELLENT_EVAL if evaluated else {}) | {
        k: v for k, v in overrides.items() if evaluated or k not in EXCELLENT_EVAL
    }
    return epoch_record(epoch, evaluated=evaluated, **fields)


def run(last: int, **overrides: Any) -> list[dict[str, Any]]:
    return [make_record(e, **overrides) for e in range(1, last + 1)]


def card(
    history: list[dict[str, Any]], *, finished: bool = False, config: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The scorecard, levels by name and each level's criteria by name."""
    out = evaluate_scorecard(config or CONFIG, history, REFERENCE_EDGES, finished)
    assert [lvl["level"] for lvl in out["levels"]] == list(LEVELS)
    return {
        lvl["level"]: {"achieved": lvl["achieved"], **{c["name"]: c for c in lvl["criteria"]}}
        for lvl in out["levels"]
    }


def statuses(level: dict[str, Any]) -> dict[str, str]:
    return {k: v["status"] for k, v in level.items() if k != "achieved"}


def test_criteria_follow_the_design_guides() -> None:
    table = {(c.level, c.name): (c.threshold, c.by_epoch) for c in CRITERIA}
    assert table == {
        ("Minimum", "clip_pct"): (50.0, 20),
        ("Minimum", "logit_std"): (0.05, 20),
        ("Minimum", "f1"): (0.2, 20),
        ("Good", "clip_pct"): (10.0, 30),
        ("Good", "logit_std"): (0.1, 30),
        ("Good", "f1"): (0.4, 30),
        ("Good", "shd"): (None, 30),
        ("Excellent", "clip_pct"): (5.0, 50),
        ("Excellent", "logit_std"): (0.2, 50),
        ("Excellent", "f1"): (0.5, 50),
        ("Excellent", "shd"): (None, 50),
    }


def test_criterion_shape() -> None:
    out = evaluate_scorecard(CONFIG, run(20), REFERENCE_EDGES, finished=False)
    criterion = out["levels"][1]["criteria"][3]
    assert set(criterion) == {
        "level",
        "name",
        "description",
        "status",
        "observed",
        "threshold",
        "by_epoch",
    }
    assert criterion["level"] == "Good" and criterion["name"] == "shd"
    assert criterion["threshold"] == REFERENCE_EDGES
    assert "edges_tuned > 0" in criterion["description"]


def test_everything_pending_before_the_deciding_epoch() -> None:
    for history in ([], run(19)):
        levels = card(history)
        for name in LEVELS:
            assert levels[name]["achieved"] is None
            assert set(statuses(levels[name]).values()) == {"pending"}
            assert all(c["observed"] is None for k, c in levels[name].items() if k != "achieved")


def test_levels_are_met_as_the_run_reaches_their_epochs() -> None:
    at_20 = card(run(20))
    assert at_20["Minimum"]["achieved"] is True
    assert at_20["Minimum"]["f1"]["observed"] == 0.6
    assert at_20["Good"]["achieved"] is None
    at_30 = card(run(30))
    assert at_30["Good"]["achieved"] is True and at_30["Good"]["shd"]["observed"] == 8
    assert at_30["Excellent"]["achieved"] is None
    assert card(run(50))["Excellent"]["achieved"] is True


def test_judged_on_the_newest_record_so_met_can_turn_missed() -> None:
    history = run(20)
    assert card(history)["Minimum"]["clip_pct"]["status"] == "met"
    history.append(make_record(21, clip_pct=80.0))
    minimum = card(history)["Minimum"]
    assert minimum["clip_pct"]["status"] == "missed"
    assert minimum["clip_pct"]["observed"] == 80.0
    assert minimum["achieved"] is False
    history.append(make_record(22))
    assert card(history)["Minimum"]["achieved"] is True


@pytest.mark.parametrize(
    ("overrides", "minimum_met"),
    [
        ({"clip_pct": 50.0, "logit_std": 0.05, "f1": 0.2}, True),  # exactly at the guides
        ({"clip_pct": 50.1}, False),
        ({"logit_std": 0.0499}, False),
        ({"f1": 0.199}, False),
    ],
)
def test_minimum_boundaries(overrides: dict[str, Any], minimum_met: bool) -> None:
    assert card(run(20, **overrides))["Minimum"]["achieved"] is minimum_met


def test_shd_counts_only_with_a_non_empty_graph() -> None:
    empty = card(run(30, edges_tuned=0, shd=12))["Good"]["shd"]
    assert (empty["status"], empty["observed"]) == ("missed", 12)
    assert card(run(30, edges_tuned=1, shd=12))["Good"]["shd"]["status"] == "met"
    # The empty graph's own score is not "below the reference size".
    assert card(run(30, shd=REFERENCE_EDGES))["Good"]["shd"]["status"] == "missed"


def test_evaluation_metrics_wait_for_an_evaluation_epoch() -> None:
    # Epochs 20 and 21 carry no F1 (e.g. eval_every=4 and the evaluation fell on 16).
    history = run(19) + [make_record(e, f1=None, shd=None) for e in (20, 21)]
    minimum = card(history)["Minimum"]
    assert minimum["clip_pct"]["status"] == "met"
    assert minimum["f1"]["status"] == "pending"
    assert minimum["achieved"] is None
    assert card(history, finished=True)["Minimum"]["f1"]["status"] == "missed"


def test_a_finished_run_turns_undecided_criteria_into_missed() -> None:
    levels = card(run(38), finished=True)  # e.g. early-stopped at epoch 38
    assert levels["Minimum"]["achieved"] is True
    assert levels["Good"]["achieved"] is True
    assert set(statuses(levels["Excellent"]).values()) == {"missed"}
    assert levels["Excellent"]["clip_pct"]["observed"] is None
    assert levels["Excellent"]["achieved"] is False


def test_a_run_planned_too_short_misses_the_later_levels_at_once() -> None:
    short = build_config("uci", {"epochs": 40}).model_dump()
    levels = card(run(10), config=short)
    assert levels["Minimum"]["achieved"] is None
    assert levels["Good"]["achieved"] is None
    assert set(statuses(levels["Excellent"]).values()) == {"missed"}


def test_the_plan_is_the_epochs_the_run_trains() -> None:
    """`stop_after_epochs` shortens a run; beyond `epochs` it changes nothing."""
    probe = build_config("uci", {"epochs": 100, "stop_after_epochs": 10}).model_dump()
    assert set(statuses(card(run(5), config=probe)["Minimum"]).values()) == {"missed"}
    long_stop = build_config("uci", {"epochs": 40, "stop_after_epochs": 500}).model_dump()
    levels = card(run(10), config=long_stop)
    assert set(statuses(levels["Excellent"]).values()) == {"missed"}  # 40 < 50, as planned
    assert levels["Good"]["achieved"] is None


def no_reference_run(last: int, **overrides: Any) -> list[dict[str, Any]]:
    """A CSV run without a reference graph: no record carries F1, SHD, precision or recall."""
    unscored = dict.fromkeys(("f1", "shd", "precision", "recall", "f1_skeleton"))
    return [
        EpochRecord.model_validate({**make_record(e, **overrides), **unscored}).model_dump()
        for e in range(1, last + 1)
    ]


def test_without_a_reference_f1_and_shd_are_not_applicable_and_levels_judge_the_rest() -> None:
    for finished in (False, True):
        out = evaluate_scorecard(CONFIG, no_reference_run(50), None, finished)
        for level in out["levels"]:
            scored = [c for c in level["criteria"] if c["name"] in ("f1", "shd")]
            assert scored, level["level"]
            for c in scored:
                assert c["status"] == "n/a" and c["observed"] is None
                assert "no reference graph" in c["description"]
            assert level["achieved"] is True, (level["level"], finished)
    # Only the applicable criteria wait, and only they can be missed.
    early = evaluate_scorecard(CONFIG, no_reference_run(10), None, finished=False)
    assert [lvl["achieved"] for lvl in early["levels"]] == [None, None, None]
    ended = evaluate_scorecard(CONFIG, no_reference_run(25), None, finished=True)
    assert [lvl["achieved"] for lvl in ended["levels"]] == [True, False, False]
    clipped = evaluate_scorecard(CONFIG, no_reference_run(20, clip_pct=80.0), None, False)
    assert clipped["levels"][0]["achieved"] is False


def test_with_a_reference_nothing_is_not_applicable() -> None:
    for history, finished in ((run(50), False), ([], False), ([], True)):
        out = evaluate_scorecard(CONFIG, history, REFERENCE_EDGES, finished)
        assert all(c["status"] != "n/a" for lvl in out["levels"] for c in lvl["criteria"])
