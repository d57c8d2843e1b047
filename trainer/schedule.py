"""The per-epoch schedules a config implies: the learning rate and the acyclicity weight.

Pure arithmetic over `TrainConfig` (no torch), so the backend's rules can tell what weight a
term carried at the epoch they judge, from the same definition the loop trains with.
"""

from __future__ import annotations

import math

from trainer.config import TrainConfig


def get_lr(epoch: int, cfg: TrainConfig) -> float:
    """Learning rate for 1-based `epoch`: linear warmup init → max, then the schedule.

    Warmup: epoch 1 runs at `learning_rate_init`, epoch `warmup_epochs + 1` at
    `learning_rate_max`. Cosine then decays back to `learning_rate_init` at the last epoch.
    """
    lo, hi, warm = cfg.learning_rate_init, cfg.learning_rate_max, cfg.warmup_epochs
    if epoch <= warm:
        return lo + (hi - lo) * (epoch - 1) / warm
    if cfg.lr_schedule == "constant":
        return hi
    span = max(1, cfg.epochs - warm - 1)
    progress = min(1.0, (epoch - warm - 1) / span)
    return lo + (hi - lo) * 0.5 * (1.0 + math.cos(math.pi * progress))


def acyclic_weight(epoch: int, cfg: TrainConfig) -> float:
    """λ_acyclic in force during 1-based `epoch`.

    `rising` (SDCD, Nazaret et al. 2024): 0 for the first `acyclic_start` of the epochs, so
    the graph first learns which parents explain each variable; then linear in the epoch,
    reaching `lambda_acyclic` at the last one. `constant`: `lambda_acyclic` throughout.
    """
    if cfg.acyclic_schedule == "constant":
        return cfg.lambda_acyclic
    start = acyclic_start_epoch(cfg)
    if epoch <= start:
        return 0.0
    return cfg.lambda_acyclic * (epoch - start) / (cfg.epochs - start)


def acyclic_start_epoch(cfg: TrainConfig) -> int:
    """The last epoch without the acyclicity penalty (0 when it is on from the start)."""
    if cfg.acyclic_schedule == "constant":
        return 0
    return min(cfg.epochs - 1, math.floor(cfg.acyclic_start * cfg.epochs))
