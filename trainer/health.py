"""Training-health measurements: clip %, loss shares, logit spread, edge counts, ETA.

Pure functions over numbers the loop collected; docs/metrics.md defines each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def clip_pct(pre_clip_norms: Sequence[float], max_norm: float) -> float:
    """% of optimizer steps whose pre-clip global gradient norm exceeded `max_norm`."""
    if not pre_clip_norms:
        return 0.0
    clipped = sum(1 for n in pre_clip_norms if n > max_norm)
    return 100.0 * clipped / len(pre_clip_norms)


def loss_shares(terms: Mapping[str, float]) -> dict[str, float]:
    """Each term's % of the summed magnitudes Σ|term| (all 0 when every term is 0)."""
    total = sum(abs(v) for v in terms.values())
    if total == 0:
        return {name: 0.0 for name in terms}
    return {name: 100.0 * abs(v) / total for name, v in terms.items()}


def logit_stats(off_diagonal_logits: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation of the off-diagonal adjacency logits."""
    values = np.asarray(off_diagonal_logits, dtype=np.float64)
    return float(values.mean()), float(values.std())


def count_edges_above(probs: np.ndarray, threshold: float) -> int:
    """Off-diagonal entries with probability strictly above `threshold`."""
    p = np.asarray(probs)
    return int((p[~np.eye(p.shape[0], dtype=bool)] > threshold).sum())


def eta_seconds(epoch_seconds: Sequence[float], epochs_left: int) -> float:
    """Remaining time at the mean pace of the epochs so far."""
    if not epoch_seconds or epochs_left <= 0:
        return 0.0
    return float(np.mean(epoch_seconds)) * epochs_left


def update_ratio(theta_before: np.ndarray, theta_after: np.ndarray) -> float:
    """‖θ_after − θ_before‖ / ‖θ_before‖: how far one epoch moved the parameters."""
    before = np.asarray(theta_before, dtype=np.float64)
    step = np.linalg.norm(np.asarray(theta_after, dtype=np.float64) - before)
    scale = np.linalg.norm(before)
    return float(step / scale) if scale > 0 else float(step)
