"""Red flags: a run's config, data facts and metric stream → alerts with a cause and a fix.

Pure code over plain dicts (no I/O, no database), so the backend's ingest can call
`evaluate` after every stored record, once when the `started` message brings the data
facts, and once when the trainer reports a failure. A rule fires at most once per run:
the caller keeps the names that fired and passes them back.

Per-epoch rules judge the newest record (`history[-1]`), because `evaluate` runs on each
new one; window rules read only the tail they need, and only `f1_stalled` scans the
history (on evaluation epochs). Thresholds live in backend/thresholds.py; docs/rules.md
gives each rule's diagnosis and how its fixes are computed.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from backend.scorecard import reference_size
from backend.thresholds import (
    ADJ_LR_SCALE_FACTOR,
    CLIP_AFTER_EPOCH,
    CLIP_NORM_TARGET,
    CLIP_PCT_MAX,
    EXPECTED_SHARES,
    F1_STALL_EPOCHS,
    LOGIT_AFTER_EPOCH,
    LOGIT_STD_MIN,
    NEAR_DETERMINISTIC_R2,
    RECON_LOW_EPOCHS,
    RECON_SHARE_MIN,
    REGULARIZERS_SILENT_EPOCHS,
    REGULARIZERS_SILENT_PCT,
    SPIKE_RATIO,
    UPDATE_RATIO_MAX,
    VARIANCE_RATIO_MAX,
)
from trainer.config import PATCHES, TrainConfig
from trainer.protocol import LOSS_TERMS

# Rules read whole records only near the end of the history (the newest, or the last
# few); further back only the F1 curve (f1_stalled).
FULL_HISTORY = 64
HISTORY_KEPT_FIELDS = ("epoch", "f1")

logger = logging.getLogger("causalwatch.rules")


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Candidate:
    """One fix a rule proposes: a config patch, and what it should do, in numbers."""

    label: str  # short and stable, e.g. "rescale_losses"
    changes: dict[str, Any]
    expected: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    """One alert: what was seen (with its numbers), why it is wrong, and the fixes.

    `candidates` are the rule's fixes in its order of preference (those with an empty
    patch left out); `suggested_changes` is the first one's patch, `{}` when there is none.
    """

    rule: str
    severity: Severity
    epoch: int | None  # None for the run-start data flags
    message: str
    cause: str
    candidates: tuple[Candidate, ...]
    evidence: dict[str, Any]

    @property
    def suggested_changes(self) -> dict[str, Any]:
        return dict(self.candidates[0].changes) if self.candidates else {}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the severity as its plain string)."""
        return {
            "rule": self.rule,
            "severity": str(self.severity),
            "epoch": self.epoch,
            "message": self.message,
            "cause": self.cause,
            "suggested_changes": self.suggested_changes,
            "candidates": [c.as_dict() for c in self.candidates],
            "evidence": self.evidence,
        }


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
    # The record field a fix should move (a probe reports it before → after); None for
    # rules judged on something else (the data facts, a failure, the F1 history).
    metric: str | None
    check: Callable[[RunContext], Finding | None]
    # The latest record's fields the rule cannot judge without; a loop that does not log
    # them (an SDK run) leaves the rule silent instead of half-read.
    reads: tuple[str, ...] = ()


@dataclass(frozen=True)
class Signal:
    """What a detector saw; `_rule` stamps it with the rule's name and severity."""

    epoch: int | None
    message: str
    cause: str
    candidates: Sequence[Candidate]
    evidence: dict[str, Any]


def _rule(
    name: str,
    severity: Severity,
    description: str,
    detect: Callable[[RunContext], Signal | None],
    *,
    metric: str | None = None,
    reads: tuple[str, ...] = (),
) -> Rule:
    # The name and severity live once, on the Rule; detectors cannot contradict them.
    def check(ctx: RunContext) -> Finding | None:
        signal = detect(ctx)
        if signal is None:
            return None
        return Finding(
            rule=name,
            severity=severity,
            epoch=signal.epoch,
            message=signal.message,
            cause=signal.cause,
            candidates=tuple(
                c for c in signal.candidates if c.changes and _applies(ctx.config, c.changes)
            ),
            evidence=signal.evidence,
        )

    return Rule(name, severity, description, metric, check, reads)


