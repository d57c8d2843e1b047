"""The trainer's wire format: versioned JSON messages over `WS /ws/ingest/{run_id}`.

Every message is one JSON object ``{"v": 1, "type": ..., "run_id": ..., "seq": n, ...}``.
``seq`` counts the run's messages from 0, so a resent message is recognisable;
the receiver answers ``{"type": "ack", "seq": n}`` once the message is stored, and
``{"type": "error", "seq": n, "detail": ...}`` when it refuses one.

Message types:
- ``started``  ``{"config": {...}, "data": StartedData}`` once, first;
- ``epoch``    ``{"record": EpochRecord}`` once per epoch;
- ``graph``    ``{"epoch": n, "probabilities": [[...]]}`` edge probabilities P (d × d,
  P[i][j] = edge i → j) on evaluation epochs, for the adjacency heatmap;
- ``finished`` ``{"summary": {...}}`` the run ended normally (completed or early-stopped);
- ``failed``   ``{"reason": "..."}`` the run stopped on an error (e.g. non-finite loss).

Beside the messages, the run folder a trainer writes (`RUN_FILES`, trainer/runlog.py) is
part of the contract: a backend that was away reads a run's records and its outcome there.

No torch here: the backend imports this module to validate what it receives.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictBool, create_model, field_validator
from pydantic.fields import FieldInfo

PROTOCOL_VERSION = 1
# `reference_kind` of a run with no reference graph (a CSV given without one): its records'
# shd, f1, precision, recall and f1_skeleton are null, and `reference_edges` is null.
NO_REFERENCE_KIND = "none"
# The edge count of the UCI reference graph (trainer/data/reference.py): what a uci run is
# scored against before its `started` message reports the edges themselves.
UCI_REFERENCE_SIZE = 13
# Counts and epochs fit a 32-bit SQL INTEGER (SQLite, PostgreSQL): larger is corruption.
MAX_INT = 2**31 - 1
# The four weighted terms of the objective, in the order records and charts list them.
LOSS_TERMS = ("recon", "sparse", "acyclic", "disen")
MessageType = Literal["started", "epoch", "graph", "finished", "failed"]
MESSAGE_TYPES: tuple[str, ...] = get_args(MessageType)
# A run's id names its folder and travels in URLs: a safe file name, 80 characters at most.
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"
RUN_ID_RULE = "letters, digits, '.', '_' or '-' (at most 80, starting with a letter or digit)"
# The files a trainer writes in its run folder (<runs dir>/<run id>/).
METRICS_FILE = "metrics.jsonl"  # one EpochRecord per line
LOG_FILE = "train.log"  # the human-readable log, one line per epoch
OUTCOME_FILE = "outcome.json"  # an Outcome, written once, when the run has ended
# A record's `custom` holds a training loop's own numbers (the SDK's keys that are not
# EpochRecord fields): bounded, so a loop logging a dict per parameter cannot flood a row.
CUSTOM_KEY_PATTERN = r"^[A-Za-z0-9_./-]{1,64}$"
MAX_CUSTOM_KEYS = 100
_CUSTOM_KEY = re.compile(CUSTOM_KEY_PATTERN)


# Marks the fields measured on evaluation epochs only (null on the others): EVAL_FIELDS.
_EVAL: dict[str, Any] = {"eval_only": True}


class EpochRecord(BaseModel):
    """One epoch's health metrics; docs/metrics.md defines each field."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    epoch: int = Field(ge=1, le=MAX_INT)
    step: int = Field(ge=0, le=MAX_INT)
    time: float
    lr: float
    loss_total: float
    loss_recon: float
    loss_sparse: float
    loss_acyclic: float
    loss_disen: float
    share_recon: float = Field(ge=0, le=100)
    share_sparse: float = Field(ge=0, le=100)
    share_acyclic: float = Field(ge=0, le=100)
    share_disen: float = Field(ge=0, le=100)
    clip_pct: float = Field(ge=0, le=100)
    grad_norm_mean: float
    grad_norm_max: float
    # Optional like the cause-naming fields below: records from before it lack it.
    grad_norm_p90: float | None = Field(None, ge=0)
    logit_mean: float
    logit_std: float
    edges_at_05: int = Field(ge=0, le=MAX_INT)
    threshold_tuned: float
    edges_tuned: int = Field(ge=0, le=MAX_INT)
    edges_topk: int = Field(ge=0, le=MAX_INT)
    shd: int | None = Field(None, ge=0, le=MAX_INT, json_schema_extra=_EVAL)
    f1: float | None = Field(None, json_schema_extra=_EVAL)
    precision: float | None = Field(None, json_schema_extra=_EVAL)
    recall: float | None = Field(None, json_schema_extra=_EVAL)
    f1_skeleton: float | None = Field(None, json_schema_extra=_EVAL)
    val_recon: float | None = Field(None, json_schema_extra=_EVAL)
    is_best: bool = False
    epoch_seconds: float = Field(ge=0)
    eta_seconds: float = Field(ge=0)
    # Cause-naming health (docs/metrics.md); optional so records that lack them still load.
    grad_norm_recon: float | None = Field(None, ge=0)
    grad_norm_sparse: float | None = Field(None, ge=0)
    grad_norm_acyclic: float | None = Field(None, ge=0)
    grad_norm_disen: float | None = Field(None, ge=0)
    update_ratio: float | None = Field(None, ge=0)
    # The user's own metrics (SDK runs); our trainer sends none.
    custom: dict[str, float] | None = None

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        # A stored record is plotted and compared: non-finite numbers end the run instead.
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("custom", mode="after")
    @classmethod
    def _custom_keys(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if len(value) > MAX_CUSTOM_KEYS:
            raise ValueError(f"at most {MAX_CUSTOM_KEYS} keys, got {len(value)}")
        for key, number in value.items():
            if not _CUSTOM_KEY.match(key):
                raise ValueError(
                    f"key {key!r}: 1–64 characters of letters, digits, '_', '.', '/', '-'"
                )
            if not math.isfinite(number):
                raise ValueError(f"key {key!r}: must be a finite number")
        return value


# Every record field, in the order records and CSV downloads list them.
RECORD_FIELDS: tuple[str, ...] = tuple(EpochRecord.model_fields)
# Measured on evaluation epochs only (config `eval_every`, and the last epoch).
EVAL_FIELDS: tuple[str, ...] = tuple(
    name for name, field in EpochRecord.model_fields.items()
    if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("eval_only")
)


def _optional(field: FieldInfo) -> Any:
    """The field's type made nullable, with its bounds (ge, le) kept."""
    nullable = field.annotation | None
    return Annotated[nullable, *field.metadata] if field.metadata else nullable


# Where an SDK run's records are read: the user's loop measures what it can, so every field
# but the key is optional. The same fields and bounds as EpochRecord, derived, not copied.
PartialEpochRecord: type[EpochRecord] = create_model(  # type: ignore[call-overload]
    "PartialEpochRecord",
    __base__=EpochRecord,
    **{
        name: (_optional(field), None)
        for name, field in EpochRecord.model_fields.items()
        if field.is_required() and name not in ("run_id", "epoch")
    },
)


class GraphSnapshot(BaseModel):
    """The learned edge probabilities at one evaluation epoch."""

    model_config = ConfigDict(extra="forbid")

    epoch: int = Field(ge=1, le=MAX_INT)
    probabilities: list[list[float]]

    @field_validator("probabilities", mode="after")
    @classmethod
    def _square_unit(cls, rows: list[list[float]]) -> list[list[float]]:
        d = len(rows)
        if d == 0 or d > 500 or any(len(row) != d for row in rows):
            raise ValueError("must be a non-empty square matrix (at most 500 × 500)")
        if any(not (0.0 <= p <= 1.0) for row in rows for p in row):
            raise ValueError("every probability must be in [0, 1]")
        return rows


# Finite numbers only: the rules compare them and the API serves them as JSON.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class ColumnFit(BaseModel):
    """A column and the R² with which the other columns predict it."""

    model_config = ConfigDict(extra="allow")

    column: str
    r2: FiniteFloat


# The data checks made at run start on what DataStats holds: the trainer warns, the backend
# raises the data red flags (backend/rules.py), with these bounds.
VARIANCE_RATIO_MAX = 10.0  # largest / smallest raw column variance, with standardize off
NEAR_DETERMINISTIC_R2 = 0.999  # R² of a column from the others at or above this


class DataStats(BaseModel):
    """What the trainer measured on the raw data; the data red-flag rules read these.

    Further descriptive statistics (source, row counts, means) pass through unchecked.
    """

    model_config = ConfigDict(extra="allow")

    raw_variances: dict[str, FiniteFloat] | None = None
    variance_ratio: FiniteFloat | None = Field(None, ge=0)
    near_deterministic: list[ColumnFit] | None = None


class StartedData(BaseModel):
    """The `started` message's `data`: the dataset a run trains on, as the backend reads it.

    Every field is optional (a trainer may know less), but a field that is present has its
    type: the rules and the adjacency view read them without further checks.
    """

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    variables: list[str] | None = Field(None, min_length=1, max_length=500)
    reference_kind: str | None = None
    reference_edges: list[tuple[str, str]] | None = None
    standardized: StrictBool = False
    stats: DataStats | None = None


class Outcome(BaseModel):
    """How a run ended, as the trainer writes it to OUTCOME_FILE: what a backend that was
    away (or missed the `finished` / `failed` message) reads instead of the log's prose."""

    model_config = ConfigDict(extra="allow")

    status: Literal["completed", "early_stopped", "stopped", "failed"]
    reason: str


def new_run_id(preset: str) -> str:
    """A fresh run id, `<local start time>-<preset>-<6 hex digits>`: ids sort by start and
    say what the run began as."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{preset}-{secrets.token_hex(3)}"


def make_message(msg_type: MessageType, run_id: str, seq: int, **payload: Any) -> dict[str, Any]:
    """A protocol message as a JSON-ready dict."""
    return {"v": PROTOCOL_VERSION, "type": msg_type, "run_id": run_id, "seq": seq, **payload}
