"""Red flags: a run's config, data facts and metric stream → alerts with a cause and a fix.

Pure code over plain dicts (no I/O, no database), so the backend's ingest can call
`evaluate` after every stored record, once when the `started` message brings the data
facts, and once when the trainer reports a failure. A rule fires at most once per run:
the caller keeps the names that fired and passes them back.

Per-epoch rules judge the newest record (`history[-1]`), because `evaluate` runs on each
new one; window rules read only the tail they need, and only `f1_stalled` scans the
history (on evaluation epochs). Thresholds are the seed's checklist (DESIGN.md, Red
flags); docs/rules.md gives each rule's cause and why its fix helps.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from trainer.config import PATCHES, TrainConfig

CLIP_PCT_MAX = 50.0  # clip_high: more than half the steps clipped ...
CLIP_AFTER_EPOCH = 10  # ... after warmup and the first epochs' transients
LOGIT_STD_MIN = 0.05  # logit_collapse: logits this close together are quantized
LOGIT_AFTER_EPOCH = 15  # logits start at N(0, 0.01²); give them time to spread
RECON_SHARE_MIN = 50.0  # recon_share_low: regularizers outweigh the data term
# Rules read whole records only near the end of the history (the newest, or the last
# RECON_LOW_EPOCHS); further back only the F1 curve (f1_stalled).
FULL_HISTORY = 64
HISTORY_KEPT_FIELDS = ("epoch", "f1")
RECON_LOW_EPOCHS = 3  # consecutive epochs, so one noisy warmup epoch does not fire it
F1_STALL_EPOCHS = 20  # f1_stalled: epochs without a better F1
VARIANCE_RATIO_MAX = 10.0  # raw_variance: largest / smallest raw column variance
NEAR_DETERMINISTIC_R2 = 0.999  # the trainer lists columns with R² from the others ≥ this
ADJ_LR_SCALE_FACTOR = 10.0  # logit_collapse under sigmoid: how much faster logits should move

logger = logging.getLogger("causalwatch.rules")


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Finding:
    """One alert: what was seen (with its numbers), why it is wrong, and the config patch."""

    rule: str
    severity: Severity
    epoch: int | None  # None for the run-start data flags
    message: str
    cause: str
    suggested_changes: dict[str, Any]
    evidence: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the severity as its plain string)."""
        return {**asdict(self), "severity": str(self.severity)}


@dataclass(frozen=True)
class RunContext:
    """What the rules may look at.

    `config` is the run's validated `TrainConfig` dump; `history` its epoch records so far,
    ordered by epoch (evaluation-only fields None between evaluations); records older than
    the last `FULL_HISTORY` may be cut to their `HISTORY_KEPT_FIELDS`, all a rule reads of
    them, so a long run's memory stays bounded; `data` the
    trainer's `started` payload (None until it arrives); `failure` the trainer's reason
    when it reported a failure.
    """

    config: dict[str, Any]
    history: Sequence[dict[str, Any]] = ()
    data: dict[str, Any] | None = None
    failure: str | None = None

    @property
    def latest(self) -> dict[str, Any] | None:
        return self.history[-1] if self.history else None


@dataclass(frozen=True)
class Rule:
    name: str
    severity: Severity
    description: str
    check: Callable[[RunContext], Finding | None]


@dataclass(frozen=True)
class Signal:
    """What a detector saw; `_rule` stamps it with the rule's name and severity."""

    epoch: int | None
    message: str
    cause: str
    suggested_changes: dict[str, Any]
    evidence: dict[str, Any]


def _rule(
    name: str, severity: Severity, description: str, detect: Callable[[RunContext], Signal | None]
) -> Rule:
    # The name and severity live once, on the Rule; detectors cannot contradict them.
    def check(ctx: RunContext) -> Finding | None:
        signal = detect(ctx)
        if signal is None:
            return None
        return Finding(rule=name, severity=severity, **asdict(signal))

    return Rule(name=name, severity=severity, description=description, check=check)


# --- config patches --------------------------------------------------------------------


def _setting(config: dict[str, Any], name: str) -> Any:
    # A partial config dict should not crash the ingest: fall back to the field's default.
    return config.get(name, TrainConfig.model_fields[name].default)


def _upper_bound(name: str) -> float:
    """A numeric field's declared maximum, so fixes never step outside the allowed range."""
    for meta in TrainConfig.model_fields[name].metadata:
        le = getattr(meta, "le", None)
        if le is not None:
            return float(le)
    return math.inf


