"""The app factory: settings → store → services, routers, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from backend import __version__, docs
from backend.api import datasets, presets, runs, sweeps, tickets, ws
from backend.auth import TokenMiddleware
from backend.errors import install_handlers
from backend.limits import BodySizeLimit
from backend.origins import BrowserGuard, document_refusals
from backend.schemas import Health, RunStatus
from backend.services import Services
from backend.settings import Settings
from backend.store import Store


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.runs_dir.mkdir(parents=True, exist_ok=True)
        store = Store.from_url(settings.db_url)
        services = Services.build(settings, store)
        app.state.services = services
        services.writer.start()
        await services.supervisor.start()
        try:
            yield
        finally:
            await services.supervisor.shutdown()
            await services.writer.close()
            store.engine.dispose()

    app = FastAPI(
        title="causalwatch", version=__version__, lifespan=lifespan,
        docs_url=None, redoc_url=None,  # backend/docs.py: pinned, integrity-checked assets
    )
    docs.install(app)
    upload_limit = int(settings.max_upload_mb * 2**20)
    app.add_middleware(BodySizeLimit, larger={datasets.UPLOAD_PATH: upload_limit})
    if settings.token:  # nothing is read for a caller without the token
        app.add_middleware(TokenMiddleware, token=settings.token)
    # Outermost: a request under a foreign Host or Origin is refused before anything else.
    app.add_middleware(BrowserGuard, settings=settings)
    install_handlers(app)
    app.include_router(runs.router)
    app.include_router(sweeps.router)
    app.include_router(presets.router)
    app.include_router(datasets.router)
    app.include_router(tickets.router)
    app.include_router(ws.router)
    document_refusals(app)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        services: Services = app.state.services
        counts = services.store.count_by_status()
        return Health(
            status="ok",
            version=__version__,
            database=services.store.ping(),
            runs_active=services.supervisor.active,
            runs_queued=counts.get(RunStatus.queued.value, 0),
            runs_in_memory=services.ingest.runs_in_memory,
        )

    return app
