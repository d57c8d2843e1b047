"""Every number a run is judged by, defined once.

The scorecard's levels, the red flags' triggers, the targets their fixes aim at and the
bounds a probe's verdict uses. `backend/scorecard.py` and `backend/rules.py` import these;
the dashboard reads them from `GET /api/thresholds` (its chart guides); docs/rules.md
explains each.
"""

from __future__ import annotations

from typing import Any

# The data checks' bounds: the trainer warns with them too, so they live in its contract.
from trainer.protocol import NEAR_DETERMINISTIC_R2, VARIANCE_RATIO_MAX

LEVELS: tuple[str, ...] = ("Minimum", "Good", "Excellent")
# The epoch from which a level is judged (docs/rules.md, The scorecard).
LEVEL_EPOCH: dict[str, int] = {"Minimum": 20, "Good": 30, "Excellent": 50}
# metric → (comparison, threshold per level). None: the run's reference size (SHD), and
# SHD is not asked at Minimum.
LEVEL_TARGETS: dict[str, tuple[str, dict[str, float | None]]] = {
    "clip_pct": ("<=", {"Minimum": 50.0, "Good": 10.0, "Excellent": 5.0}),
    "logit_std": (">=", {"Minimum": 0.05, "Good": 0.1, "Excellent": 0.2}),
    "f1": (">=", {"Minimum": 0.2, "Good": 0.4, "Excellent": 0.5}),
    "shd": ("<", {"Good": None, "Excellent": None}),
}


def level_threshold(metric: str, level: str) -> float:
    value = LEVEL_TARGETS[metric][1][level]
    assert value is not None, f"{metric} at {level} is relative to the reference"
    return value


# --- red-flag triggers: a run that trips one cannot meet Minimum ---------------------------
CLIP_PCT_MAX = level_threshold("clip_pct", "Minimum")  # clip_high: more steps clipped ...
CLIP_AFTER_EPOCH = 10  # ... after warmup and the first epochs' transients
LOGIT_STD_MIN = level_threshold("logit_std", "Minimum")  # logit_collapse
LOGIT_AFTER_EPOCH = 15  # logits start at N(0, 0.01²); give them time to spread
RECON_SHARE_MIN = 50.0  # recon_share_low: regularizers outweigh the data term
RECON_LOW_EPOCHS = 3  # consecutive epochs, so one noisy warmup epoch does not fire it
REGULARIZERS_SILENT_PCT = 1.0  # regularizers_silent: sparse + acyclic + disen shares below
REGULARIZERS_SILENT_EPOCHS = 3  # ... on this many consecutive epochs
F1_STALL_EPOCHS = 20  # f1_stalled: epochs without a better F1

# --- what the fixes aim at --------------------------------------------------------------
# The seed's healthy loss breakdown (DESIGN.md): % of the summed weighted terms.
EXPECTED_SHARES: dict[str, tuple[float, float]] = {
    "recon": (60.0, 80.0),
    "sparse": (10.0, 20.0),
    "disen": (5.0, 10.0),
    "acyclic": (2.0, 5.0),
}
# clip_high, loss-scale cause: rescale so the p90 pre-clip norm sits at this fraction of
# the clip threshold (the max has headroom too; Adam's steps do not change, docs/rules.md).
CLIP_NORM_TARGET = 0.5
# clip_high, spike cause: the largest step norm this many times the p90 one.
SPIKE_RATIO = 4.0
# clip_high, step-size cause: an epoch moving the parameters by more than this fraction
# of their norm, after warmup, is a learning rate too large for the parameters' scale.
UPDATE_RATIO_MAX = 0.1
# logit_collapse under sigmoid: how much faster the logits should move.
ADJ_LR_SCALE_FACTOR = 10.0

# --- probes: short runs that try a fix before the user clicks it -------------------------
PROBE_EPOCHS = 10  # at least; a probe runs to the epoch its alert fired at when later
PROBES_PER_ALERT = 3
# A probe's fix is "worse" when its val_recon is above the parent's by more than this
# fraction, or its F1 below the parent's by more than this (about one edge of 13).
VERIFY_VAL_RECON_TOLERANCE = 0.05
VERIFY_F1_TOLERANCE = 0.05


def as_dict() -> dict[str, Any]:
    """The public view (GET /api/thresholds): levels for chart guides, rule triggers.

    Copies throughout: a caller changing its view must not move the rules' numbers.
    """
    return {
        "levels": list(LEVELS),
        "level_epoch": dict(LEVEL_EPOCH),
        "level_targets": {
            metric: {"op": op, "by_level": dict(by_level)}
            for metric, (op, by_level) in LEVEL_TARGETS.items()
        },
        "rules": {
            "clip_pct_max": CLIP_PCT_MAX,
            "clip_after_epoch": CLIP_AFTER_EPOCH,
            "logit_std_min": LOGIT_STD_MIN,
            "logit_after_epoch": LOGIT_AFTER_EPOCH,
            "recon_share_min": RECON_SHARE_MIN,
            "recon_low_epochs": RECON_LOW_EPOCHS,
            "regularizers_silent_pct": REGULARIZERS_SILENT_PCT,
            "regularizers_silent_epochs": REGULARIZERS_SILENT_EPOCHS,
            "f1_stall_epochs": F1_STALL_EPOCHS,
            "variance_ratio_max": VARIANCE_RATIO_MAX,
            "near_deterministic_r2": NEAR_DETERMINISTIC_R2,
        },
        "expected_shares": {term: list(bounds) for term, bounds in EXPECTED_SHARES.items()},
        "probes": {
            "epochs": PROBE_EPOCHS,
            "per_alert": PROBES_PER_ALERT,
            "val_recon_tolerance": VERIFY_VAL_RECON_TOLERANCE,
            "f1_tolerance": VERIFY_F1_TOLERANCE,
        },
    }