def _helpful(
    config: dict[str, Any], patch: dict[str, Any], *, raise_keys: Collection[str] = ()
) -> dict[str, Any]:
    """The part of `patch` that moves each value in the fix's direction.

    Numeric values must go down (or up, for `raise_keys`): re-applying a checklist patch
    to a run already past it (e.g. grad_clip_norm 0.3 on a run at 0.1) would undo the
    user's stronger choice. Keeping each value at its current setting or moving it towards
    the patch also keeps learning_rate_init <= learning_rate_max (both patch values obey
    it, and so did the run's).
    """
    out: dict[str, Any] = {}
    for key, value in patch.items():
        current = _setting(config, key)
        if key in raise_keys:
            helps = current is None or value > current
        else:
            helps = current is None or value < current
        if helps:
            out[key] = value
    return out


def _lower_lr_patch(config: dict[str, Any]) -> dict[str, Any]:
    return _helpful(config, PATCHES["lower_lr"])


def _rebalance_patch(config: dict[str, Any]) -> dict[str, Any]:
    patch = _helpful(config, PATCHES["rebalance_losses"], raise_keys={"lambda_recon"})
    if patch:
        return patch
    # Already at or past the checklist's weights: weigh the data term ten times more.
    current = float(_setting(config, "lambda_recon"))
    raised = min(current * 10, _upper_bound("lambda_recon"))
    return {"lambda_recon": raised} if raised > current else {}


def _spread_logits_patch(config: dict[str, Any]) -> dict[str, Any]:
    """Let the adjacency logits separate: the seed's sigmoid switch, and a logit LR that moves.

    Under topk an edge outside the mask is absent from the forward pass, so its logit
    gets only the straight-through estimate; sigmoid (A = P) gives every logit its exact
    gradient. The collapse measured on real data (docs/presets.md) came from a slow logit
    learning rate (adjacency_lr_scale=1), so a scale below the default is restored too; a
    sigmoid run whose logits still bunch up gets a 10× faster one.
    """
    current = float(_setting(config, "adjacency_lr_scale"))
    default = float(TrainConfig.model_fields["adjacency_lr_scale"].default)
    if _setting(config, "sparsify_method") == "topk":
        patch = dict(PATCHES["sigmoid_sparsify"])
        if current < default:
            patch["adjacency_lr_scale"] = default
        return patch
    raised = min(max(current * ADJ_LR_SCALE_FACTOR, default), _upper_bound("adjacency_lr_scale"))
    return {"adjacency_lr_scale": raised} if raised > current else {}


def _bigger_model_patch(config: dict[str, Any]) -> dict[str, Any]:
    patch = _helpful(config, PATCHES["bigger_model"], raise_keys=PATCHES["bigger_model"])
    if patch:
        return patch
    # Already at least that big: double each width within its allowed range.
    keys = PATCHES["bigger_model"]
    doubled = {k: int(min(2 * _setting(config, k), _upper_bound(k))) for k in keys}
    return {k: v for k, v in doubled.items() if v > _setting(config, k)}


def _describe_patch(patch: dict[str, Any]) -> str:
    if not patch:
        return "no config change left to suggest"
    return "suggested: " + ", ".join(f"{k}={v!r}" for k, v in patch.items())


def _g(value: float) -> str:
    return f"{value:.3g}"


# --- per-epoch rules -------------------------------------------------------------------


def _clip_high(ctx: RunContext) -> Signal | None:
    rec = ctx.latest
    if rec is None or rec["epoch"] <= CLIP_AFTER_EPOCH or rec["clip_pct"] <= CLIP_PCT_MAX:
        return None
    clip_norm = _setting(ctx.config, "grad_clip_norm")
    patch = _lower_lr_patch(ctx.config)
    message = (
        f"clip% is {rec['clip_pct']:.4g}% (> {CLIP_PCT_MAX:.0f}%) at epoch {rec['epoch']} "
        f"(judged after epoch {CLIP_AFTER_EPOCH}): the pre-clip gradient norm (mean "
        f"{_g(rec['grad_norm_mean'])}, max {_g(rec['grad_norm_max'])}) is above "
        f"grad_clip_norm {clip_norm:g}; {_describe_patch(patch)}"
    )
    if not patch:
        message += (
            " (lower_lr is already applied: standardize the data or lower lambda_recon "
            "to shrink the gradient itself)"
        )
    return Signal(
        epoch=rec["epoch"],
        message=message,
        cause="Most optimizer steps are clipped, so the clip threshold, not the loss, sets "
        "the step size.",
        suggested_changes=patch,
        evidence={
            "clip_pct": rec["clip_pct"],
            "threshold": CLIP_PCT_MAX,
            "after_epoch": CLIP_AFTER_EPOCH,
            "grad_norm_mean": rec["grad_norm_mean"],
            "grad_norm_max": rec["grad_norm_max"],
            "grad_clip_norm": clip_norm,
        },
    )


