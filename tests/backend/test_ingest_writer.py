"""The ingest writer against a real SQLite store: what arrives during a commit shares the
next one, runs take turns, a resend is told apart, one bad record spoils no batch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from utils.records import epoch_record

from backend import ingest_writer
from backend.db import StoreError, default_sqlite_url
from backend.ingest_writer import IngestWriter
from backend.store import Store

Batch = list[tuple[str, int]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(default_sqlite_url(tmp_path))
    for run_id in ("heavy", "light"):
        store.create_run(run_id=run_id, preset="synthetic", config={"epochs": 100})
    yield store
    store.engine.dispose()


@pytest.fixture
def commits(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[Batch]:
    """Each commit's records as (run, epoch), in the order the writer made them."""
    seen: list[Batch] = []
    add = store.add_metrics

    def recorded(records: list[dict[str, Any]]) -> list[bool]:
        seen.append([(r["run_id"], r["epoch"]) for r in records])
        return add(records)

    monkeypatch.setattr(store, "add_metrics", recorded)
    return seen


def stored_epochs(store: Store, run_id: str) -> list[int]:
    return [r["epoch"] for r in store.get_metrics(run_id)]


def test_records_that_arrive_during_a_commit_share_the_next_one(
    store: Store, commits: list[Batch], monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    add = store.add_metrics

    def slow(records: list[dict[str, Any]]) -> list[bool]:
        entered.set()
        release.wait(10)
        return add(records)

    monkeypatch.setattr(store, "add_metrics", slow)

    async def scenario() -> list[bool]:
        writer = IngestWriter(store)
        writer.start()
        first = writer.enqueue(epoch_record(1, "heavy"))
        await asyncio.to_thread(entered.wait, 10)
        rest = [writer.enqueue(epoch_record(e, "heavy")) for e in range(2, 7)]
        release.set()
        results = await asyncio.gather(first, *rest)
        await writer.close()
        return results

    assert asyncio.run(scenario()) == [True] * 6
    assert commits == [[("heavy", 1)], [("heavy", e) for e in range(2, 7)]]
    assert stored_epochs(store, "heavy") == list(range(1, 7))


def test_a_backlog_is_cut_into_batches_where_a_light_run_takes_its_turn(
    store: Store, commits: list[Batch], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_writer, "MAX_BATCH", 4)

    async def scenario() -> None:
        writer = IngestWriter(store)
        writer.start()
        queued = [writer.enqueue(epoch_record(e, "heavy")) for e in range(1, 11)]
        queued.append(writer.enqueue(epoch_record(1, "light")))
        assert all(await asyncio.gather(*queued))
        await writer.close()

    asyncio.run(scenario())
    assert [len(c) for c in commits] == [4, 4, 3]
    assert ("light", 1) in commits[0]
    assert [e for c in commits for run, e in c if run == "heavy"] == list(range(1, 11))


def test_a_resend_resolves_false_and_is_stored_once(store: Store, commits: list[Batch]) -> None:
    async def scenario() -> tuple[list[bool], bool]:
        writer = IngestWriter(store)
        writer.start()
        same_batch = await asyncio.gather(
            writer.enqueue(epoch_record(1, "heavy")), writer.enqueue(epoch_record(1, "heavy"))
        )
        later = await writer.enqueue(epoch_record(1, "heavy"))
        await writer.close()
        return list(same_batch), later

    assert asyncio.run(scenario()) == ([True, False], False)
    assert stored_epochs(store, "heavy") == [1]


def test_a_record_the_database_refuses_fails_alone(store: Store, commits: list[Batch]) -> None:
    """A run the database does not know (foreign key) fails its record, not the batch."""

    async def scenario() -> list[Any]:
        writer = IngestWriter(store)
        writer.start()
        queued = [
            writer.enqueue(epoch_record(1, "heavy")),
            writer.enqueue(epoch_record(1, "nowhere")),
            writer.enqueue(epoch_record(1, "light")),
        ]
        results = await asyncio.gather(*queued, return_exceptions=True)
        await writer.close()
        return results

    ok_heavy, refused, ok_light = asyncio.run(scenario())
    assert (ok_heavy, ok_light) == (True, True)
    assert isinstance(refused, StoreError) and refused.code == "integrity"
    assert stored_epochs(store, "heavy") == [1] and stored_epochs(store, "light") == [1]
    assert len(commits[0]) == 3 and len(commits) == 4  # the batch, then one by one
