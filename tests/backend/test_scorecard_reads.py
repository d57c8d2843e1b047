"""GET /api/runs/{id}/scorecard's read: a few rows whatever the run's length, same result.

The scorecard judges the newest record carrying each metric; the store reads exactly those
rows (Store.latest_with), so a live run's page asking on every epoch costs O(1) per ask,
not O(epochs). Rows are counted at the SQLite driver, where every fetched row passes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from utils.records import epoch_record

from backend.db import default_sqlite_url
from backend.scorecard import READ_FIELDS, evaluate_scorecard, metrics_to_read, score
from backend.store import Store
from trainer.config import build_config

CONFIG = build_config("uci", {"epochs": 600}).model_dump()


class RowCounter:
    """Counts rows the SQLite driver hands up, through each pooled connection's row_factory."""

    def __init__(self, store: Store) -> None:
        self.rows = 0
        event.listen(store.engine, "checkout", self._checkout)

    def _checkout(self, dbapi_connection: sqlite3.Connection, *_: Any) -> None:
        dbapi_connection.row_factory = self._row

    def _row(self, _cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> tuple[Any, ...]:
        self.rows += 1
        return row


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(default_sqlite_url(tmp_path / "runs"))
    try:
        yield store
    finally:
        store.engine.dispose()


def _fill(store: Store, run_id: str, epochs: int) -> list[dict[str, Any]]:
    store.create_run(run_id=run_id, preset="uci", config=CONFIG)
    # F1 and SHD on even epochs only, drifting so the newest one is the one that counts.
    records = [
        epoch_record(e, run_id, evaluated=e % 2 == 0, clip_pct=float(e % 7),
                     **({"f1": e / 1000, "shd": 13 - e % 5} if e % 2 == 0 else {}))
        for e in range(1, epochs + 1)
    ]
    store.add_metrics(records)
    return records


def _scorecard_read(store: Store, run_id: str, finished: bool = False) -> dict[str, Any]:
    latest = store.latest_with(run_id, metrics_to_read(13), READ_FIELDS)
    return score(CONFIG, latest, 13, finished)


def test_rows_read_do_not_grow_with_the_run(store: Store) -> None:
    _fill(store, "short", 40)
    _fill(store, "long", 501)  # ends on an odd epoch: F1 and SHD are one row back
    counter = RowCounter(store)
    _scorecard_read(store, "short")
    short = counter.rows
    counter.rows = 0
    _scorecard_read(store, "long")
    assert counter.rows == short == len(metrics_to_read(13))
    counter.rows = 0
    store.get_metrics("long")
    assert counter.rows == 501  # the counter sees every row the old read fetched


@pytest.mark.parametrize("epochs", [1, 19, 30, 31, 501])
@pytest.mark.parametrize("finished", [False, True])
def test_same_scorecard_as_from_the_whole_history(
    store: Store, epochs: int, finished: bool
) -> None:
    records = _fill(store, "r", epochs)
    history = store.get_metrics("r")
    assert [r["epoch"] for r in history] == [r["epoch"] for r in records]
    assert _scorecard_read(store, "r", finished) == evaluate_scorecard(
        CONFIG, history, 13, finished
    )


def test_a_run_without_a_reference_reads_no_f1_or_shd(store: Store) -> None:
    _fill(store, "r", 10)
    assert metrics_to_read(None) == ("clip_pct", "logit_std")
    assert set(store.latest_with("r", metrics_to_read(None), READ_FIELDS)) == {
        "clip_pct", "logit_std"
    }
    assert store.latest_with("nobody", ("clip_pct",), READ_FIELDS) == {}
