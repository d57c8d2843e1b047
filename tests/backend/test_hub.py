"""Live-event fan-out in process (backend/hub.py): who receives what, and what becomes of a
subscriber that cannot keep up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from backend import hub as hub_module
from backend.hub import ALL_RUNS, Event, Hub, Subscription

T = TypeVar("T")


def run(scenario: Callable[[Hub], Awaitable[T]]) -> T:
    return asyncio.run(scenario(Hub()))


def drain(sub: Subscription) -> list[Event | None]:
    return [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]


def metric(run_id: str | None, epoch: int) -> dict[str, Any]:
    return {"type": "metric", "run_id": run_id, "record": {"epoch": epoch}}


def test_a_run_subscriber_hears_its_run_and_the_all_runs_one_every_run() -> None:
    async def scenario(h: Hub) -> tuple[list[Any], ...]:
        async with h.subscribe("a") as a, h.subscribe("b") as b, h.subscribe(ALL_RUNS) as every:
            h.publish(metric("a", 1))
            h.publish(metric("b", 1))
            h.publish(metric("a", 2))
            h.publish({"type": "status"})  # no run: for the runs list only
            return drain(a), drain(b), drain(every)

    a, b, every = run(scenario)
    assert [(e.payload["run_id"], e.payload["record"]["epoch"]) for e in a] == [("a", 1), ("a", 2)]
    assert [e.payload["run_id"] for e in b] == ["b"]
    assert [e.payload.get("run_id") for e in every] == ["a", "b", "a", None]
    # One encoding however many receive it: compact JSON of the payload.
    assert a[0] is every[0]
    assert a[0].text == '{"type":"metric","run_id":"a","record":{"epoch":1}}'
    assert json.loads(a[0].text) == a[0].payload


def test_publishing_to_nobody_is_harmless_and_a_left_subscriber_hears_nothing() -> None:
    async def scenario(h: Hub) -> list[Event | None]:
        h.publish(metric("a", 1))
        async with h.subscribe("a") as sub:
            pass
        h.publish(metric("a", 2))
        return drain(sub)

    assert run(scenario) == []


def test_get_waits_for_the_next_event() -> None:
    async def scenario(h: Hub) -> Event | None:
        async with h.subscribe("a") as sub:
            waiting = asyncio.create_task(sub.get())
            await asyncio.sleep(0.01)
            assert not waiting.done()
            h.publish(metric("a", 7))
            return await asyncio.wait_for(waiting, 1)

    event = run(scenario)
    assert event is not None and event.payload["record"]["epoch"] == 7


def test_a_lagging_subscriber_is_dropped_without_slowing_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub_module, "QUEUE_SIZE", 3)

    async def scenario(h: Hub) -> tuple[list[Any], list[Any], bool]:
        async with h.subscribe("a") as slow, h.subscribe(ALL_RUNS) as fast:
            for epoch in range(1, 4):
                h.publish(metric("a", epoch))
                assert (await fast.get()) is not None  # the fast one keeps up
            h.publish(metric("a", 4))  # the slow one's queue is full: it is dropped
            h.publish(metric("a", 5))  # and hears nothing more
            fast_rest = [await fast.get(), await fast.get()]
            return drain(slow), fast_rest, slow.overflowed

    slow, fast, overflowed = run(scenario)
    assert overflowed
    # The oldest event made room for the end marker, so the reader wakes up and closes.
    assert [e.payload["record"]["epoch"] for e in slow[:-1]] == [2, 3]
    assert slow[-1] is None
    assert [e.payload["record"]["epoch"] for e in fast] == [4, 5]