def _logit_collapse(ctx: RunContext) -> Signal | None:
    rec = ctx.latest
    if rec is None or rec["epoch"] <= LOGIT_AFTER_EPOCH or rec["logit_std"] >= LOGIT_STD_MIN:
        return None
    method = _setting(ctx.config, "sparsify_method")
    patch = _spread_logits_patch(ctx.config)
    if method == "topk":
        why = "under topk, edges outside the mask get only straight-through gradients"
    else:
        why = "sparsify_method is already sigmoid, so the logits move too slowly"
    return Signal(
        epoch=rec["epoch"],
        message=(
            f"logit std is {rec['logit_std']:.4g} (< {LOGIT_STD_MIN}) at epoch {rec['epoch']} "
            f"(judged after epoch {LOGIT_AFTER_EPOCH}), logit mean {_g(rec['logit_mean'])}: "
            f"the edge logits are nearly equal; {why}; {_describe_patch(patch)}"
        ),
        cause="The adjacency logits have collapsed to almost one value (quantization): edge "
        "probabilities no longer tell edges apart.",
        suggested_changes=patch,
        evidence={
            "logit_std": rec["logit_std"],
            "logit_mean": rec["logit_mean"],
            "threshold": LOGIT_STD_MIN,
            "after_epoch": LOGIT_AFTER_EPOCH,
            "sparsify_method": method,
        },
    )


def _recon_share_low(ctx: RunContext) -> Signal | None:
    tail = ctx.history[-RECON_LOW_EPOCHS:]
    if len(tail) < RECON_LOW_EPOCHS:
        return None
    for rec in tail:
        # All shares are 0 when every loss term is 0: nothing dominates anything then.
        total = rec["share_recon"] + rec["share_sparse"] + rec["share_acyclic"] + rec["share_disen"]
        if total <= 0 or rec["share_recon"] >= RECON_SHARE_MIN:
            return None
    rec = tail[-1]
    regs = {k: rec[f"share_{k}"] for k in ("sparse", "acyclic", "disen")}
    top = max(regs, key=regs.__getitem__)
    shares = ", ".join(f"{r['share_recon']:.4g}%" for r in tail)
    patch = _rebalance_patch(ctx.config)
    return Signal(
        epoch=rec["epoch"],
        message=(
            f"recon share has been below {RECON_SHARE_MIN:.0f}% for {RECON_LOW_EPOCHS} "
            f"consecutive epochs ({shares} at epochs {tail[0]['epoch']}–{rec['epoch']}); "
            f"the largest regularizer is {top} at {regs[top]:.1f}%; {_describe_patch(patch)}"
        ),
        cause="The regularizers outweigh the reconstruction term, so the graph is shaped by "
        "the penalties rather than the data.",
        suggested_changes=patch,
        evidence={
            "share_recon": [r["share_recon"] for r in tail],
            "epochs": [r["epoch"] for r in tail],
            "threshold": RECON_SHARE_MIN,
            "consecutive_epochs": RECON_LOW_EPOCHS,
            **{f"share_{k}": v for k, v in regs.items()},
        },
    )


def _threshold_tuning_broken(ctx: RunContext) -> Signal | None:
    rec = ctx.latest
    if rec is None or rec["edges_tuned"] != 0 or rec["edges_topk"] <= 0:
        return None
    patch = _spread_logits_patch(ctx.config)
    return Signal(
        epoch=rec["epoch"],
        message=(
            f"edges_tuned is 0 while edges_topk is {rec['edges_topk']} (> 0) at epoch "
            f"{rec['epoch']} (threshold_tuned {_g(rec['threshold_tuned'])}, logit std "
            f"{_g(rec['logit_std'])}): the largest edge probabilities are tied, so every "
            f"threshold below them makes a cycle; {_describe_patch(patch)}"
        ),
        cause="Threshold tuning finds no acyclic non-empty graph because the top edge "
        "probabilities are tied (collapsed logits).",
        suggested_changes=patch,
        evidence={
            "edges_tuned": rec["edges_tuned"],
            "edges_topk": rec["edges_topk"],
            "threshold_tuned": rec["threshold_tuned"],
            "logit_std": rec["logit_std"],
        },
    )


