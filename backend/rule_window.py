"""The epoch records a run's red-flag rules read, kept in memory between its messages.

In epoch order whatever order they arrive in, and bounded: a record older than the last
`rules.FULL_HISTORY` is cut to `rules.HISTORY_KEPT_FIELDS` (~30 bytes instead of ~2 KB), all a
rule reads that far back, so a run of a million epochs does not hold a million records.
"""

from __future__ import annotations

from typing import Any

from backend import rules


class RuleWindow:
    """A run's records as `rules.RunContext.history` wants them."""

    def __init__(self, stored: list[dict[str, Any]]) -> None:
        """`stored`: the run's records as the database returns them, in epoch order."""
        self.records = slimmed(stored)
        self.epochs = {r["epoch"] for r in stored}

    def add(self, record: dict[str, Any]) -> bool:
        """Take a newly stored record; False if its epoch is here already (the window was
        loaded from the database after the record's commit)."""
        if record["epoch"] in self.epochs:
            return False
        self.epochs.add(record["epoch"])
        history = self.records
        if not history or history[-1]["epoch"] < record["epoch"]:
            index = len(history)
            history.append(record)
        else:  # a resend of a lost epoch arrives after later ones
            index = next(i for i, r in enumerate(history) if r["epoch"] > record["epoch"])
            history.insert(index, record)
        boundary = len(history) - rules.FULL_HISTORY - 1  # the record that just left the window
        for cut in {boundary, index}:
            if 0 <= cut <= boundary:
                _slim(history, cut)
        return True


def slimmed(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`history` (epoch order) with all but its last FULL_HISTORY records cut, in place."""
    for index in range(len(history) - rules.FULL_HISTORY):
        _slim(history, index)
    return history


def _slim(history: list[dict[str, Any]], index: int) -> None:
    record = history[index]
    if len(record) > len(rules.HISTORY_KEPT_FIELDS):
        history[index] = {k: record.get(k) for k in rules.HISTORY_KEPT_FIELDS}
