"""Streams the trainer's protocol messages to the backend over ``WS /ws/ingest/{run_id}``.

The training loop calls :meth:`Emitter.send` from its own (synchronous) thread; a daemon
thread running an asyncio loop owns the websocket. Every message stays in an
unacknowledged buffer until the backend acks it (or refuses it with an ``error`` frame),
and is resent on every reconnect, so a backend that is slow, restarting or down never
loses a record and never slows or stops training. The backend stores idempotently by
``(run_id, seq)``, which makes the resends harmless.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import logging
import random
import threading
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from trainer.protocol import MESSAGE_TYPES, MessageType, make_message

logger = logging.getLogger("causalwatch.emitter")

_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_MESSAGE_TYPES: frozenset[str] = frozenset(MESSAGE_TYPES)
_FIRST_BACKOFF = 0.1
# Refusals are rare and each detail names a bug; the first ones are the useful ones.
_MAX_ERRORS_KEPT = 100
# Bounds close(): the closing handshake must not hang on a stalled backend.
_CLOSE_HANDSHAKE_TIMEOUT = 1.0
_OPEN_TIMEOUT = 5.0
# A connection that stayed up this long was healthy even if it carried nothing to ack.
_STABLE_AFTER = 10.0


def ingest_url(backend_url: str, run_id: str) -> str:
    """The websocket URL of a run's ingest endpoint: ``{ws|wss}://host[:port][/prefix]/ws/ingest/{run_id}``."""
    if not isinstance(backend_url, str):
        raise TypeError(f"backend_url must be a string, got {type(backend_url).__name__}")
    parts = urlsplit(backend_url.strip())
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ValueError(
            "backend_url must look like http(s)://host:port or ws(s)://host:port, "
            f"got {backend_url!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"backend_url must not carry a query or fragment, got {backend_url!r}")
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
    # A path prefix is kept so the backend can sit behind a reverse proxy.
    prefix = parts.path.rstrip("/")
    return f"{scheme}://{parts.netloc}{prefix}/ws/ingest/{quote(run_id, safe='')}"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Emitter:
    """Non-blocking, at-least-once delivery of one run's messages to the backend.

    ``send()`` only appends to a buffer; ``close()`` waits (bounded) for the acks.
    Use as ``with Emitter(url, run_id) as em: em.send("epoch", record=...)`` or call
    ``start()`` / ``close()`` explicitly.
    """

    def __init__(
        self,
        backend_url: str,
        run_id: str,
        *,
        token: str | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self._url = ingest_url(backend_url, run_id)
        if not max_backoff > 0:
            raise ValueError(f"max_backoff must be > 0 seconds, got {max_backoff!r}")
        self._run_id = run_id
        self._max_backoff = float(max_backoff)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        # A loopback backend is the one that spawned us: an HTTP(S)_PROXY set for the
        # outside world must not intercept it (urllib only bypasses hosts in no_proxy).
        self._proxy: bool | None = None if _is_loopback(self._url) else True

        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._close_lock = threading.Lock()
        # seq -> JSON text. Seqs are inserted in increasing order and never re-inserted,
        # so the dict's order is seq order: resending is a plain iteration.
        self._pending: dict[int, str] = {}
        self._next_seq = 0
        self._acked = 0
        self._refused = 0
        self._connections = 0
        self._connected = False
        self._errors: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=_MAX_ERRORS_KEPT
        )
        self._closed = False
        self._final: dict[str, Any] | None = None

        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    # -- producer side (training thread) -------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    def start(self) -> None:
        """Start the background sender; messages sent before this are kept and sent then."""
        with self._lock:
            if self._closed:
                raise RuntimeError("Emitter.start(): the emitter is closed")
            if self._thread is not None:
                raise RuntimeError("Emitter.start(): already started")
            self._loop = asyncio.new_event_loop()
            self._wake = asyncio.Event()
            self._thread = threading.Thread(
                target=self._thread_main, name=f"causalwatch-emitter-{self._run_id}", daemon=True
            )
        self._thread.start()

    def send(self, msg_type: MessageType, **payload: Any) -> int:
        """Queue one message and return its seq; never waits on the network.

        Serializes now, so later mutation of ``payload`` by the caller cannot change
        what is sent, and a non-JSON payload fails here, in the caller's stack.
        """
        if msg_type not in _MESSAGE_TYPES:
            raise ValueError(f"msg_type must be one of {sorted(_MESSAGE_TYPES)}, got {msg_type!r}")
        with self._lock:
            if self._closed:
                raise RuntimeError("Emitter.send(): the emitter is closed")
            seq = self._next_seq
            text = json.dumps(make_message(msg_type, self._run_id, seq, **payload))
            self._pending[seq] = text
            self._next_seq = seq + 1
        self._wake_sender()
        return seq

    @property
    def stats(self) -> dict[str, Any]:
        """Counters so far (thread-safe).

        ``sent`` counts messages created by ``send()``; ``reconnects`` counts connections
        made after the first; ``errors`` holds the latest refusals as ``{"seq", "detail"}``.
        """
        with self._lock:
            return self._stats_locked()

    def close(self, timeout: float = 5.0) -> dict[str, Any]:
        """Wait up to ``timeout`` s for every message to be acked, stop the thread, return stats.

        ``connected`` tells whether the link was up when the wait ended. Idempotent.
        """
        with self._close_lock:
            if self._final is not None:
                return dict(self._final)
            with self._lock:
                self._closed = True
                if self._thread is not None and self._thread.is_alive():
                    self._drained.wait_for(lambda: not self._pending, timeout=max(0.0, timeout))
                connected = self._connected
            self._stop_thread()
            with self._lock:
                final = self._stats_locked()
            final["connected"] = connected
            self._final = final
            if final["unacked"]:
                logger.warning(
                    "closing with %d unacknowledged message(s) for run %s",
                    final["unacked"], self._run_id,
                )
            return dict(final)

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _stats_locked(self) -> dict[str, Any]:
        return {
            "sent": self._next_seq,
            "acked": self._acked,
            "unacked": len(self._pending),
            "refused": self._refused,
            "reconnects": max(0, self._connections - 1),
            "connected": self._connected,
            "errors": list(self._errors),
        }

    def _wake_sender(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:
            # The loop is already closed: close() is under way and reports the rest as unacked.
            pass

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(self._cancel_task)
        except RuntimeError:
            pass  # the loop already ended
        thread.join(timeout=_CLOSE_HANDSHAKE_TIMEOUT + 1.0)
        if thread.is_alive():
            logger.warning("emitter thread for run %s did not stop in time", self._run_id)

    # -- background thread ---------------------------------------------------------

    def _thread_main(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            self._task = loop.create_task(self._run())
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception:
            # _run() already survives network errors; this is a bug, but training goes on.
            logger.exception("emitter thread for run %s crashed", self._run_id)
        finally:
            with self._lock:
                self._connected = False
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _cancel_task(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        """Connect, exchange, and reconnect with jittered exponential backoff until cancelled."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            connected_at: float | None = None
            with self._lock:
                answered_before = self._acked + self._refused
            try:
                async with connect(
                    self._url,
                    additional_headers=self._headers,
                    proxy=self._proxy,
                    open_timeout=_OPEN_TIMEOUT,
                    close_timeout=_CLOSE_HANDSHAKE_TIMEOUT,
                ) as ws:
                    connected_at = loop.time()
                    with self._lock:
                        self._connections += 1
                        self._connected = True
                        backlog = len(self._pending)
                    logger.info(
                        "connected to %s (%d unacknowledged message(s) to send)", self._url, backlog
                    )
                    await self._exchange(ws)
                    reason = f"closed by backend, code {ws.close_code} {ws.close_reason!r}"
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                # Never let a surprise in the network stack stop the retries.
                logger.exception("unexpected error streaming to %s", self._url)
                reason = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._connected = False
                backlog = len(self._pending)
                answered = self._acked + self._refused > answered_before
            # Only a connection that did some good resets the backoff: a backend that
            # accepts and then hangs up at once must not be hammered (nor flood the log).
            if connected_at is not None and (
                answered or loop.time() - connected_at >= _STABLE_AFTER
            ):
                failures = 0
            if failures == 0:
                if connected_at is not None:
                    logger.warning(
                        "connection to %s lost (%s); %d unacknowledged message(s) will be resent",
                        self._url, reason, backlog,
                    )
                else:
                    logger.warning(
                        "backend unreachable at %s (%s); buffering and retrying", self._url, reason
                    )
            else:
                logger.debug("retry %d to %s failed (%s)", failures, self._url, reason)
            delay = min(self._max_backoff, _FIRST_BACKOFF * 2 ** min(failures, 30))
            delay *= random.uniform(0.5, 1.0)  # de-synchronizes many trainers after a restart
            failures += 1
            await asyncio.sleep(delay)

    async def _exchange(self, ws: ClientConnection) -> None:
        """Send in the background while reading frames, until the connection ends.

        The reader decides when a connection is over: after a close it still yields the
        frames already received, so acks that arrived just before a drop are not lost
        (which would mean needless resends, and no progress on a flapping link).
        """
        sender = asyncio.create_task(self._send_pending(ws))
        try:
            await self._read_frames(ws)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _send_pending(self, ws: ClientConnection) -> None:
        assert self._wake is not None
        last_sent = -1  # a fresh connection resends the whole buffer
        try:
            while True:
                # Cleared before the scan: a send() during the scan sets it again, so no
                # wake-up is lost.
                self._wake.clear()
                for seq, text in self._unsent_after(last_sent):
                    with self._lock:
                        still_pending = seq in self._pending
                    if still_pending:
                        await ws.send(text)
                    last_sent = seq
                await self._wake.wait()
        except ConnectionClosed:
            pass  # the reader sees the same close once it has drained what arrived
        except Exception:
            # A reader waiting on a link nobody writes to would stall delivery silently.
            logger.exception("sender to %s failed; reconnecting", self._url)
            ws.transport.abort()

    def _unsent_after(self, last_sent: int) -> list[tuple[int, str]]:
        # Walk from the newest end: cost is the number of new messages, not the backlog.
        batch: list[tuple[int, str]] = []
        with self._lock:
            for seq, text in reversed(self._pending.items()):
                if seq <= last_sent:
                    break
                batch.append((seq, text))
        batch.reverse()
        return batch

    async def _read_frames(self, ws: ClientConnection) -> None:
        async for frame in ws:
            self._handle_frame(frame)

    def _handle_frame(self, frame: str | bytes) -> None:
        try:
            msg = json.loads(frame)
        except (ValueError, UnicodeDecodeError):
            logger.debug("ignoring a non-JSON frame from %s", self._url)
            return
        if not isinstance(msg, dict):
            return
        kind, seq = msg.get("type"), msg.get("seq")
        if kind not in ("ack", "error"):
            return  # unknown frames are reserved for future protocol versions
        if not isinstance(seq, int) or isinstance(seq, bool):
            if kind == "error":
                logger.warning("backend error without a seq: %s", msg.get("detail"))
            return
        with self._lock:
            if self._pending.pop(seq, None) is None:
                return  # duplicate ack/error, or one for an unknown seq
            if kind == "ack":
                self._acked += 1
            else:
                self._refused += 1
                self._errors.append({"seq": seq, "detail": msg.get("detail")})
            if not self._pending:
                self._drained.notify_all()
        if kind == "error":
            logger.warning("backend refused message seq %d: %s", seq, msg.get("detail"))