def config_of(config: dict[str, Any]) -> dict[str, Any]:
    """The settings the rules read from a run's config: ours in full; from an SDK run's own
    config, the keys named like our fields (the others fall back to our defaults)."""
    return {k: v for k, v in config.items() if k in TrainConfig.model_fields}


def _applies(config: dict[str, Any], changes: dict[str, Any]) -> bool:
    """The patch yields a valid config: numbers computed from extreme records (a norm of
    1e300, a ratio of 0) must not become a fix the restart would refuse."""
    try:
        TrainConfig.model_validate({**config, **changes})
    except ValidationError:
        return False
    return True


def _only(label: str, changes: dict[str, Any], expected: str) -> list[Candidate]:
    return [Candidate(label, changes, expected)]


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


def _sig(value: float) -> float:
    """Three significant digits: a patch a person can read and type."""
    return float(f"{value:.3g}")


def _scaled_weights(config: dict[str, Any], factor: float) -> dict[str, float]:
    """Every nonzero λ times `factor`, within its field's bounds."""
    out: dict[str, float] = {}
    for term in LOSS_TERMS:
        key = f"lambda_{term}"
        current = float(_setting(config, key))
        if current > 0:
            out[key] = min(_sig(current * factor), _upper_bound(key))
    return out


def _clip_candidates(ctx: RunContext, rec: dict[str, Any]) -> tuple[str, list[Candidate]]:
    """The cause the numbers point to, and the three fixes in that cause's order.

    - loss scale: one weighted term carries the gradient (≥ 90% of the per-term norms) and
      its norm sits above the clip. Adam's step is invariant to a constant factor on the
      loss, so multiplying every λ by c changes no update; it only brings the norm under
      the clip. c puts the p90 norm at CLIP_NORM_TARGET × the clip.
    - spikes: the largest norm is SPIKE_RATIO × the p90 one: clip at the p90 norm, so only
      the tail is cut.
    - step size: update_ratio above UPDATE_RATIO_MAX: the LR is large for the parameters;
      scale learning_rate_max (and init, if above) down to that ratio.
    """
    clip = float(_setting(ctx.config, "grad_clip_norm"))
    top = float(rec["grad_norm_max"])
    p90 = float(rec.get("grad_norm_p90") or rec["grad_norm_mean"] or top)
    # Norms of 0 beside a high clip% cannot come from a trainer; nothing to scale from.
    factor = CLIP_NORM_TARGET * clip / p90 if p90 > 0 else 1.0
    after_max = top * factor
    rescale = Candidate(
        "rescale_losses",
        _scaled_weights(ctx.config, factor) if p90 > 0 else {},
        f"every λ × {_g(factor)}: p90 norm {_g(p90)} → {_g(p90 * factor)} and max "
        f"{_g(top)} → {_g(after_max)} against the clip {_g(clip)}; expected clip% "
        + ("0" if after_max <= clip else "≤ 10")
        + "; Adam's steps, the loss shares and val_recon unchanged",
    )
    clip_at_p90 = Candidate(
        "clip_at_p90",
        {"grad_clip_norm": _sig(p90)} if _sig(p90) > clip else {},
        f"grad_clip_norm {_g(clip)} → {_g(p90)} (the p90 norm): expected clip% ≈ 10",
    )
    ratio = rec.get("update_ratio")
    lr_patch: dict[str, Any] = {}
    lr_text = "update_ratio not measured"
    if ratio:
        lr_max = float(_setting(ctx.config, "learning_rate_max"))
        lr_init = float(_setting(ctx.config, "learning_rate_init"))
        new_max = _sig(lr_max * min(1.0, UPDATE_RATIO_MAX / ratio))
        if new_max < lr_max:
            lr_patch = {"learning_rate_max": new_max}
            if lr_init > new_max:
                lr_patch["learning_rate_init"] = new_max
        lr_text = (
            f"learning_rate_max {_g(lr_max)} → {_g(new_max)}: update_ratio {_g(ratio)} → about "
            f"{_g(min(ratio, UPDATE_RATIO_MAX))} per epoch; the gradient norm itself stays"
        )
    lower_lr = Candidate("lower_lr", lr_patch, lr_text)

    norms = {t: rec.get(f"grad_norm_{t}") for t in LOSS_TERMS}
    measured = all(v is not None for v in norms.values()) and sum(norms.values()) > 0
    if measured:
        term = max(norms, key=lambda t: norms[t] or 0.0)
        share = (norms[term] or 0.0) / sum(v or 0.0 for v in norms.values())
        if share >= 0.9 and (norms[term] or 0.0) > clip:
            cause = (
                f"the {term} term carries {share:.0%} of the gradient (norm "
                f"{_g(norms[term] or 0.0)} > clip {_g(clip)}): the loss scale, not the "
                "optimizer, sets the norm"
            )
            return cause, [rescale, clip_at_p90, lower_lr]
    if top > SPIKE_RATIO * p90:
        cause = f"the norm spikes: max {_g(top)} > {SPIKE_RATIO:g} × p90 {_g(p90)}"
        return cause, [clip_at_p90, rescale, lower_lr]
    if ratio and rec["epoch"] > int(_setting(ctx.config, "warmup_epochs")) and (
        ratio > UPDATE_RATIO_MAX
    ):
        cause = f"the steps are large: update_ratio {_g(ratio)} > {UPDATE_RATIO_MAX:g}"
        return cause, [lower_lr, rescale, clip_at_p90]
    cause = (
        f"the steady norm (p90 {_g(p90)}) is above the clip {_g(clip)}"
        + ("" if measured else "; per-term norms not measured")
    )
    return cause, [rescale, clip_at_p90, lower_lr]


