"""A real websocket server playing the backend's ``WS /ws/ingest/{run_id}`` for trainer tests.

It speaks the protocol of ``trainer.protocol``: stores each message idempotently by
``(run_id, seq)``, then acks it; refuses malformed ones with an ``error`` frame. Faults
make the network misbehave on purpose: abrupt disconnects, slow acks, a backend that
goes away and comes back on the same port.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http import HTTPStatus
from typing import Any, Literal, get_args
from urllib.parse import unquote

from pydantic import ValidationError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from trainer.protocol import PROTOCOL_VERSION, EpochRecord, MessageType

INGEST_PREFIX = "/ws/ingest/"
_TIMEOUT = 5.0


class IngestServer:
    """Ingest endpoint on 127.0.0.1 in a background thread with its own event loop.

    ``drop_after=N`` cuts the TCP connection, without a websocket close frame, right after
    receiving (and storing, but not acking) the N-th message of a connection: once, or on
    every connection when ``drop_every`` is true. ``drop_mode``
    "close" delivers the acks already written, then FIN, so each connection makes progress;
    "abort" resets the connection (RST), which also makes the client's kernel discard acks
    it has not read yet, like a crash.
    ``ack_delay`` delays each ack.
    ``refuse_seqs`` answers those seqs with an ``error`` frame instead of storing them.
    ``noisy`` surrounds each ack with frames a client must ignore: an unknown type, a
    non-JSON text and a duplicate of the ack.
    Fault settings are plain attributes and may be changed while serving.
    """

    def __init__(
        self,
        *,
        drop_after: int | None = None,
        drop_every: bool = False,
        drop_mode: Literal["close", "abort"] = "close",
        ack_delay: float = 0.0,
        refuse_seqs: set[int] | frozenset[int] = frozenset(),
        noisy: bool = False,
    ) -> None:
        if drop_after is not None and drop_after < 1:
            raise ValueError(f"drop_after must be >= 1 or None, got {drop_after!r}")
        self.drop_after = drop_after
        self.drop_every = drop_every
        self.drop_mode = drop_mode
        self.ack_delay = ack_delay
        self.refuse_seqs = set(refuse_seqs)
        self.noisy = noisy
        self.port = 0  # chosen by the OS on first start, then kept across restarts

        self._lock = threading.Lock()
        self._stored: dict[tuple[str, int], dict[str, Any]] = {}
        self._receive_count = 0
        self._connections = 0
        self._drops = 0
        self._refused: list[dict[str, Any]] = []
        self._request_headers: list[Headers] = []

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ws-ingest-server", daemon=True
        )
        self._server: Server | None = None
        self._live: set[ServerConnection] = set()

    # -- lifecycle (called from the test thread) -----------------------------------

    def start(self) -> IngestServer:
        if not self._thread.is_alive():
            self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        """The backend goes away: abort every connection, stop listening (the port is freed)."""
        self._call(self._stop())

    def restart(self) -> None:
        """The backend comes back on the same port, with everything stored so far."""
        self.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=_TIMEOUT)
        if not self._loop.is_closed() and not self._thread.is_alive():
            self._loop.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=_TIMEOUT)

    # -- what the tests read -------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.port, "start() the server first"
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_serving(self) -> bool:
        return self._server is not None

    def received(self, run_id: str) -> list[dict[str, Any]]:
        """Unique stored messages of one run, by seq."""
        with self._lock:
            rows = [msg for (rid, _), msg in self._stored.items() if rid == run_id]
        return sorted(rows, key=lambda m: m["seq"])

    @property
    def receive_count(self) -> int:
        """Every message frame received, duplicates (resends) included."""
        with self._lock:
            return self._receive_count

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    @property
    def drops(self) -> int:
        with self._lock:
            return self._drops

    @property
    def refused(self) -> list[dict[str, Any]]:
        """``{"seq", "detail"}`` of each message answered with an error frame."""
        with self._lock:
            return list(self._refused)

    @property
    def request_headers(self) -> list[Headers]:
        """The handshake headers of each accepted connection, in order."""
        with self._lock:
            return list(self._request_headers)

    # -- server (event-loop thread) ------------------------------------------------

    async def _start(self) -> None:
        if self._server is not None:
            return
        self._server = await serve(
            self._handle, "127.0.0.1", self.port, process_request=self._check_path
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        for conn in list(self._live):
            conn.transport.abort()
        server.close()
        await server.wait_closed()

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if not request.path.startswith(INGEST_PREFIX) or len(request.path) == len(INGEST_PREFIX):
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown path\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path_run_id = unquote(ws.request.path[len(INGEST_PREFIX) :])
        with self._lock:
            self._connections += 1
            self._request_headers.append(ws.request.headers)
        self._live.add(ws)
        received_here = 0
        try:
            async for frame in ws:
                with self._lock:
                    self._receive_count += 1
                received_here += 1
                reply = self._store(path_run_id, frame)
                drop_at = self.drop_after
                if drop_at is not None and received_here == drop_at and (
                    self.drop_every or self.drops == 0
                ):
                    # Stored but never acked: the client must resend it, we must not double it.
                    with self._lock:
                        self._drops += 1
                    if self.drop_mode == "abort":
                        ws.transport.abort()
                    else:
                        # Half-close, not close(): closing with the client's pipelined
                        # messages unread would make the kernel send RST, not FIN.
                        ws.transport.write_eof()
                    await ws.wait_closed()
                    return
                if self.ack_delay > 0:
                    await asyncio.sleep(self.ack_delay)
                if self.noisy:
                    await ws.send(json.dumps({"type": "hello", "seq": reply["seq"]}))
                    await ws.send("not json {")
                await ws.send(json.dumps(reply))
                if self.noisy:
                    await ws.send(json.dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            self._live.discard(ws)

    def _store(self, path_run_id: str, frame: str | bytes) -> dict[str, Any]:
        """Validate like the backend would, store idempotently; the frame to answer with."""
        try:
            msg = json.loads(frame)
        except ValueError:
            return {"type": "error", "seq": None, "detail": "not JSON"}
        seq = msg.get("seq") if isinstance(msg, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            return {"type": "error", "seq": None, "detail": "seq must be an integer >= 0"}
        detail = self._refusal(path_run_id, msg)
        if detail is not None:
            with self._lock:
                self._refused.append({"seq": seq, "detail": detail})
            return {"type": "error", "seq": seq, "detail": detail}
        with self._lock:
            self._stored.setdefault((path_run_id, seq), msg)
        return {"type": "ack", "seq": seq}

    def _refusal(self, path_run_id: str, msg: dict[str, Any]) -> str | None:
        if msg["seq"] in self.refuse_seqs:
            return f"seq {msg['seq']} refused by test configuration"
        if msg.get("v") != PROTOCOL_VERSION:
            return f"v must be {PROTOCOL_VERSION}, got {msg.get('v')!r}"
        if msg.get("run_id") != path_run_id:
            return f"run_id {msg.get('run_id')!r} does not match the URL's {path_run_id!r}"
        if msg.get("type") not in get_args(MessageType):
            return f"unknown type {msg.get('type')!r}"
        if msg["type"] == "epoch":
            try:
                EpochRecord.model_validate(msg.get("record"))
            except ValidationError as err:
                return f"invalid epoch record: {err}"
        return None
