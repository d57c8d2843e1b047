"""REST: runs, their metrics, alerts, scorecard, logs; stop and restart."""

from __future__ import annotations

import csv
import io
import secrets
import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, JSONResponse

from backend import scorecard
from backend.api.deps import RunDep, ServicesDep
from backend.datasets import DatasetError, trainer_file_args
from backend.errors import ApiError, error_responses, not_found
from backend.schemas import (
    SDK_PRESET,
    USER_KINDS,
    AlertPublic,
    RestartRequest,
    RunCreate,
    RunCreated,
    RunKind,
    RunList,
    RunPublic,
    RunStatus,
    StatusEventPublic,
)
from backend.services import Services
from backend.settings import Settings
from backend.store import METRIC_FIELDS
from trainer.config import ConfigError, TrainConfig, build_config
from trainer.protocol import LOG_FILE, new_run_id

router = APIRouter(prefix="/api/runs", tags=["runs"], responses=error_responses(503))
# A route taking a run id answers 404 for an unknown run.
RUN = error_responses(404)


def _validated_config(settings: Settings, preset: str, overrides: dict[str, Any]) -> TrainConfig:
    try:
        config = build_config(preset, overrides)
    except ConfigError as err:
        field = err.field if err.field in ("preset", "patch") else f"overrides.{err.field}"
        raise ApiError(422, str(err), field if err.field else "overrides") from None
    try:
        # Resolve the file names now, as the supervisor will: a well-formed name of no file
        # would otherwise be accepted here and fail the run only when its trainer starts.
        # (The supervisor checks again at start: a file can vanish while the run is queued.)
        trainer_file_args(settings, config.model_dump())
    except DatasetError as err:
        raise ApiError(422, err.message, f"overrides.{err.field}") from None
    return config

_QUEUEING = threading.Lock()  # routes run in a thread pool: see _launch


def _refuse_if_full(services: Services) -> None:
    shortage = services.free_space.shortage(fresh=True)
    if shortage is not None:
        # A run that cannot write its log and metrics would be lost: refuse it up front.
        raise ApiError(507, f"{shortage}; free some space first")


def _launch(
    services: Services,
    *,
    preset: str,
    config: TrainConfig,
    name: str | None,
    parent_id: str | None = None,
    parent_alert_id: int | None = None,
) -> RunCreated:
    _refuse_if_full(services)
    # Counting and queueing under one lock: checked apart, concurrent requests would all
    # see room and all queue (50 at once had left 43 queued under a bound of 20).
    ingest_token = secrets.token_urlsafe(24)
    with _QUEUEING:
        # The user's queue: probes wait in slots of their own and never block a user's run.
        queued = services.store.count_by_status(USER_KINDS).get(RunStatus.queued.value, 0)
        if queued >= services.settings.max_queued:
            raise ApiError(
                429,
                f"{queued} runs are already queued (max_queued={services.settings.max_queued})",
            )
        run = services.store.create_run(
            run_id=new_run_id(preset),
            preset=preset,
            config=config.model_dump(),
            name=name,
            parent_id=parent_id,
            parent_alert_id=parent_alert_id,
            # Its trainer's own key to the ingest socket: it can write into this run only.
            ingest_token=ingest_token,
        )
    services.publish_status(run)
    services.loop.call_soon_threadsafe(services.supervisor.poke)
    return RunCreated(**run.model_dump())


@router.post(
    "", status_code=201, response_model=RunCreated,
    responses=error_responses(400, 413, 429, 507),
)
def create_run(body: RunCreate, services: ServicesDep) -> RunCreated:
    """Validate the config (preset + overrides), record the run, queue its trainer; or,
    with kind sdk, hand the caller the run's ingest token to stream its own training."""
    if body.own_config:
        return _create_sdk_run(
            services, preset=SDK_PRESET, config=body.config or {}, epochs=body.epochs or 0,
            name=body.name,
        )
    config = _validated_config(services.settings, body.preset, body.overrides)
    if body.kind == "sdk":
        # A config of ours trained outside the backend (e.g. our trainer run by hand).
        return _create_sdk_run(
            services, preset=body.preset, config=config.model_dump(), epochs=None,
            name=body.name,
        )
    return _launch(services, preset=body.preset, config=config, name=body.name)


