"""The rule window: a run's records in epoch order, whole only for the last FULL_HISTORY."""

from __future__ import annotations

from utils.records import epoch_record

from backend.rule_window import RuleWindow, slimmed
from backend.rules import FULL_HISTORY, HISTORY_KEPT_FIELDS


def epochs(window: RuleWindow) -> list[int]:
    return [r["epoch"] for r in window.records]


def whole(window: RuleWindow) -> list[bool]:
    return [len(r) > len(HISTORY_KEPT_FIELDS) for r in window.records]


def test_a_late_resend_lands_in_epoch_order() -> None:
    window = RuleWindow([])
    for epoch in (1, 2, 5, 3, 6, 4):
        assert window.add(epoch_record(epoch))
    assert epochs(window) == [1, 2, 3, 4, 5, 6]
    assert window.epochs == {1, 2, 3, 4, 5, 6}


def test_an_epoch_already_held_is_not_added_again() -> None:
    """The window loaded from the database after a record's commit already has it."""
    window = RuleWindow([epoch_record(1), epoch_record(2)])
    assert not window.add(epoch_record(2, loss_total=9.0))
    assert epochs(window) == [1, 2]
    assert window.records[1]["loss_total"] == 1.0


def test_records_leaving_the_window_keep_only_what_rules_read_that_far_back() -> None:
    window = RuleWindow([])
    total = FULL_HISTORY + 10
    for epoch in range(1, total + 1):
        evaluated = epoch % 2 == 0
        window.add(epoch_record(epoch, evaluated=evaluated, f1=epoch / 1000 if evaluated else None))
    assert whole(window) == [False] * 10 + [True] * FULL_HISTORY
    old = window.records[:10]
    assert all(set(r) == set(HISTORY_KEPT_FIELDS) for r in old)
    # The F1 curve is what f1_stalled reads all the way back: its values survive the cut.
    assert [r["f1"] for r in old] == [e / 1000 if e % 2 == 0 else None for e in range(1, 11)]
    assert epochs(window) == list(range(1, total + 1))


def test_a_window_loaded_from_the_database_is_bounded_alike() -> None:
    stored = [epoch_record(e) for e in range(1, FULL_HISTORY + 6)]
    window = RuleWindow(stored)
    assert whole(window) == [False] * 5 + [True] * FULL_HISTORY
    assert window.epochs == set(range(1, FULL_HISTORY + 6))
    assert slimmed([epoch_record(e) for e in range(1, 4)]) == [epoch_record(e) for e in (1, 2, 3)]


def test_a_resend_older_than_the_window_is_cut_too() -> None:
    """Memory stays bounded whatever order records come in."""
    window = RuleWindow([])
    for epoch in range(2, FULL_HISTORY + 12):
        window.add(epoch_record(epoch))
    window.add(epoch_record(1))
    assert epochs(window)[0] == 1
    assert whole(window).count(True) == FULL_HISTORY
    assert whole(window)[-FULL_HISTORY:] == [True] * FULL_HISTORY
