"""Websockets: trainer ingest in, live run events out to browsers."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.status import WS_1013_TRY_AGAIN_LATER

from backend.auth import allow_websocket
from backend.hub import ALL_RUNS, Event, Subscription
from backend.ingest import StorageUnavailable, answered, error_frame
from backend.services import Services

router = APIRouter(tags=["websockets"])
logger = logging.getLogger("causalwatch.ws")

MAX_FRAME_BYTES = 1_000_000  # one epoch record is ~1 KB; a started message a few KB
MAX_IN_FLIGHT = 64  # messages of one connection being stored at once
UNKNOWN_RUN = 4404
RUN_FINISHED = 4409
NO_TOKEN = ""  # matches nothing: the socket needs a token that does not exist


def _services(ws: WebSocket) -> Services:
    return ws.app.state.services  # type: ignore[no-any-return]


@router.websocket("/ws/ingest/{run_id}")
async def ingest(ws: WebSocket, run_id: str) -> None:
    """JSON messages from a trainer, each answered in order with an ack or an error frame.

    Reading and answering are two tasks: up to MAX_IN_FLIGHT messages of one connection are
    being stored at once (a resending trainer sends its whole buffer), and the answers leave
    in arrival order.
    """
    services = _services(ws)
    run = await asyncio.to_thread(services.store.get_run, run_id)
    run_token = await asyncio.to_thread(services.store.get_ingest_token, run_id)
    await ws.accept()
    if run is None:
        await ws.close(code=UNKNOWN_RUN, reason=_close_reason(f"unknown run {run_id!r}"))
        return
    # In every mode a trainer presents its run's own token (or the admin token): on
    # loopback too, any local process or page could otherwise write into any run. A run
    # without one (created before ingest tokens) takes the admin token only.
    admin = services.settings.token
    if not await allow_websocket(ws, run_token or admin or NO_TOKEN, also=admin):
        return
    if run.status.finished:
        reason = f"run {run_id!r} is {run.status.value}: it takes no more messages"
        await ws.close(code=RUN_FINISHED, reason=_close_reason(reason))
        return
    in_flight: asyncio.Queue[asyncio.Future[dict[str, Any]]] = asyncio.Queue(MAX_IN_FLIGHT)
    answering = asyncio.create_task(_answer(ws, run_id, in_flight))
    try:
        while not answering.done():
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            item = _ingest_frame(services, run, frame)
            if in_flight.full():  # wait for room, unless the answering side gave up
                put = asyncio.ensure_future(in_flight.put(item))
                await asyncio.wait({put, answering}, return_when=asyncio.FIRST_COMPLETED)
                if not put.done():
                    put.cancel()
                    break
            else:
                in_flight.put_nowait(item)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        answering.cancel()
        await _release(services, run_id)


async def _release(services: Services, run_id: str) -> None:
    """A finished run fed by hand (a late resend, a recovery) keeps no rule state after."""
    try:
        current = await asyncio.to_thread(services.store.get_run, run_id)
    except Exception:  # the database is away: the state stays, reloading costs nothing more
        return
    if current is not None and current.status.finished:
        services.ingest.forget(run_id)


def _ingest_frame(
    services: Services, run: Any, frame: dict[str, Any]
) -> asyncio.Future[dict[str, Any]]:
    text = frame.get("text")
    if text is None:
        return answered(error_frame(None, "frames must be text"))
    if len(text) > MAX_FRAME_BYTES:
        detail = f"frame of {len(text)} bytes exceeds {MAX_FRAME_BYTES}"
        return answered(error_frame(None, detail))
    try:
        message: Any = json.loads(text)
    except ValueError:
        return answered(error_frame(None, "frame is not JSON"))
    return services.ingest.begin(run, message)


async def _answer(
    ws: WebSocket, run_id: str, in_flight: asyncio.Queue[asyncio.Future[dict[str, Any]]]
) -> None:
    try:
        while True:
            pending = await in_flight.get()
            try:
                reply = await pending
            except StorageUnavailable as err:
                logger.warning("database unavailable (%s): %s must resend", err, run_id)
                await ws.close(code=WS_1013_TRY_AGAIN_LATER, reason="database busy; resend")
                return
            except Exception:  # a bug must cost one message, never the connection
                logger.exception("handling a message of %s failed", run_id)
                reply = error_frame(None, "internal error handling it")
            await ws.send_json(reply)
    except (WebSocketDisconnect, RuntimeError):
        return


async def _accept_browser(ws: WebSocket) -> Services | None:
    """The app's services once a browser's socket is accepted and allowed (the admin token
    or a ticket for it); None when it was refused and closed."""
    services = _services(ws)
    await ws.accept()
    token = services.settings.token
    if not await allow_websocket(ws, token, also=token, tickets=True):
        return None
    return services


@router.websocket("/ws/runs/{run_id}")
async def run_stream(ws: WebSocket, run_id: str) -> None:
    """A snapshot of the run (metrics, alerts, status), then every new event."""
    services = await _accept_browser(ws)
    if services is None:
        return
    async with services.hub.subscribe(run_id) as sub:
        run = await asyncio.to_thread(services.store.get_run, run_id)
        if run is None:
            await ws.close(code=UNKNOWN_RUN, reason="unknown run")
            return
        metrics = await asyncio.to_thread(services.store.get_metrics, run_id)
        alerts = await asyncio.to_thread(services.store.list_alerts, run_id)
        graph = await asyncio.to_thread(services.store.get_graph, run_id)
        await ws.send_json(
            {
                "type": "snapshot",
                "run_id": run_id,
                "run": run.model_dump(mode="json"),
                "metrics": metrics,
                "alerts": [a.model_dump(mode="json") for a in alerts],
                "graph": graph,
            }
        )
        seen_epochs = {m["epoch"] for m in metrics}
        seen_alerts = {a.id for a in alerts}

        def fresh(event: dict[str, Any]) -> bool:
            # Events published between subscribing and the snapshot are in both: skip them.
            if event["type"] == "metric":
                epoch = event["record"]["epoch"]
                if epoch in seen_epochs:
                    return False
                seen_epochs.add(epoch)
            elif event["type"] == "alert":
                if event["alert"]["id"] in seen_alerts:
                    return False
                seen_alerts.add(event["alert"]["id"])
            return True

        await _pump(ws, sub, fresh)


@router.websocket("/ws/runs")
async def all_runs_stream(ws: WebSocket) -> None:
    """The run list, then status changes, metrics and alerts of every run."""
    services = await _accept_browser(ws)
    if services is None:
        return
    async with services.hub.subscribe(ALL_RUNS) as sub:
        runs = await asyncio.to_thread(services.store.list_runs)
        await ws.send_json(
            {"type": "snapshot", "runs": [r.model_dump(mode="json") for r in runs]}
        )
        await _pump(ws, sub, lambda _event: True)


async def _pump(ws: WebSocket, sub: Subscription, keep: Any) -> None:
    """Forward events until the browser leaves or the subscription lags out."""
    receiver = asyncio.create_task(_drain_client(ws))
    getter: asyncio.Task[Event | None] | None = None
    try:
        while True:
            getter = asyncio.create_task(sub.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                return
            # One wake-up sends everything already queued: a task per event cannot keep up
            # with a busy event loop.
            events = [getter.result()]
            while not sub.queue.empty():
                events.append(sub.queue.get_nowait())
            for event in events:
                if event is None:
                    reason = "client too slow; reconnect to catch up"
                    await ws.close(code=WS_1013_TRY_AGAIN_LATER, reason=reason)
                    return
                if keep(event.payload):
                    await ws.send_text(event.text)
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        receiver.cancel()
        if getter is not None:
            getter.cancel()


async def _drain_client(ws: WebSocket) -> None:
    """Browsers only listen; reading is how a disconnect is noticed."""
    try:
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return


def _close_reason(text: str) -> str:
    """A close frame carries at most 123 bytes of reason: cut by bytes, not characters."""
    return text.encode()[:120].decode(errors="ignore")
