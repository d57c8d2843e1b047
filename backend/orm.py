"""Tables: runs, their per-epoch metrics, alerts and status history (SQLAlchemy 2, typed).

The migrations in backend/migrations/versions build exactly this schema; a test compares them.
Rows never leave backend/store.py: it converts them to backend/schemas.py models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, get_args

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from trainer.protocol import EpochRecord

RUN_ID_LENGTH = 80

# Deterministic constraint names: Alembic's batch mode on SQLite can only alter named ones.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on every backend.

    SQLite has no time zones: values are stored as naive UTC and marked UTC when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQL NULL, not the JSON literal 'null', for absent payloads.
NullableJSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        float: Double(),
        dict[str, Any]: JSON(),
    }


# The record's fields that are not measurements: the key, and those typed apart below.
_NOT_MEASURED = ("run_id", "epoch", "is_best", "custom")
_SQL_TYPES: dict[type, Any] = {float: Double, int: Integer}


def _measured_columns() -> type:
    """A mixin: every measured EpochRecord field as a nullable column of its protocol type
    (an SDK run's loop logs the subset it measures)."""
    columns = {}
    for name, field in EpochRecord.model_fields.items():
        if name in _NOT_MEASURED:
            continue
        (python_type,) = [t for t in get_args(field.annotation) or (field.annotation,)
                          if t is not type(None)]
        columns[name] = mapped_column(_SQL_TYPES[python_type](), nullable=True)
    return type("MeasuredColumns", (), columns)


class RunRow:
    """A row belonging to one run, with an id of its own; deleting the run deletes it."""

    # First, as the migrations create them.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True, sort_order=-2)
    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_LENGTH), ForeignKey("runs.id", ondelete="CASCADE"), sort_order=-1
    )


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_status", "status"),
        Index("ix_runs_parent_id", "parent_id"),
        Index("ix_runs_created_at", "created_at"),
        Index("ix_runs_kind", "kind"),
    )

    id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    preset: Mapped[str] = mapped_column(String(64))
    # "run": a user's; "probe": the backend's short try of an alert's candidate fix.
    kind: Mapped[str] = mapped_column(String(16), server_default="run")
    config: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[str | None] = mapped_column(String(RUN_ID_LENGTH), ForeignKey("runs.id"))
    # runs -> alerts -> runs is a cycle: use_alter adds this key after both tables exist
    # (SQLite, which cannot ALTER constraints, accepts the forward reference inline).
    parent_alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", use_alter=True, name="fk_runs_parent_alert_id_alerts")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    pid: Mapped[int | None]
    ingest_token: Mapped[str | None] = mapped_column(String(128))
    epochs_total: Mapped[int]
    last_epoch: Mapped[int | None]
    eta_seconds: Mapped[float | None]
    # The label-free best checkpoint (lowest val_recon, the record with is_best) and the
    # graph scores there; the highest F1 of any evaluation is a different number, kept apart
    # so that neither is read as the other.
    best_epoch: Mapped[int | None]
    f1_at_best: Mapped[float | None]
    shd_at_best: Mapped[int | None]
    max_f1_seen: Mapped[float | None]
    max_f1_epoch: Mapped[int | None]
    # The trainer's `started` payload and `finished` summary, as sent.
    data: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)


class Metric(RunRow, _measured_columns(), Base):
    """One EpochRecord, one typed column per field (trainer/protocol.py), run_id as the key:
    the measured fields come from the protocol (`_measured_columns`), and a field added there
    is a column here, which the migrations test then asks a migration for.

    Every metric may be NULL: an SDK run's loop logs the subset it measures. Our trainer's
    records are complete; that is checked where they arrive (backend/ingest.py), by kind.

    The UNIQUE (run_id, epoch) constraint is backed by a unique index on exactly those
    columns in SQLite and PostgreSQL; it is the index that lookups by run and epoch use,
    so no second, identical index is declared.
    """

    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_metrics_run_id_epoch"),)

    epoch: Mapped[int]
    is_best: Mapped[bool] = mapped_column(Boolean, default=False)
    # The user's own numbers (SDK runs): {key: value}.
    custom: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(RunRow, Base):
    """A red flag; raised once per rule per run (UNIQUE (run_id, rule), race-safe)."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("run_id", "rule", name="uq_alerts_run_id_rule"),)

    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    epoch: Mapped[int | None]
    message: Mapped[str] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(Text)
    suggested_changes: Mapped[dict[str, Any]]
    evidence: Mapped[dict[str, Any]]
    # The rule's fixes in its order of preference, and what the probes of them showed.
    candidates: Mapped[list[dict[str, Any]] | None] = mapped_column(NullableJSON)
    verification: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Graph(RunRow, Base):
    """The learned edge probabilities at one evaluation epoch (d × d, P[i][j] = i → j)."""

    __tablename__ = "graphs"
    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_graphs_run_id_epoch"),)

    epoch: Mapped[int]
    probabilities: Mapped[list[list[float]]] = mapped_column(JSON())
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class StatusEvent(RunRow, Base):
    __tablename__ = "status_events"
    __table_args__ = (Index("ix_status_events_run_id", "run_id"),)

    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)