def _clip_high(ctx: RunContext) -> Signal | None:
    rec = ctx.latest
    if rec is None or rec["epoch"] <= CLIP_AFTER_EPOCH or rec["clip_pct"] <= CLIP_PCT_MAX:
        return None
    clip_norm = _setting(ctx.config, "grad_clip_norm")
    cause, candidates = _clip_candidates(ctx, rec)
    fixes = [c for c in candidates if c.changes]
    message = (
        f"clip% is {rec['clip_pct']:.4g}% (> {CLIP_PCT_MAX:.0f}%) at epoch {rec['epoch']} "
        f"(judged after epoch {CLIP_AFTER_EPOCH}): {cause}; "
        + (f"suggested: {fixes[0].label} ({fixes[0].expected})" if fixes
           else "no config change left to suggest")
    )
    return Signal(
        epoch=rec["epoch"],
        message=message,
        cause="Most optimizer steps are clipped, so the clip threshold, not the loss, sets "
        "the step size.",
        candidates=candidates,
        evidence={
            "clip_pct": rec["clip_pct"],
            "threshold": CLIP_PCT_MAX,
            "after_epoch": CLIP_AFTER_EPOCH,
            "grad_norm_mean": rec["grad_norm_mean"],
            "grad_norm_p90": rec.get("grad_norm_p90"),
            "grad_norm_max": rec["grad_norm_max"],
            "grad_clip_norm": clip_norm,
            "update_ratio": rec.get("update_ratio"),
            **{f"grad_norm_{t}": rec.get(f"grad_norm_{t}") for t in LOSS_TERMS},
            "diagnosis": cause,
        },
    )