def _create_sdk_run(
    services: Services, *, preset: str, config: dict[str, Any], epochs: int | None,
    name: str | None,
) -> RunCreated:
    """A run the caller's own process feeds: running at once, nothing waits for a slot."""
    _refuse_if_full(services)
    ingest_token = secrets.token_urlsafe(24)
    run = services.store.create_run(
        run_id=new_run_id(preset),
        preset=preset,
        config=config,
        name=name,
        ingest_token=ingest_token,
        kind=RunKind.sdk,
        epochs_total=epochs,
    )
    run = services.store.set_status(run.id, RunStatus.running, None) or run
    services.publish_status(run)
    return RunCreated(**run.model_dump(), ingest_token=ingest_token)


@router.get("", response_model=RunList)
def list_runs(
    services: ServicesDep,
    status: Annotated[RunStatus | None, Query()] = None,
    kind: Annotated[
        Literal["user", "run", "sdk", "probe", "all"],
        Query(description="user: runs of kinds run and sdk (default); one kind; or all"),
    ] = "user",
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> RunList:
    runs = services.store.list_runs(
        status=status.value if status else None,
        kinds=None if kind == "all" else USER_KINDS if kind == "user" else (RunKind(kind),),
        limit=limit,
        offset=offset,
    )
    return RunList(runs=runs, count=len(runs))


@router.get("/{run_id}/probes", response_model=RunList, responses=RUN)
def list_probes(run: RunDep, services: ServicesDep) -> RunList:
    """The probe runs that tried this run's alert fixes (each links its alert by
    parent_alert_id), newest first."""
    probes = services.store.list_runs(kinds=(RunKind.probe,), parent_id=run.id, limit=5000)
    return RunList(runs=probes, count=len(probes))


@router.get("/{run_id}", response_model=RunPublic, responses=RUN)
def get_run(run: RunDep) -> RunPublic:
    return run


@router.get(
    "/{run_id}/metrics",
    response_model=None,
    responses={**RUN, 200: {
        "description": "The records as JSON, or as a CSV or JSON file with `format`",
        "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}},
    }},
)
def get_metrics(
    run: RunDep,
    services: ServicesDep,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
    since_epoch: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    fields: Annotated[
        str | None, Query(max_length=2000, description="comma-separated record fields")
    ] = None,
) -> Response:
    """Every stored epoch record; `format=csv|json` downloads it as a file."""
    wanted = None
    if fields:
        wanted = [f.strip() for f in fields.split(",") if f.strip()]
        unknown = sorted(set(wanted) - set(METRIC_FIELDS))
        if unknown:
            raise ApiError(
                422, f"fields: unknown {', '.join(unknown)}; known: {', '.join(METRIC_FIELDS)}",
                "fields",
            )
    records = services.store.get_metrics(run.id, since_epoch=since_epoch, fields=wanted)
    if format == "csv":
        buffer = io.StringIO()
        columns = list(records[0]) if records and wanted else list(METRIC_FIELDS)
        rows, columns = _flat_custom(records, columns)
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return Response(
            buffer.getvalue(),
            media_type="text/csv",
            headers=_attachment(f"{run.id}-metrics.csv"),
        )
    headers = _attachment(f"{run.id}-metrics.json") if format == "json" else None
    return JSONResponse(records, headers=headers)


def _flat_custom(
    records: list[dict[str, Any]], columns: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """A CSV cell holds one number: an SDK loop's own keys become `custom.<key>` columns."""
    if "custom" not in columns:
        return records, columns
    keys = sorted({k for r in records for k in (r.get("custom") or {})})
    flat = [
        {**{k: v for k, v in r.items() if k != "custom"},
         **{f"custom.{k}": v for k, v in (r.get("custom") or {}).items()}}
        for r in records
    ]
    return flat, [c for c in columns if c != "custom"] + [f"custom.{k}" for k in keys]


@router.get("/{run_id}/graph", responses=RUN)
def get_graph(
    run: RunDep,
    services: ServicesDep,
    epoch: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> dict[str, Any]:
    """The learned edge probabilities (latest evaluation epoch, or `epoch`), the variable
    names and the reference edges, for the adjacency heatmap."""
    graph = services.store.get_graph(run.id, epoch=epoch)
    if graph is None:
        raise not_found(f"graph of run {run.id!r}" + (f" at epoch {epoch}" if epoch else ""))
    data = run.data or {}
    return {
        **graph,
        "variables": data.get("variables"),
        "reference_edges": data.get("reference_edges", []),
        "reference_kind": data.get("reference_kind"),
    }


@router.get("/{run_id}/alerts", response_model=list[AlertPublic], responses=RUN)
def get_alerts(run: RunDep, services: ServicesDep) -> list[AlertPublic]:
    return services.store.list_alerts(run.id)


@router.get("/{run_id}/events", response_model=list[StatusEventPublic], responses=RUN)
def get_events(run: RunDep, services: ServicesDep) -> list[StatusEventPublic]:
    return services.store.status_events(run.id)


@router.get("/{run_id}/scorecard", responses=RUN)
def get_scorecard(run: RunDep, services: ServicesDep) -> dict[str, Any]:
    # The newest record of each judged metric, not the history: a live run's page asks on
    # every epoch, and reading every row each time cost O(epochs²) over the run.
    reference = run.reference_size
    latest = services.store.latest_with(
        run.id, scorecard.metrics_to_read(reference), scorecard.READ_FIELDS
    )
    return scorecard.score(run.config, latest, reference, run.status.finished)


@router.get("/{run_id}/log", response_class=FileResponse, responses=RUN)
def get_log(run: RunDep, services: ServicesDep) -> FileResponse:
    """The run's plain-text log, as a download."""
    runs_dir = services.settings.runs_dir.resolve()
    path = (runs_dir / run.id / LOG_FILE).resolve()
    # The id is pattern-checked and known to the database; this guards the join anyway.
    if not path.is_relative_to(runs_dir) or not path.is_file():
        raise not_found(f"log of run {run.id!r}")
    return FileResponse(path, media_type="text/plain", filename=f"{run.id}-{LOG_FILE}")


@router.post("/{run_id}/stop", response_model=RunPublic, responses=error_responses(404, 409))
def stop_run(run: RunDep, services: ServicesDep) -> RunPublic:
    """Stop gracefully (the trainer ends its epoch); force after the stop timeout."""
    if run.status.finished:
        raise ApiError(409, f"run {run.id!r} already ended ({run.status.value})")
    for probe_id in services.prober.cancel_for(run.id):
        services.supervisor.stop(probe_id)  # its probes tell nothing a stopped run needs
    return services.supervisor.stop(run.id) or run


@router.post(
    "/{run_id}/restart", status_code=201, response_model=RunCreated,
    responses=error_responses(400, 404, 409, 413, 429, 507),
)
def restart_run(run: RunDep, body: RestartRequest, services: ServicesDep) -> RunCreated:
    """A new run from this one's config + an alert's fix (`alert_id`) + `overrides`.

    The alert's fix is its best verified probe's patch, else the rule's first choice
    (AlertPublic.fix); `candidate` picks another of its candidates by label. A config that
    already ran as a user run is refused (409) with that run's id, unless `allow_repeat`.
    """
    if not run.restartable:
        # Its loop and config are the caller's: only the caller can start it again, with
        # the alert's changed values (AlertPublic.fix) applied to its own config.
        raise ApiError(
            409, f"run {run.id!r} is fed by your own training loop (kind sdk): start it again "
            "from your script with the alert's changed values",
        )
    patch: dict[str, Any] = {}
    label = "restart"
    if body.alert_id is not None:
        alert = services.store.get_alert(body.alert_id)
        if alert is None or alert.run_id != run.id:
            raise ApiError(
                422, f"alert {body.alert_id} is not an alert of run {run.id!r}", "alert_id"
            )
        patch = dict(alert.fix)
        label = f"fix {alert.rule}"
        if body.candidate is not None:
            chosen = next((c for c in alert.candidates if c["label"] == body.candidate), None)
            if chosen is None:
                known = ", ".join(c["label"] for c in alert.candidates) or "none"
                raise ApiError(
                    422, f"candidate {body.candidate!r} is not a fix of alert {alert.id} "
                    f"(its candidates: {known})", "candidate",
                )
            patch = dict(chosen["changes"])
            label = f"fix {alert.rule} ({chosen['label']})"
    base = {k: v for k, v in run.config.items() if k != "stop_after_epochs"}
    config = _validated_config(
        services.settings, run.preset, {**base, **patch, **body.overrides}
    )
    if not body.allow_repeat:
        earlier = services.store.find_run_with_config(config.model_dump())
        if earlier is not None:
            raise ApiError(
                409, f"restart of {run.id!r}: this config already ran as run {earlier.id!r} "
                f"({earlier.status.value}); open /run/{earlier.id}, or send allow_repeat to "
                "run it again",
                existing_run_id=earlier.id,
            )
    name = body.name or f"{run.name or run.id} · {label}"
    return _launch(
        services,
        preset=run.preset,
        config=config,
        name=name,
        parent_id=run.id,
        parent_alert_id=body.alert_id,
    )


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


