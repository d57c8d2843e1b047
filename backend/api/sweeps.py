"""REST: sweeps. A sweep queues its members as ordinary runs, named as one group."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter

from backend import sweeps
from backend.api.deps import ServicesDep
from backend.api.runs import _launch
from backend.datasets import DatasetError, trainer_file_args
from backend.errors import ApiError, error_responses, not_found
from backend.schemas import USER_KINDS, RunKind, RunPublic, RunStatus, SweepCreate, SweepPublic
from backend.settings import Settings
from trainer.config import ConfigError, TrainConfig, build_config

router = APIRouter(prefix="/api/sweeps", tags=["sweeps"], responses=error_responses(503))


def _members(settings: Settings, body: SweepCreate) -> list[tuple[dict[str, Any], TrainConfig]]:
    """Every member validated before any is queued: a sweep starts whole or not at all."""
    try:
        seeds = sweeps.parse_seeds(body.seeds) if isinstance(body.seeds, str) else body.seeds
        if not seeds:
            raise sweeps.SweepError("seeds: at least one seed", "seeds")
        changes = sweeps.expand(body.grid, seeds, samples=body.samples)
    except sweeps.SweepError as err:
        raise ApiError(422, str(err), err.field) from None
    members = []
    for change in changes:
        try:
            config = build_config(body.preset, {**body.overrides, **change})
        except ConfigError as err:
            field = "preset" if err.field == "preset" else sweeps.config_error_field(err, change)
            raise ApiError(422, str(err), field) from None
        members.append((change, config))
    try:
        # Data files are the overrides', the same for every member: resolve them once now.
        if members:
            trainer_file_args(settings, members[0][1].model_dump())
    except DatasetError as err:
        raise ApiError(422, err.message, f"overrides.{err.field}") from None
    return members


def _best(members: list[RunPublic]) -> str | None:
    scored = [
        (float(m.summary["best_val_recon"]), m.id) for m in members
        if m.status is RunStatus.completed and m.summary
        and m.summary.get("best_val_recon") is not None
        and math.isfinite(float(m.summary["best_val_recon"]))
    ]
    return min(scored)[1] if scored else None


@router.post("", status_code=201, response_model=SweepPublic,
             responses=error_responses(400, 413, 429, 507))
def create_sweep(body: SweepCreate, services: ServicesDep) -> SweepPublic:
    """Validate every member (preset + overrides + its grid values and seed), then queue
    them all; they start on the backend's executor as slots and resources allow."""
    members = _members(services.settings, body)
    queued = services.store.count_by_status(USER_KINDS).get(RunStatus.queued.value, 0)
    room = services.settings.max_queued - queued
    if len(members) > room:
        raise ApiError(429, f"{len(members)} members but room for {max(room, 0)} more queued "
                       f"runs (max_queued={services.settings.max_queued})")
    sweep_id = sweeps.new_sweep_id()
    runs: list[RunPublic] = []
    for change, config in members:
        created = _launch(services, preset=body.preset, config=config,
                          name=sweeps.member_name(sweep_id, change))
        # Read back as a plain run: a member has no ingest token to hand out.
        runs.append(services.store.get_run(created.id) or created)
    return SweepPublic(id=sweep_id, members=runs, best=None)


@router.get("/{sweep_id}", response_model=SweepPublic, responses=error_responses(404))
def get_sweep(sweep_id: str, services: ServicesDep) -> SweepPublic:
    """The sweep's members in the order they were queued, and its best completed member."""
    runs = services.store.list_runs(kinds=(RunKind.run,), limit=5000)
    # A restarted member keeps the name's prefix; it is the member's child, not a member.
    members = sorted(
        (r for r in runs if r.parent_id is None and sweeps.is_member(r.name, sweep_id)),
        key=lambda r: (r.created_at, r.id),
    )
    if not members:
        raise not_found(f"sweep {sweep_id!r}")
    return SweepPublic(id=sweep_id, members=members, best=_best(members))