def _measured_rebalance(
    config: dict[str, Any], rec: dict[str, Any]
) -> tuple[dict[str, float], list[str], str]:
    """λ for each regularizer so its share of the loss lands mid-way in EXPECTED_SHARES.

    Each weighted term is λ × (its raw value), so for the epoch's measured terms
    λ' = λ × (target share / target recon share) × loss_recon / loss_term, with λ_recon
    kept. A term off (λ 0, or before the rising acyclicity schedule starts) or exactly 0
    has no magnitude to scale from and keeps its weight. Returns the patch, the terms
    left alone, and the breakdown expected after it.
    """
    recon = float(rec["loss_recon"])
    mid = {t: sum(EXPECTED_SHARES[t]) / 2 for t in LOSS_TERMS}
    changes: dict[str, float] = {}
    unmeasured: list[str] = []
    for term in LOSS_TERMS[1:]:
        key = f"lambda_{term}"
        weight, loss = float(_setting(config, key)), float(rec[f"loss_{term}"])
        if weight <= 0 or loss <= 0 or recon <= 0:
            unmeasured.append(term)
            continue
        changes[key] = min(
            _sig(weight * mid[term] / mid["recon"] * recon / loss), _upper_bound(key)
        )
    aimed = {t: mid[t] for t in LOSS_TERMS if t == "recon" or f"lambda_{t}" in changes}
    total = sum(aimed.values())
    expected = ", ".join(f"{t} {100 * v / total:.0f}%" for t, v in aimed.items())
    return changes, unmeasured, expected


def _standardize_first(ctx: RunContext) -> list[Candidate]:
    """On raw data whose column variances span more than VARIANCE_RATIO_MAX, the
    reconstruction term is measured in the largest column's units: the penalties look silent
    because of the scale, and λ computed against it are absurd (λ_disen 1e9 on raw UCI,
    docs/benchmarks.md). Standardizing is then the first fix."""
    ratio = _unscaled_ratio(ctx)
    if ratio is None:
        return []
    return _only(
        "standardize", {"standardize": True},
        f"raw variances span {_g(ratio)}×: on one scale the penalties are measured against "
        "a reconstruction term of order 1",
    )


