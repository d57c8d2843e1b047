"""API In/Out models: one schema per role. ORM rows never leave the store raw."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from backend.rules import RULES_BY_NAME
from backend.scorecard import has_reference, reference_size


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    stopped = "stopped"
    failed = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.completed, RunStatus.stopped, RunStatus.failed)


class RunKind(StrEnum):
    run = "run"  # a user's
    probe = "probe"  # the backend's short try of an alert's candidate fix
    sdk = "sdk"  # fed by the user's own process over the ingest socket; no trainer of ours


# The preset column of an sdk run on the caller's own config: no preset of ours applies.
SDK_PRESET = "sdk"

# What the runs list shows by default: the user's runs, not the backend's probes.
USER_KINDS = (RunKind.run, RunKind.sdk)


class RunCreate(BaseModel):
    """POST /api/runs body: a preset plus field overrides, validated by trainer.config; or,
    with kind sdk, the caller's own config for a run its own loop feeds."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field("uci", max_length=64, examples=["standard"])
    overrides: dict[str, Any] = Field(default_factory=dict, examples=[{"epochs": 20}])
    name: str | None = Field(None, max_length=200, examples=["baseline on raw data"])
    kind: Literal["run", "sdk"] = Field(
        "run",
        description="run: the backend starts a trainer; sdk: the caller trains and streams "
        "to WS /ws/ingest/{id} with the ingest_token of the answer (running at once)",
    )
    config: dict[str, Any] | None = Field(
        None, description="kind sdk: the caller's hyperparameters, stored as sent; keys named "
        "like the trainer's config fields (e.g. lambda_sparse, grad_clip_norm) let the red "
        "flags compute fixes in them",
    )
    epochs: int | None = Field(
        None, ge=0, le=2**31 - 1,
        description="kind sdk: the steps the caller plans to log (progress and ETA); 0 or "
        "absent when unknown",
    )

    @model_validator(mode="after")
    def _fields_of_kind(self) -> RunCreate:
        fields_set = self.model_fields_set
        if self.kind == "run":
            wrong = sorted({"config", "epochs"} & fields_set)
            if wrong:
                raise ValueError(
                    f"{', '.join(wrong)}: for kind sdk only; a run of ours takes preset and "
                    "overrides"
                )
        elif {"config", "epochs"} & fields_set and {"preset", "overrides"} & fields_set:
            raise ValueError(
                "config: an sdk run takes either its own config (and epochs) or one of ours "
                "(preset and overrides), not both"
            )
        return self

    @property
    def own_config(self) -> bool:
        """An sdk run on the caller's own config (not a preset of ours)."""
        return self.kind == "sdk" and not {"preset", "overrides"} & self.model_fields_set


class RestartRequest(BaseModel):
    """POST /api/runs/{id}/restart body: an alert's fix, explicit overrides, or both."""

    model_config = ConfigDict(extra="forbid")

    alert_id: int | None = Field(None, ge=1, le=2**31 - 1)
    candidate: str | None = Field(
        None, max_length=64, description="with alert_id: apply this candidate (by label) "
        "instead of the alert's fix"
    )
    overrides: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(None, max_length=200)
    allow_repeat: bool = Field(
        False, description="run even if a user run with the same config exists (else 409)"
    )


class RunPublic(BaseModel):
    id: str
    name: str | None
    preset: str
    kind: RunKind = RunKind.run
    config: dict[str, Any]
    status: RunStatus
    status_reason: str | None
    parent_id: str | None
    parent_alert_id: int | None
    children: list[str] = Field(default_factory=list)
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    epochs_total: int
    last_epoch: int | None
    eta_seconds: float | None
    progress: float = Field(description="last_epoch / epochs_total, 0..1")
    best_epoch: int | None = Field(
        description="the label-free best checkpoint: the latest evaluation epoch flagged "
        "is_best (lowest val_recon so far); chosen without the reference graph"
    )
    f1_at_best: float | None = Field(
        description="F1 at best_epoch; not the highest F1 seen (that is max_f1_seen)"
    )
    shd_at_best: int | None = Field(description="SHD at best_epoch")
    max_f1_seen: float | None = Field(
        None,
        description="the highest F1 of any evaluation epoch; picked by looking at the "
        "reference graph, so an upper bound, not a result a user could have selected",
    )
    max_f1_epoch: int | None = Field(None, description="the first epoch that reached max_f1_seen")
    open_alerts: int = 0
    data: dict[str, Any] | None = None
    summary: dict[str, Any] | None = Field(
        None, description="the trainer's final summary (finished/failed message), once sent"
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="whether POST /api/runs/{id}/restart can start it again: false for an "
        "sdk run on its own config, which only the caller's script can restart"
    )
    @property
    def restartable(self) -> bool:
        return not self.own_config

    @property
    def own_config(self) -> bool:
        """An SDK run on its caller's config: no plan of ours (epochs, evaluation epochs)
        applies to it, and only the caller's script can start it again."""
        return self.preset == SDK_PRESET

    @computed_field(  # type: ignore[prop-decorator]
        description="whether the run is scored against a reference graph (its records carry "
        "SHD and F1)"
    )
    @property
    def has_reference(self) -> bool:
        return has_reference(self.config, self.data)

    @computed_field(  # type: ignore[prop-decorator]
        description="the reference graph's edge count (the empty graph's SHD); null without "
        "a reference graph or while its size is unknown. Before the trainer reports its data: "
        "13 for uci, the configured synthetic_edges (an expectation) for synthetic"
    )
    @property
    def reference_size(self) -> int | None:
        return reference_size(self.config, self.data)

    # Clients written before f1_at_best existed read these; they always meant the scores at
    # the best checkpoint, which their old name let readers take for the maximum F1.
    @computed_field(  # type: ignore[prop-decorator]
        description="deprecated: the same as f1_at_best (F1 at the best checkpoint)",
        json_schema_extra={"deprecated": True},
    )
    @property
    def best_f1(self) -> float | None:
        return self.f1_at_best

    @computed_field(  # type: ignore[prop-decorator]
        description="deprecated: the same as shd_at_best (SHD at the best checkpoint)",
        json_schema_extra={"deprecated": True},
    )
    @property
    def best_shd(self) -> int | None:
        return self.shd_at_best


