"""Shared lookups as `Annotated` dependencies: routes declare them, never repeat them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from backend.errors import not_found
from backend.schemas import RunPublic
from backend.services import Services
from trainer.protocol import RUN_ID_PATTERN


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def get_run(
    services: ServicesDep,
    run_id: Annotated[str, Path(pattern=RUN_ID_PATTERN, description="the run's id")],
) -> RunPublic:
    run = services.store.get_run(run_id)
    if run is None:
        raise not_found(f"run {run_id!r}")
    return run


RunDep = Annotated[RunPublic, Depends(get_run)]