def _regularizers_silent(ctx: RunContext) -> Signal | None:
    tail = ctx.history[-REGULARIZERS_SILENT_EPOCHS:]
    if len(tail) < REGULARIZERS_SILENT_EPOCHS:
        return None
    regs = [t for t in LOSS_TERMS if t != "recon"]
    for rec in tail:
        total = sum(rec[f"share_{t}"] for t in LOSS_TERMS)
        if total <= 0 or sum(rec[f"share_{t}"] for t in regs) >= REGULARIZERS_SILENT_PCT:
            return None
    rec = tail[-1]
    recon = float(rec["loss_recon"])
    changes, unmeasured, expected = _measured_rebalance(ctx.config, rec)
    shares = ", ".join(
        f"{sum(r[f'share_{t}'] for t in regs):.2g}%" for r in tail
    )
    note = ""
    if unmeasured:
        note = f"; not measurable now (weight 0 or term 0): {', '.join(unmeasured)}"
    targets = ", ".join(f"{t} {lo:g}–{hi:g}%" for t, (lo, hi) in EXPECTED_SHARES.items())
    return Signal(
        epoch=rec["epoch"],
        message=(
            f"the regularizers are silent: sparse + acyclic + disen shares were {shares} "
            f"(< {REGULARIZERS_SILENT_PCT:g}%) at epochs {tail[0]['epoch']}–{rec['epoch']}; "
            f"measured terms: recon {_g(recon)}, "
            + ", ".join(f"{t} {_g(rec[f'loss_{t}'])}" for t in regs)
            + f"; λ set for the expected breakdown ({targets}){note}; "
            f"{_describe_patch(changes)}; expected shares {expected}"
        ),
        cause="The sparsity, acyclicity and disentanglement terms are numerically negligible "
        "next to reconstruction (the seed's underflow): nothing pushes the graph to be sparse "
        "or acyclic.",
        candidates=[
            *_standardize_first(ctx),
            Candidate("rebalance_from_measured", changes, f"expected shares {expected}"),
        ],
        evidence={
            "regularizer_share": [sum(r[f"share_{t}"] for t in regs) for r in tail],
            "epochs": [r["epoch"] for r in tail],
            "threshold": REGULARIZERS_SILENT_PCT,
            "consecutive_epochs": REGULARIZERS_SILENT_EPOCHS,
            **{f"loss_{t}": rec[f"loss_{t}"] for t in LOSS_TERMS},
            "unmeasured": unmeasured,
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
        candidates=_only("spread_logits", patch, "logit std above "
        f"{LOGIT_STD_MIN} once the logits move at their own pace"),
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
        total = sum(rec[share] for share in _SHARES)
        if total <= 0 or rec["share_recon"] >= RECON_SHARE_MIN:
            return None
    rec = tail[-1]
    regs = {k: rec[f"share_{k}"] for k in LOSS_TERMS if k != "recon"}
    top = max(regs, key=regs.__getitem__)
    shares = ", ".join(f"{r['share_recon']:.4g}%" for r in tail)
    measured, _, expected = _measured_rebalance(ctx.config, rec)
    patch = _rebalance_patch(ctx.config)
    return Signal(
        epoch=rec["epoch"],
        message=(
            f"recon share has been below {RECON_SHARE_MIN:.0f}% for {RECON_LOW_EPOCHS} "
            f"consecutive epochs ({shares} at epochs {tail[0]['epoch']}–{rec['epoch']}); "
            f"the largest regularizer is {top} at {regs[top]:.1f}%; λ from the measured "
            f"terms: {_describe_patch(measured)} (expected shares {expected}); the "
            f"checklist's: {_describe_patch(patch)}"
        ),
        cause="The regularizers outweigh the reconstruction term, so the graph is shaped by "
        "the penalties rather than the data.",
        candidates=[
            Candidate("rebalance_from_measured", measured, f"expected shares {expected}"),
            Candidate("rebalance_losses", patch, f"recon share above {RECON_SHARE_MIN:.0f}%"),
        ],
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
        candidates=_only("spread_logits", patch, "edges_tuned > 0 once the top "
        "probabilities separate"),
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
        candidates=_only("bigger_model", patch, "a higher F1 within "
        f"{F1_STALL_EPOCHS} epochs"),
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
        candidates=_only("lower_lr", patch, "every loss term and gradient finite"),
        evidence={"reason": ctx.failure, "epoch": epoch, "acyclicity": acyclicity},
    )


def _empty_graph_collapse(ctx: RunContext) -> Signal | None:
    rec = ctx.latest
    # Only against the reference the trainer reported, never the config's expectation.
    ref = reference_size(ctx.config, ctx.data) if ctx.data else None
    if rec is None or ref is None or rec.get("shd") is None:
        return None
    if rec["edges_tuned"] != 0 or rec["shd"] != ref:
        return None
    # Regularizers in charge push every edge out; otherwise the logits tied (see docs).
    if rec["share_recon"] < RECON_SHARE_MIN:
        measured, _, expected = _measured_rebalance(ctx.config, rec)
        patch, why = _rebalance_patch(ctx.config), "the regularizers dominate the loss"
        candidates = [
            Candidate("rebalance_from_measured", measured, f"expected shares {expected}"),
            Candidate("rebalance_losses", patch, "a non-empty tuned graph"),
        ]
    else:
        patch, why = _spread_logits_patch(ctx.config), "the edge logits are tied"
        candidates = _only("spread_logits", patch, "a non-empty tuned graph")
    kind = (ctx.data or {}).get("reference_kind", "reference")
    return Signal(
        epoch=rec["epoch"],
        message=(
            f"edges_tuned is 0 and SHD is {rec['shd']}, equal to the {ref} edges of the "
            f"{kind}, at epoch {rec['epoch']}: the learned graph is empty (recon share "
            f"{rec['share_recon']:.1f}%, logit std {_g(rec['logit_std'])}; {why}); "
            f"{_describe_patch(candidates[0].changes)}"
        ),
        cause="The model has collapsed to the empty graph: it scores exactly what predicting "
        "no edge at all would.",
        candidates=candidates,
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


def _unscaled_ratio(ctx: RunContext) -> float | None:
    """The raw variance ratio when the run trains on raw columns spanning more than
    VARIANCE_RATIO_MAX (None otherwise): the condition raw_variance flags."""
    if ctx.data is None or ctx.data.get("standardized"):
        return None
    ratio = _stats(ctx).get("variance_ratio")
    if ratio is None or ratio <= VARIANCE_RATIO_MAX:
        return None
    return float(ratio)


def _raw_variance(ctx: RunContext) -> Signal | None:
    ratio = _unscaled_ratio(ctx)
    if ratio is None:
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
        candidates=_only("standardize", {"standardize": True}, "every column at variance 1: "
        "variance ratio 1"),
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
        candidates=[],
        evidence={
            "columns": [{"column": i["column"], "r2": i["r2"]} for i in items],
            "threshold": NEAR_DETERMINISTIC_R2,
        },
    )


# --- the catalogue ----------------------------------------------------------------------

_SHARES = tuple(f"share_{t}" for t in LOSS_TERMS)
_LOSSES = tuple(f"loss_{t}" for t in LOSS_TERMS)

RULES: tuple[Rule, ...] = (
    _rule(
        "raw_variance",
        Severity.WARNING,
        f"raw variance ratio > {VARIANCE_RATIO_MAX:g} with standardize off → standardize",
        _raw_variance,
        metric="clip_pct",
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
        f"clip% > {CLIP_PCT_MAX:.0f} after epoch {CLIP_AFTER_EPOCH} → rescale the λ, clip at "
        "the p90 norm or lower the LR, by the measured cause",
        _clip_high,
        metric="clip_pct",
        reads=("clip_pct", "grad_norm_max"),
    ),
    _rule(
        "logit_collapse",
        Severity.WARNING,
        f"logit std < {LOGIT_STD_MIN} after epoch {LOGIT_AFTER_EPOCH} → sigmoid sparsify",
        _logit_collapse,
        metric="logit_std",
        reads=("logit_std", "logit_mean"),
    ),
    _rule(
        "recon_share_low",
        Severity.WARNING,
        f"recon share < {RECON_SHARE_MIN:.0f}% for {RECON_LOW_EPOCHS} epochs → rebalance",
        _recon_share_low,
        metric="share_recon",
        reads=_SHARES,
    ),
    _rule(
        "regularizers_silent",
        Severity.WARNING,
        f"sparse + acyclic + disen shares < {REGULARIZERS_SILENT_PCT:g}% for "
        f"{REGULARIZERS_SILENT_EPOCHS} epochs → λ from the measured terms",
        _regularizers_silent,
        metric="share_regularizers",
        reads=(*_SHARES, *_LOSSES),
    ),
    _rule(
        "threshold_tuning_broken",
        Severity.WARNING,
        "edges_tuned = 0 while edges_topk > 0 → let the logits separate",
        _threshold_tuning_broken,
        metric="edges_tuned",
        reads=("edges_tuned", "edges_topk", "threshold_tuned", "logit_std"),
    ),
    _rule(
        "empty_graph_collapse",
        Severity.CRITICAL,
        "edges_tuned = 0 and SHD = reference size → rebalance or let the logits separate",
        _empty_graph_collapse,
        metric="edges_tuned",
        reads=("edges_tuned", "shd", "share_recon", "logit_std"),
    ),
    _rule(
        "f1_stalled",
        Severity.INFO,
        f"highest F1 not improved for {F1_STALL_EPOCHS} epochs → bigger model",
        _f1_stalled,
        metric="f1",
    ),
)

RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)
RULES_BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}


def metric_value(metric: str, record: dict[str, Any]) -> float | None:
    """A rule's flagged metric read off one epoch record (`share_regularizers`: the three
    regularizers' shares summed)."""
    if metric == "share_regularizers":
        return float(sum(record[f"share_{t}"] for t in LOSS_TERMS[1:]))
    value = record.get(metric)
    return None if value is None else float(value)


def evaluate(ctx: RunContext, already_fired: Collection[str]) -> list[Finding]:
    """The findings of every rule that has not fired for this run yet, in `RULES` order.

    `already_fired` is not modified: the caller records each returned `finding.rule`.
    """
    findings: list[Finding] = []
    latest = ctx.latest
    for rule in RULES:
        if rule.name in already_fired:
            continue
        if rule.reads and (latest is None or any(latest.get(f) is None for f in rule.reads)):
            continue
        try:
            finding = rule.check(ctx)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, ArithmeticError):
            # Data a rule cannot read (e.g. malformed run-start stats) silences that rule;
            # it must never stop the run's ingest.
            logger.warning("rule %s could not read the run's data", rule.name, exc_info=True)
            continue
        if finding is not None:
            findings.append(finding)
    return findings