def _f1_stalled(ctx: RunContext) -> Signal | None:
    rec = ctx.latest
    if rec is None or rec.get("f1") is None:
        return None
    cutoff = rec["epoch"] - F1_STALL_EPOCHS
    evals = [(r["epoch"], r["f1"]) for r in ctx.history if r.get("f1") is not None]
    before = [p for p in evals if p[0] <= cutoff]
    after = [p for p in evals if p[0] > cutoff]
    if not before:
        return None  # not yet 20 epochs of evaluations to judge
    if max(f1 for _, f1 in evals) >= 1.0:
        return None  # the reference is recovered exactly: nothing left to improve
    # max() keeps the first of equal values: the epoch the highest F1 was first reached.
    best_epoch, best = max(before, key=lambda p: p[1])
    after_epoch, best_after = max(after, key=lambda p: p[1])
    if best_after > best:
        return None
    patch = _bigger_model_patch(ctx.config)
    return Signal(
        epoch=rec["epoch"],
        message=(
            f"F1 has not improved for {F1_STALL_EPOCHS} epochs at epoch {rec['epoch']}: the "
            f"highest F1 up to epoch {cutoff} is {best:.3f} (epoch {best_epoch}) and the "
            f"highest since is {best_after:.3f} (epoch {after_epoch}, not above {best:.3f}); "
            f"{_describe_patch(patch)}"
        ),
        cause="Graph recovery has stalled: the model may lack the capacity to explain the "
        "data with a sparser, better graph.",
        suggested_changes=patch,
        evidence={
            # The highest F1 seen, not the F1 at the best checkpoint (docs/metrics.md).
            "max_f1": best,
            "max_f1_epoch": best_epoch,
            "max_f1_since": best_after,
            "max_f1_since_epoch": after_epoch,
            "window_epochs": F1_STALL_EPOCHS,
        },
    )


def _non_finite(ctx: RunContext) -> Signal | None:
    if ctx.failure is None or "non-finite" not in ctx.failure.lower():
        return None
    found = re.search(r"\bepoch (\d+)", ctx.failure)
    latest = ctx.latest
    epoch = int(found.group(1)) if found else (latest["epoch"] if latest else None)
    acyclicity = _setting(ctx.config, "acyclicity")
    patch = _lower_lr_patch(ctx.config)
    extra = ""
    if acyclicity == "dagma":
        # DAGMA's log-det is +inf outside its M-matrix domain (docs/model.md); NOTEARS' h
        # is finite everywhere.
        patch["acyclicity"] = "notears"
        extra = " and acyclicity dagma is undefined outside its M-matrix domain"
    return Signal(
        epoch=epoch,
        message=(
            f"the trainer stopped the run: {ctx.failure} (every loss term and gradient norm "
            f"must be finite){extra}; {_describe_patch(patch)}"
        ),
        cause="A loss term or gradient became infinite or NaN, so training cannot continue.",
        suggested_changes=patch,
        evidence={"reason": ctx.failure, "epoch": epoch, "acyclicity": acyclicity},
    )


def _reference_size(ctx: RunContext) -> int | None:
    edges = (ctx.data or {}).get("reference_edges")
    return len(edges) if isinstance(edges, list) else None


def _empty_graph_collapse(ctx: RunContext) -> Signal | None:
    rec = ctx.latest
    ref = _reference_size(ctx)
    if rec is None or ref is None or rec.get("shd") is None:
        return None
    if rec["edges_tuned"] != 0 or rec["shd"] != ref:
        return None
    # Regularizers in charge push every edge out; otherwise the logits tied (see docs).
    if rec["share_recon"] < RECON_SHARE_MIN:
        patch, why = _rebalance_patch(ctx.config), "the regularizers dominate the loss"
    else:
        patch, why = _spread_logits_patch(ctx.config), "the edge logits are tied"
    kind = (ctx.data or {}).get("reference_kind", "reference")
    return Signal(
        epoch=rec["epoch"],
        message=(
            f"edges_tuned is 0 and SHD is {rec['shd']}, equal to the {ref} edges of the "
            f"{kind}, at epoch {rec['epoch']}: the learned graph is empty (recon share "
            f"{rec['share_recon']:.1f}%, logit std {_g(rec['logit_std'])}; {why}); "
            f"{_describe_patch(patch)}"
        ),
        cause="The model has collapsed to the empty graph: it scores exactly what predicting "
        "no edge at all would.",
        suggested_changes=patch,
        evidence={
            "edges_tuned": rec["edges_tuned"],
            "shd": rec["shd"],
            "reference_edges": ref,
            "share_recon": rec["share_recon"],
            "logit_std": rec["logit_std"],
        },
    )


# --- run-start data flags ---------------------------------------------------------------


def _stats(ctx: RunContext) -> dict[str, Any]:
    return (ctx.data or {}).get("stats") or {}