class RunList(BaseModel):
    runs: list[RunPublic]
    count: int


class AlertPublic(BaseModel):
    id: int
    run_id: str
    rule: str
    severity: str
    epoch: int | None
    message: str
    cause: str
    suggested_changes: dict[str, Any] = Field(
        description="the rule's first-choice patch (its best guess, before any probe)"
    )
    evidence: dict[str, Any]
    candidates: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the rule's fixes in its order of preference: label, changes, expected",
    )
    verification: dict[str, Any] | None = Field(
        None,
        description="what probe runs of the candidates showed (docs/rules.md, Probes): "
        "status pending | verified | refuted, and per probe the evidence before → after; "
        "null when no probe was run (info alerts, no fix, probes off)",
    )
    created_at: datetime

    @computed_field(  # type: ignore[prop-decorator]
        description="the patch 'Restart with this fix' applies: the best verified probe's, "
        "else the rule's first choice (then fix_verified is false)"
    )
    @property
    def fix(self) -> dict[str, Any]:
        best = (self.verification or {}).get("best")
        if best is not None:
            for probe in (self.verification or {}).get("probes", []):
                if probe.get("label") == best:
                    return dict(probe["changes"])
        return dict(self.suggested_changes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fix_verified(self) -> bool:
        return (self.verification or {}).get("best") is not None

    @computed_field(  # type: ignore[prop-decorator]
        description="the metric the rule watches and its fix aims to move (Compare opens "
        "on it); null for rules judged on no single metric"
    )
    @property
    def metric(self) -> str | None:
        rule = RULES_BY_NAME.get(self.rule)
        return rule.metric if rule is not None else None


class StatusEventPublic(BaseModel):
    run_id: str
    status: RunStatus
    reason: str | None
    at: datetime


class Preset(BaseModel):
    name: str
    config: dict[str, Any]
    description: str


class RuleInfo(BaseModel):
    """One red-flag rule of the catalogue (backend/rules.py, docs/rules.md)."""

    name: str
    severity: str
    description: str  # its trigger and first fix, in a line, with the thresholds in force
    metric: str | None  # the record field its fix should move; None: judged on other facts


class FieldInfo(BaseModel):
    name: str
    type: str
    default: Any
    allowed: str  # in words, for people
    choices: list[Any] | None = None  # the values of a field that is one of a fixed few
    description: str | None


class Health(BaseModel):
    status: str
    version: str
    database: str
    runs_active: int
    runs_queued: int
    # Runs whose rule state ingest holds in memory: live runs, and no finished one for long.
    runs_in_memory: int


class DatasetPublic(BaseModel):
    """A file a run can name in `data_file` (kind csv) or `reference_file` (kind reference)."""

    name: str  # what the config holds: `air.csv` or `upload:air.csv`
    source: Literal["data_dir", "upload"]
    kind: Literal["csv", "reference"]
    size_bytes: int
    columns: list[str] | None = None  # a CSV's header, as far as the first line tells


class Ticket(BaseModel):
    """A short-lived read-only credential for a browser page (token mode only)."""

    token: str | None = Field(
        description="pass as ?token= on GET requests and the browser websockets; null when "
        "the backend has no token (nothing to present)"
    )
    ttl_seconds: int


class RunCreated(RunPublic):
    """POST /api/runs answer: the run, and for kind sdk its ingest key (given once only)."""

    ingest_token: str | None = Field(
        None, description="kind sdk: present as `Authorization: Bearer` on WS /ws/ingest/{id}"
    )


# Strict: JSON `false` is not seed 0.
_SeedList = Annotated[
    list[Annotated[int, Field(ge=0, le=2**31 - 1, strict=True)]], Field(max_length=1000)
]
_SeedText = Annotated[str, Field(max_length=200)]


class SweepCreate(BaseModel):
    """POST /api/sweeps body: a grid over config fields × seeds on a preset (backend/sweeps.py)."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field("healthy", max_length=64)
    grid: dict[str, Annotated[list[Any], Field(max_length=1000)]] = Field(
        default_factory=dict, max_length=50, examples=[{"lambda_sparse": [0.01, 0.02, 0.05]}],
        description="config field → the values to try; every combination is a member",
    )
    seeds: _SeedList | _SeedText = Field(
        default_factory=lambda: [0], examples=["0-4"],
        description="each combination runs once per seed: a list, or e.g. '0-4' / '0,2,5'",
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict, max_length=100, examples=[{"epochs": 20}],
        description="applied to every member",
    )
    samples: int | None = Field(
        None, ge=1, le=1000, strict=True,
        description="random search: this many of the grid's combinations, drawn at random "
        "(each with every seed); absent: the whole grid",
    )


class SweepPublic(BaseModel):
    """A sweep: its members (runs named `sweep <id>: <changes>`), and the best so far."""

    id: str
    members: list[RunPublic]
    best: str | None = Field(
        None, description="the completed member with the lowest best_val_recon (label-free)"
    )
