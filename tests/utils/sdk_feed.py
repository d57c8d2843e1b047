"""Feeding a run of kind sdk by hand, as the user's own training loop does: protocol
messages over `WS /ws/ingest/{run_id}` with the run's ingest token, each acknowledged."""

from __future__ import annotations

import json
from typing import Any

from websockets.sync.client import connect

from utils.backend_server import BackendServer


def feed(stack: BackendServer, run_id: str, messages: list[tuple[str, dict[str, Any]]],
         first_seq: int = 1) -> None:
    """Send protocol messages as a run of kind sdk's own process does, each acknowledged."""
    with connect(f"{stack.ws_url}/ws/ingest/{run_id}", open_timeout=10,
                 additional_headers=stack.ingest_headers(run_id)) as ws:
        for seq, (kind, payload) in enumerate(messages, start=first_seq):
            ws.send(json.dumps({"v": 1, "type": kind, "run_id": run_id, "seq": seq, **payload}))
            reply = json.loads(ws.recv(timeout=30))
            assert reply["type"] == "ack", reply
