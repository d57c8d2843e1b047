"""Live events fanned out to browser websockets: one bounded queue per subscriber.

Events are JSON-ready dicts: `{"type": "metric" | "alert" | "verification" | "status",
"run_id": ..., ...}`.
A subscriber that falls too far behind is dropped (its queue overflows) rather than
slowing ingest for everyone; its websocket closes and the browser reconnects and catches
up from the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

logger = logging.getLogger("causalwatch.hub")

ALL_RUNS = "*"
QUEUE_SIZE = 10_000


class Event(NamedTuple):
    """An event and its JSON text, encoded once however many browsers receive it."""

    payload: dict[str, Any]
    text: str


class Subscription:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    async def get(self) -> Event | None:
        """The next event, or None once the subscription was dropped for lagging."""
        return await self.queue.get()


class Hub:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        """Events of one run (`topic` = run id) or of every run (`ALL_RUNS`)."""
        sub = Subscription(topic)
        self._subs.setdefault(topic, set()).add(sub)
        try:
            yield sub
        finally:
            self._subs.get(topic, set()).discard(sub)

    def publish(self, event: dict[str, Any]) -> None:
        """Deliver to the run's subscribers and the all-runs subscribers; never blocks."""
        encoded: Event | None = None
        for topic in (event.get("run_id"), ALL_RUNS):
            for sub in list(self._subs.get(str(topic), ())):
                if sub.overflowed:
                    continue
                if encoded is None:
                    encoded = Event(event, json.dumps(event, separators=(",", ":")))
                try:
                    sub.queue.put_nowait(encoded)
                except asyncio.QueueFull:
                    sub.overflowed = True
                    logger.warning("dropping a lagging subscriber of %s", sub.topic)
                    # Make room for the end marker so the reader wakes up and closes.
                    sub.queue.get_nowait()
                    sub.queue.put_nowait(None)
