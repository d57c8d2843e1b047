"""The success-criteria scorecard of a run: Minimum / Good / Excellent, epoch-conditioned.

Pure code over the run's records. The thresholds (backend/thresholds.py) follow DESIGN.md's
guide lines; docs/rules.md justifies the epochs and what "met" means.

A criterion is judged on the newest record at or after its `by_epoch` that carries its
metric (evaluation epochs for F1 and SHD), so a live scorecard shows where the run is
now and a finished run's scorecard shows where it ended.

A run on a CSV without a reference graph has no F1 or SHD at all: those criteria are "n/a"
(never pending, never missed) and a level is judged on the criteria that apply.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from backend.thresholds import LEVEL_EPOCH, LEVEL_TARGETS, LEVELS
from trainer.config import TrainConfig
from trainer.protocol import NO_REFERENCE_KIND, UCI_REFERENCE_SIZE

Status = Literal["met", "missed", "pending", "n/a"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
}
_WORDS = {"<=": "at most", ">=": "at least", "<": "below"}
# The criteria scored against the reference graph: not applicable without one.
REFERENCE_METRICS = frozenset({"f1", "shd"})
# The record fields a criterion reads: its metric, and edges_tuned beside SHD.
SCORED_METRICS: tuple[str, ...] = tuple(LEVEL_TARGETS)
READ_FIELDS: tuple[str, ...] = ("epoch", *SCORED_METRICS, "edges_tuned")
# The newest record carrying each scored metric: all a scorecard needs of a run's history.
Latest = Mapping[str, Mapping[str, Any]]


def has_reference(config: Mapping[str, Any], data: Mapping[str, Any] | None) -> bool:
    """Whether the run is scored against a reference graph (its records carry SHD and F1):
    as its trainer reported, or before the report, as its config says (a CSV run without a
    reference_file has none)."""
    if data and data.get("reference_kind") is not None:
        return data["reference_kind"] != NO_REFERENCE_KIND
    return not (config.get("dataset") == "csv" and not config.get("reference_file"))


def reference_size(config: Mapping[str, Any], data: Mapping[str, Any] | None) -> int | None:
    """The reference graph's edge count; None without a reference graph, or while its size
    is unknown (a CSV's own reference before the trainer reads it).

    The trainer's `started` data gives the edges. Before it, a uci run has the UCI reference
    and a synthetic one the edge count its config asks the generator for (an expectation:
    the ER graph drawn may differ by a few edges).
    """
    if not has_reference(config, data):
        return None
    edges = (data or {}).get("reference_edges")
    if isinstance(edges, list):
        return len(edges)
    dataset = config.get("dataset")
    if dataset == "synthetic":
        default = TrainConfig.model_fields["synthetic_edges"].default
        return int(config.get("synthetic_edges", default))
    return UCI_REFERENCE_SIZE if dataset == "uci" else None


@dataclass(frozen=True)
class Criterion:
    level: str
    name: str  # the EpochRecord field it reads
    op: str  # a key of _OPS
    threshold: float | None  # None: the run's reference size (the SHD criteria)
    by_epoch: int

    def describe(self, threshold: float) -> str:
        text = f"{self.name} {_WORDS[self.op]} {threshold:g} from epoch {self.by_epoch}"
        if self.name == "shd":
            # The empty graph already scores SHD = reference size (DESIGN.md).
            text += " (the reference size), with a non-empty tuned graph (edges_tuned > 0)"
        if self.name in REFERENCE_METRICS:
            text += ", at the latest evaluation"
        return text


# Minimum: red-flag-free and better than chance by epoch 20; Good by 30; Excellent by 50
# (backend/thresholds.py holds the numbers).
CRITERIA: tuple[Criterion, ...] = tuple(
    Criterion(level, metric, op, by_level[level], LEVEL_EPOCH[level])
    for level in LEVELS
    for metric, (op, by_level) in LEVEL_TARGETS.items()
    if level in by_level
)


def metrics_to_read(reference_edges: int | None) -> tuple[str, ...]:
    """The metrics whose newest record a scorecard judges: without a reference graph, F1 and
    SHD are n/a (and a search for a record carrying them would read the whole run)."""
    return tuple(
        m for m in SCORED_METRICS if reference_edges is not None or m not in REFERENCE_METRICS
    )


def latest_records(history: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Per scored metric, the newest record of `history` (ordered by epoch) that has it."""
    latest: dict[str, Mapping[str, Any]] = {}
    for rec in reversed(history):
        for metric in SCORED_METRICS:
            if metric not in latest and rec.get(metric) is not None:
                latest[metric] = rec
        if len(latest) == len(SCORED_METRICS):
            break
    return latest


def _judged_record(latest: Latest, c: Criterion) -> Mapping[str, Any] | None:
    """The newest record that has the criterion's metric, if it is at or after `by_epoch`."""
    rec = latest.get(c.name)
    return rec if rec is not None and rec["epoch"] >= c.by_epoch else None


def _not_applicable(c: Criterion) -> dict[str, Any]:
    return {
        "level": c.level,
        "name": c.name,
        "description": f"no reference graph: {c.name} not computed",
        "status": "n/a",
        "observed": None,
        "threshold": c.threshold,
        "by_epoch": c.by_epoch,
    }


def _judge(
    c: Criterion,
    latest: Latest,
    reference_edges: int | None,
    finished: bool,
    planned_epochs: int | None,
) -> dict[str, Any]:
    if reference_edges is None and c.name in REFERENCE_METRICS:
        return _not_applicable(c)
    if c.threshold is not None:
        threshold = c.threshold
    else:
        assert reference_edges is not None  # only the SHD criteria lack a threshold
        threshold = float(reference_edges)
    rec = _judged_record(latest, c)
    observed: Any = None
    if rec is None:
        # A run planned shorter than by_epoch can never decide it: missed, not pending.
        never = planned_epochs is not None and planned_epochs < c.by_epoch
        status: Status = "missed" if finished or never else "pending"
    else:
        observed = rec[c.name]
        ok = _OPS[c.op](observed, threshold)
        if c.name == "shd":
            ok = ok and rec["edges_tuned"] > 0
        status = "met" if ok else "missed"
    return {
        "level": c.level,
        "name": c.name,
        "description": c.describe(threshold),
        "status": status,
        "observed": observed,
        "threshold": threshold,
        "by_epoch": c.by_epoch,
    }


def _achieved(criteria: list[dict[str, Any]]) -> bool | None:
    statuses = {c["status"] for c in criteria} - {"n/a"}
    if "missed" in statuses:
        return False
    if "pending" in statuses:
        return None
    return True


def evaluate_scorecard(
    config: dict[str, Any],
    history: Sequence[dict[str, Any]],
    reference_edges: int | None,
    finished: bool,
) -> dict[str, Any]:
    """Every criterion's status for this run, grouped by level.

    `history` is ordered by epoch; `reference_edges` is the reference graph's edge count,
    None when the run has no reference graph (its F1 and SHD criteria are then "n/a").
    `finished` is true once the run is completed, stopped or failed, which turns criteria
    still waiting for their epoch into "missed". A level is achieved (True) when all its
    applicable criteria are met, False when one is missed, None while some are pending.
    While the run is live a met criterion can become missed (and back): it is judged on
    the newest record.
    """
    return score(config, latest_records(history), reference_edges, finished)


def score(
    config: Mapping[str, Any],
    latest: Latest,
    reference_edges: int | None,
    finished: bool,
) -> dict[str, Any]:
    """`evaluate_scorecard` from the newest record carrying each metric (`latest`, keyed by
    metric; the store reads exactly these rows), not from the whole history."""
    planned_epochs = _planned_epochs(config)
    levels = []
    for level in LEVELS:
        criteria = [
            _judge(c, latest, reference_edges, finished, planned_epochs)
            for c in CRITERIA
            if c.level == level
        ]
        levels.append({"level": level, "achieved": _achieved(criteria), "criteria": criteria})
    return {"levels": levels}


def _planned_epochs(config: Mapping[str, Any]) -> int | None:
    """The epochs the run trains (TrainConfig.epochs_to_run: `epochs`, or fewer with
    `stop_after_epochs`); None for a config the trainer would not take."""
    try:
        return TrainConfig.model_validate(dict(config)).epochs_to_run
    except ValidationError:
        return None
