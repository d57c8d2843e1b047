"""The backend's long-lived parts, built once per app and shared by the routes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from backend.hub import Hub
from backend.ingest import Ingest, IngestWriter
from backend.schemas import RunPublic
from backend.settings import Settings
from backend.store import Store
from backend.supervisor import Supervisor


@dataclass
class Services:
    settings: Settings
    store: Store
    hub: Hub
    writer: IngestWriter
    ingest: Ingest
    supervisor: Supervisor
    loop: asyncio.AbstractEventLoop

    @classmethod
    def build(cls, settings: Settings, store: Store) -> Services:
        loop = asyncio.get_running_loop()
        hub = Hub()

        def notify(run: RunPublic) -> None:
            # Called from worker threads too: the hub lives on the event loop.
            event: dict[str, Any] = {
                "type": "status", "run_id": run.id, "run": run.model_dump(mode="json")
            }
            loop.call_soon_threadsafe(hub.publish, event)
            if run.status.finished:
                # Its rule state is no longer needed in memory (reloaded if a resend comes).
                loop.call_soon_threadsafe(ingest.forget, run.id)

        supervisor = Supervisor(settings, store, notify)
        writer = IngestWriter(store)
        ingest = Ingest(store, writer, hub, on_report=supervisor.report)
        return cls(settings, store, hub, writer, ingest, supervisor, loop)

    def publish_status(self, run: RunPublic) -> None:
        self.supervisor.notify(run)
