"""The one task that stores epoch records: batched commits shared by every connected trainer.

It commits whatever arrived while the previous commit ran in one transaction — SQLite has a
single writer anyway, and one commit per batch instead of per record is what makes thousands
of records/s possible. Each record's future resolves after its commit, so an acknowledgement
that waits for it follows the record onto disk.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from backend.db import StoreError
from backend.store import Store

logger = logging.getLogger("causalwatch.ingest")

MAX_BATCH = 500

# A record and the future its commit resolves: True if stored now, False if it was already
# stored (a resend); a StoreError or other exception if the commit failed.
Pending = tuple[dict[str, Any], asyncio.Future[bool]]


class IngestWriter:
    """One task committing queued records in batches; `enqueue` resolves after the commit."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-writer")

    def enqueue(self, record: dict[str, Any]) -> asyncio.Future[bool]:
        """Queue a record for the next commit. Never blocks: callers bound what they have in
        flight."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((record, future))
        return future

    async def _run(self) -> None:
        while True:
            waiting = [await self._queue.get()]
            while not self._queue.empty():
                waiting.append(self._queue.get_nowait())
            # Take runs in turn so one trainer's backlog cannot delay everyone else's records.
            for batch in fair_batches(waiting, MAX_BATCH):
                await self._commit(batch)

    async def _commit(self, batch: list[Pending]) -> None:
        try:
            inserted = await asyncio.to_thread(self.store.add_metrics, [r for r, _ in batch])
        except StoreError as err:
            if err.code == "integrity" and len(batch) > 1:
                # One bad record must not hold the others hostage: commit one by one.
                for item in batch:
                    await self._commit([item])
                return
            logger.warning("storing %d records failed: %s", len(batch), err)
            _fail(batch, err)
            return
        except Exception as err:  # resolve every waiter, whatever happened
            logger.exception("storing %d records failed", len(batch))
            _fail(batch, err)
            return
        for (_, fut), ok in zip(batch, inserted, strict=True):
            if not fut.done():
                fut.set_result(ok)

    async def close(self) -> None:
        """Let queued records commit (for up to 2 s), then stop."""
        for _ in range(200):
            if self._queue.empty():
                break
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()


def fair_batches(items: list[Pending], size: int) -> list[list[Pending]]:
    """Batches of at most `size`, interleaving runs round-robin (order kept within a run)."""
    per_run: dict[str, list[Pending]] = {}
    for item in items:
        per_run.setdefault(item[0]["run_id"], []).append(item)
    interleaved = []
    queues = list(per_run.values())
    depth = max(len(q) for q in queues)
    for i in range(depth):
        interleaved.extend(q[i] for q in queues if i < len(q))
    return [interleaved[i : i + size] for i in range(0, len(interleaved), size)]


def _fail(batch: list[Pending], err: Exception) -> None:
    for _, fut in batch:
        if not fut.done():
            fut.set_exception(err)
