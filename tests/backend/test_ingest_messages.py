"""Message handling in process, on a real SQLite store and writer: what is refused and how,
what is acked and when, and that a record's path does not depend on what came before it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from utils.records import epoch_record, message

from backend.db import default_sqlite_url
from backend.hub import Hub
from backend.ingest import Ingest, StorageUnavailable
from backend.ingest_writer import IngestWriter
from backend.schemas import RunPublic
from backend.store import Store
from trainer.config import TrainConfig

RUN = "r"
EPOCHS = 20
T = TypeVar("T")


class Harness:
    """An Ingest wired as the app wires it, with what it reports kept for the test."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.room: str | None = None  # what has_room answers
        self.reports: list[tuple[str, str, dict[str, Any]]] = []
        self.hub = Hub()
        self.writer = IngestWriter(store)
        self.ingest = Ingest(
            store, self.writer, self.hub,
            on_report=lambda run_id, kind, detail: self.reports.append((run_id, kind, detail)),
            has_room=lambda: self.room,
        )

    @property
    def run(self) -> RunPublic:
        run = self.store.get_run(RUN)
        assert run is not None
        return run

    async def send(self, *messages: Any) -> list[Any]:
        """Begun in one go, as frames a resending trainer has in flight; the replies (or
        the exception a reply future ends with), in order."""
        run = self.run
        pending = [self.ingest.begin(run, m) for m in messages]
        return await asyncio.gather(*pending, return_exceptions=True)

    def stored(self) -> dict[int, dict[str, Any]]:
        return {r["epoch"]: r for r in self.store.get_metrics(RUN)}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(default_sqlite_url(tmp_path))
    config = TrainConfig(dataset="synthetic", epochs=EPOCHS).model_dump(mode="json")
    store.create_run(run_id=RUN, preset="synthetic", config=config)
    yield store
    store.engine.dispose()


def play(store: Store, scenario: Callable[[Harness], Awaitable[T]]) -> T:
    async def main() -> T:
        harness = Harness(store)
        harness.writer.start()
        try:
            return await scenario(harness)
        finally:
            await harness.writer.close()

    return asyncio.run(main())


def epoch(seq: int, number: int | None = None, **fields: Any) -> dict[str, Any]:
    return message(RUN, seq, record=epoch_record(number or seq + 1, RUN, **fields))


def bad_epoch(seq: int, **fields: Any) -> dict[str, Any]:
    """An epoch message whose record has `fields` changed (validation refuses them)."""
    sent = epoch(seq)
    sent["record"].update(fields)
    return sent


def ack(seq: int) -> dict[str, Any]:
    return {"type": "ack", "seq": seq}


def refused(reply: Any, seq: Any, detail_start: str) -> bool:
    return (
        isinstance(reply, dict) and reply["type"] == "error" and reply["seq"] == seq
        and reply["detail"].startswith(detail_start)
    )


def test_envelopes_that_are_refused_name_what_is_wrong(store: Store) -> None:
    frames = [
        ["not", "an", "object"],
        {**epoch(0), "v": 2},
        {**epoch(1), "seq": -1},
        {**epoch(2), "seq": True},
        {**epoch(3), "run_id": "other"},
        message(RUN, 4, "no-such-type"),
    ]
    replies = play(store, lambda h: h.send(*frames))
    assert refused(replies[0], None, "a message must be a JSON object")
    assert refused(replies[1], 0, "v: unsupported protocol version 2")
    assert refused(replies[2], -1, "seq: must be a non-negative integer")
    assert refused(replies[3], True, "seq: must be a non-negative integer")
    assert refused(replies[4], 3, "run_id: 'other' does not match the URL")
    assert refused(replies[5], 4, "type: unknown message type 'no-such-type'")
    assert store.get_metrics(RUN) == []


def test_records_that_are_refused_name_the_field(store: Store) -> None:
    replies = play(store, lambda h: h.send(
        bad_epoch(0, loss_total="high"),
        message(RUN, 1, record="not an object"),
        bad_epoch(2, run_id="other"),
        epoch(3, number=EPOCHS + 1),
        bad_epoch(4, loss_recon=float("nan")),
    ))
    assert refused(replies[0], 0, "record.loss_total: ")
    assert refused(replies[1], 1, "record: an epoch message needs a record object")
    assert refused(replies[2], 2, "record.run_id: does not match the URL")
    assert refused(replies[3], 3, f"record.epoch: {EPOCHS + 1} is beyond the run's {EPOCHS}")
    assert refused(replies[4], 4, "record.loss_recon: ")
    assert store.get_metrics(RUN) == []


def test_a_record_is_acked_once_stored_and_then_published(store: Store) -> None:
    async def scenario(h: Harness) -> tuple[list[Any], list[dict[str, Any]]]:
        async with h.hub.subscribe(RUN) as sub:
            replies = await h.send(epoch(0), epoch(1))
            events = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
        return replies, [e.payload for e in events if e is not None]

    replies, events = play(store, scenario)
    assert replies == [ack(0), ack(1)]
    assert [(e["type"], e["record"]["epoch"]) for e in events] == [("metric", 1), ("metric", 2)]
    assert sorted(store.get_metrics(RUN), key=lambda r: r["epoch"]) == [
        e["record"] for e in events
    ]