def _raw_variance(ctx: RunContext) -> Signal | None:
    if ctx.data is None or ctx.data.get("standardized"):
        return None
    ratio = _stats(ctx).get("variance_ratio")
    if ratio is None or ratio <= VARIANCE_RATIO_MAX:
        return None
    variances: dict[str, float] = _stats(ctx).get("raw_variances") or {}
    span = ""
    if variances:
        lo = min(variances, key=variances.__getitem__)
        hi = max(variances, key=variances.__getitem__)
        span = f" (from {lo} {_g(variances[lo])} to {hi} {_g(variances[hi])})"
    return Signal(
        epoch=None,
        message=(
            f"raw column variances differ by a factor of {_g(ratio)}{span}, above "
            f"{VARIANCE_RATIO_MAX:g}, and the data is not standardized: the largest columns "
            "will dominate the loss and the gradients; suggested: standardize=True"
        ),
        cause="Unstandardized columns on very different scales make the largest-variance "
        "columns dominate the loss and explode the gradients.",
        suggested_changes={"standardize": True},
        evidence={"variance_ratio": ratio, "threshold": VARIANCE_RATIO_MAX, "standardized": False},
    )


def _near_deterministic(ctx: RunContext) -> Signal | None:
    items = _stats(ctx).get("near_deterministic") or []
    if not items:
        return None
    named = ", ".join(f"{i['column']} (R² {i['r2']:.5f})" for i in items)
    return Signal(
        epoch=None,
        message=(
            f"{len(items)} column(s) are near-deterministic functions of the others "
            f"(R² ≥ {NEAR_DETERMINISTIC_R2}): {named}. Consider dropping or merging them; "
            "no config field can drop a column yet, so no change is suggested"
        ),
        cause="A column the others almost exactly determine drives its reconstruction loss "
        "and noise variance to about 0, which distorts the loss and the learned edges.",
        suggested_changes={},
        evidence={
            "columns": [{"column": i["column"], "r2": i["r2"]} for i in items],
            "threshold": NEAR_DETERMINISTIC_R2,
        },
    )


# --- the catalogue ----------------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    _rule(
        "raw_variance",
        Severity.WARNING,
        f"raw variance ratio > {VARIANCE_RATIO_MAX:g} with standardize off → standardize",
        _raw_variance,
    ),
    _rule(
        "near_deterministic",
        Severity.INFO,
        f"a column with R² ≥ {NEAR_DETERMINISTIC_R2} from the others → drop or merge it",
        _near_deterministic,
    ),
    _rule(
        "non_finite",
        Severity.CRITICAL,
        "the trainer stopped on a non-finite loss or gradient → lower LR (and NOTEARS)",
        _non_finite,
    ),
    _rule(
        "clip_high",
        Severity.WARNING,
        f"clip% > {CLIP_PCT_MAX:.0f} after epoch {CLIP_AFTER_EPOCH} → lower the LR",
        _clip_high,
    ),
    _rule(
        "logit_collapse",
        Severity.WARNING,
        f"logit std < {LOGIT_STD_MIN} after epoch {LOGIT_AFTER_EPOCH} → sigmoid sparsify",
        _logit_collapse,
    ),
    _rule(
        "recon_share_low",
        Severity.WARNING,
        f"recon share < {RECON_SHARE_MIN:.0f}% for {RECON_LOW_EPOCHS} epochs → rebalance",
        _recon_share_low,
    ),
    _rule(
        "threshold_tuning_broken",
        Severity.WARNING,
        "edges_tuned = 0 while edges_topk > 0 → let the logits separate",
        _threshold_tuning_broken,
    ),
    _rule(
        "empty_graph_collapse",
        Severity.CRITICAL,
        "edges_tuned = 0 and SHD = reference size → rebalance or let the logits separate",
        _empty_graph_collapse,
    ),
    _rule(
        "f1_stalled",
        Severity.INFO,
        f"highest F1 not improved for {F1_STALL_EPOCHS} epochs → bigger model",
        _f1_stalled,
    ),
)

RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)


def evaluate(ctx: RunContext, already_fired: Collection[str]) -> list[Finding]:
    """The findings of every rule that has not fired for this run yet, in `RULES` order.

    `already_fired` is not modified: the caller records each returned `finding.rule`.
    """
    findings: list[Finding] = []
    for rule in RULES:
        if rule.name in already_fired:
            continue
        try:
            finding = rule.check(ctx)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError):
            # Data a rule cannot read (e.g. malformed run-start stats) silences that rule;
            # it must never stop the run's ingest.
            logger.warning("rule %s could not read the run's data", rule.name, exc_info=True)
            continue
        if finding is not None:
            findings.append(finding)
    return findings
