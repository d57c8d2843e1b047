"""The backend's long-lived parts, built once per app and shared by the routes."""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.hub import Hub
from backend.ingest import Ingest
from backend.ingest_writer import IngestWriter
from backend.probes import Prober
from backend.schemas import AlertPublic, RunPublic
from backend.settings import Settings
from backend.store import Store
from backend.supervisor import Supervisor


class FreeSpace:
    """The runs directory's free space against `min_free_mb`, measured at most once a second
    (ingest asks on every record)."""

    def __init__(self, folder: Path, min_free_mb: float) -> None:
        self.folder = folder
        self.min_free_mb = min_free_mb
        self._checked = -math.inf
        self._shortage: str | None = None

    def shortage(self, *, fresh: bool = False) -> str | None:
        """None while there is room; otherwise a sentence saying how little there is."""
        now = time.monotonic()
        if fresh or now - self._checked >= 1.0:
            self._checked = now
            free_mb = shutil.disk_usage(self.folder).free / 2**20
            self._shortage = None if free_mb >= self.min_free_mb else (
                f"only {free_mb:.1f} MB free in the runs directory {self.folder} "
                f"(min_free_mb={self.min_free_mb:g})"
            )
        return self._shortage


@dataclass
class Services:
    settings: Settings
    store: Store
    hub: Hub
    writer: IngestWriter
    ingest: Ingest
    supervisor: Supervisor
    prober: Prober
    free_space: FreeSpace
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
        free_space = FreeSpace(settings.runs_dir, settings.min_free_mb)
        ingest = Ingest(
            store, writer, hub, on_report=supervisor.report, on_alert=new_alert,
            has_room=free_space.shortage,
        )
        return cls(settings, store, hub, writer, ingest, supervisor, prober, free_space, loop)

    def publish_status(self, run: RunPublic) -> None:
        self.supervisor.notify(run)
