"""API In/Out models: one schema per role. ORM rows never leave the store raw."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    stopped = "stopped"
    failed = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.completed, RunStatus.stopped, RunStatus.failed)


class RunCreate(BaseModel):
    """POST /api/runs body: a preset plus field overrides, validated by trainer.config."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field("uci", max_length=64, examples=["standard"])
    overrides: dict[str, Any] = Field(default_factory=dict, examples=[{"epochs": 20}])
    name: str | None = Field(None, max_length=200, examples=["baseline on raw data"])


class RestartRequest(BaseModel):
    """POST /api/runs/{id}/restart body: an alert's fix, explicit overrides, or both."""

    model_config = ConfigDict(extra="forbid")

    alert_id: int | None = Field(None, ge=1, le=2**31 - 1)
    overrides: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(None, max_length=200)


class RunPublic(BaseModel):
    id: str
    name: str | None
    preset: str
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
    best_epoch: int | None
    best_f1: float | None
    best_shd: int | None
    open_alerts: int = 0
    data: dict[str, Any] | None = None
    summary: dict[str, Any] | None = Field(
        None, description="the trainer's final summary (finished/failed message), once sent"
    )


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
    suggested_changes: dict[str, Any]
    evidence: dict[str, Any]
    created_at: datetime


class StatusEventPublic(BaseModel):
    run_id: str
    status: RunStatus
    reason: str | None
    at: datetime


class Preset(BaseModel):
    name: str
    config: dict[str, Any]
    description: str


class FieldInfo(BaseModel):
    name: str
    type: str
    default: Any
    allowed: str
    description: str | None


class Health(BaseModel):
    status: str
    version: str
    database: str
    runs_active: int
    runs_queued: int
    # Runs whose rule state ingest holds in memory: live runs, and no finished one for long.
    runs_in_memory: int
