"""Feeding a run of kind sdk by hand, as the user's own training loop does: protocol
messages over `WS /ws/ingest/{run_id}` with the run's ingest token, each acknowledged."""

from __future__ import annotations

import json
from typing import Any

from websockets.sync.client import connect

from utils.backend_server import BackendServer
from utils.records import frame


def feed(stack: BackendServer, run_id: str, messages: list[tuple[str, dict[str, Any]]],
         first_seq: int = 1, in_flight: int = 1) -> None:
    """Send protocol messages as a run of kind sdk's own process does, each acknowledged,
    `in_flight` unacknowledged at most (the backend takes 64)."""
    frames = [frame(run_id, seq, kind, **payload)
              for seq, (kind, payload) in enumerate(messages, start=first_seq)]
    with connect(f"{stack.ws_url}/ws/ingest/{run_id}", open_timeout=10,
                 additional_headers=stack.ingest_headers(run_id)) as ws:
        for start in range(0, len(frames), in_flight):
            batch = frames[start:start + in_flight]
            for text in batch:
                ws.send(text)
            for _ in batch:
                reply = json.loads(ws.recv(timeout=30))
                assert reply["type"] == "ack", reply


def feed_records(stack: BackendServer, run_id: str, records: list[dict[str, Any]]) -> None:
    """A run's epoch records, sent as fast as the backend takes them."""
    feed(stack, run_id, [("epoch", {"record": record}) for record in records], in_flight=50)
