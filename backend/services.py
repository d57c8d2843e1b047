"""The backend's long-lived parts, built once per app and shared by the routes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from backend.hub import Hub
from backend.ingest import Ingest, IngestWriter
from backend.probes import Prober
from backend.schemas import AlertPublic, RunPublic
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
    prober: Prober
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

        def queued(run: RunPublic) -> None:
            notify(run)
            loop.call_soon_threadsafe(supervisor.poke)

        def alert_changed(alert: AlertPublic) -> None:
            # Its own type: subscribers skip "alert" events for ids they have already seen.
            event = {
                "type": "verification", "run_id": alert.run_id,
                "alert": alert.model_dump(mode="json"),
            }
            loop.call_soon_threadsafe(hub.publish, event)

        prober = Prober(settings, store, on_run=queued, on_alert=alert_changed)

        def new_alert(run: RunPublic, alert: AlertPublic) -> None:
            # Called on the event loop by ingest; queueing probes writes to the database.
            loop.run_in_executor(None, prober.on_new_alert, run, alert)

        supervisor = Supervisor(settings, store, notify, on_tick=prober.check)
        writer = IngestWriter(store)
        ingest = Ingest(store, writer, hub, on_report=supervisor.report, on_alert=new_alert)
        return cls(settings, store, hub, writer, ingest, supervisor, prober, loop)

    def publish_status(self, run: RunPublic) -> None:
        self.supervisor.notify(run)