def test_records_before_and_after_the_run_is_in_memory_take_one_path(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first records of a run wait for its state to load; later ones are queued at
    once and share a commit. Either way: the same checks, acks in order, stored once."""
    commits: list[int] = []
    add = store.add_metrics

    def counted(records: list[dict[str, Any]]) -> list[bool]:
        commits.append(len(records))
        return add(records)

    monkeypatch.setattr(store, "add_metrics", counted)

    async def scenario(h: Harness) -> tuple[list[Any], list[Any]]:
        cold = await h.send(epoch(0), epoch(1), bad_epoch(2, clip_pct=101.0), epoch(3))
        warm = await h.send(epoch(4), epoch(5), bad_epoch(6, clip_pct=101.0), epoch(7))
        return cold, warm

    cold, warm = play(store, scenario)
    assert cold[:2] == [ack(0), ack(1)] and cold[3] == ack(3)
    assert warm[:2] == [ack(4), ack(5)] and warm[3] == ack(7)
    assert refused(cold[2], 2, "record.clip_pct: ") and refused(warm[2], 6, "record.clip_pct: ")
    assert [r["epoch"] for r in store.get_metrics(RUN)] == [1, 2, 4, 5, 6, 8]
    # Once the run is in memory, its records in flight share one commit.
    assert len(commits) == 4 and commits[-1] == 3


def test_a_resend_is_acked_and_a_changed_record_refused(store: Store) -> None:
    async def scenario(h: Harness) -> list[Any]:
        first = await h.send(epoch(0))
        return first + await h.send(epoch(0), epoch(1, number=1, loss_total=9.0))

    assert play(store, scenario)[:2] == [ack(0), ack(0)]
    replies = play(store, lambda h: h.send(epoch(5, number=1, loss_total=9.0)))
    assert refused(replies[0], 5, "record.epoch: epoch 1 is already stored with other values")
    assert store.get_metric(RUN, 1)["loss_total"] == 1.0


def test_a_record_sent_after_finished_meets_a_closed_run(store: Store) -> None:
    """In flight together: the record behind `finished` waits for it, then is refused."""
    replies = play(store, lambda h: h.send(
        epoch(0), message(RUN, 1, "finished", summary={"epochs": 1}), epoch(2),
        message(RUN, 3, "graph", epoch=EPOCHS, probabilities=[[0.5]]),
    ))
    assert replies[:2] == [ack(0), ack(1)]
    assert refused(replies[2], 2, f"run_id: run {RUN!r} has finished")
    assert refused(replies[3], 3, f"run_id: run {RUN!r} has finished")
    assert [r["epoch"] for r in store.get_metrics(RUN)] == [1]


def test_a_failure_needs_a_reason_and_is_reported(store: Store) -> None:
    async def scenario(h: Harness) -> tuple[list[Any], list[Any]]:
        replies = await h.send(
            message(RUN, 0, "failed", summary={}),
            message(RUN, 1, "failed", reason="loss is nan", summary={"epochs": 3}),
        )
        return replies, h.reports

    replies, reports = play(store, scenario)
    assert refused(replies[0], 0, "reason: the failed message needs a reason string")
    assert replies[1] == ack(1)
    assert reports == [(RUN, "failed", {"reason": "loss is nan", "epochs": 3})]


def test_without_room_a_record_is_neither_acked_nor_refused(store: Store) -> None:
    """The trainer is disconnected instead and resends once there is room again."""

    async def scenario(h: Harness) -> tuple[list[Any], list[Any], list[Any]]:
        h.room = "only 1.0 MB free"
        cold = await h.send(epoch(0))  # the run not yet in memory
        started = await h.send(message(RUN, 1, "started", data={"name": "synthetic"}))
        warm = await h.send(epoch(2), message(RUN, 3, "graph", epoch=EPOCHS,
                                              probabilities=[[0.5]]))
        return cold, started, warm

    cold, started, warm = play(store, scenario)
    assert all(isinstance(r, StorageUnavailable) for r in (*cold, *warm))
    assert started == [ack(1)]
    assert store.get_metrics(RUN) == [] and store.get_graph(RUN) is None


def test_a_record_the_database_refuses_is_refused_not_retried(store: Store) -> None:
    """The run's row went away under a streaming trainer: its records can never be stored."""

    async def scenario(h: Harness) -> list[Any]:
        run = h.run
        replies = await h.send(epoch(0))
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM runs WHERE id = :id"), {"id": RUN})
        return [*replies, await h.ingest.begin(run, epoch(1))]

    replies = play(store, scenario)
    assert replies[0] == ack(0)
    assert refused(replies[1], 1, "record refused by the database: ")
