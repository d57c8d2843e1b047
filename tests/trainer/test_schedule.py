"""The learning-rate and acyclicity schedules as pure arithmetic (trainer/schedule.py)."""

from __future__ import annotations

from typing import Any

import pytest

from trainer.config import TrainConfig, build_config
from trainer.schedule import acyclic_start_epoch, acyclic_weight, get_lr

LO, HI = 1e-5, 1e-3


def lr_config(**overrides: Any) -> TrainConfig:
    return build_config("standard", {"learning_rate_init": LO, "learning_rate_max": HI,
                                     "warmup_epochs": 4, "epochs": 20, **overrides})


def test_warmup_rises_linearly_from_init_to_max() -> None:
    cfg = lr_config()
    assert get_lr(1, cfg) == pytest.approx(LO)
    assert get_lr(3, cfg) == pytest.approx(LO + (HI - LO) * 2 / 4)
    # Epoch warmup + 1 is the first at the maximum.
    assert get_lr(4, cfg) < HI
    assert get_lr(5, cfg) == pytest.approx(HI)


def test_cosine_decays_back_to_init_at_the_last_epoch() -> None:
    cfg = lr_config()
    after_warmup = [get_lr(e, cfg) for e in range(5, 21)]
    assert after_warmup == sorted(after_warmup, reverse=True)
    assert len(set(after_warmup)) == len(after_warmup), "strictly decreasing"
    assert get_lr(20, cfg) == pytest.approx(LO)
    # Half-way through the decay (epochs 5..20 span 15): the mean of init and max.
    assert get_lr(5 + 15 // 2, cfg) == pytest.approx((LO + HI) / 2, rel=0.15)
    # Past the plan (a resumed or longer run) it stays at init, never below.
    assert get_lr(40, cfg) == pytest.approx(LO)


def test_constant_schedule_holds_the_maximum_after_warmup() -> None:
    cfg = lr_config(lr_schedule="constant")
    assert get_lr(1, cfg) == pytest.approx(LO)
    assert {get_lr(e, cfg) for e in range(5, 21)} == {HI}


def test_without_warmup_the_first_epoch_runs_at_the_maximum() -> None:
    cfg = lr_config(warmup_epochs=0)
    assert get_lr(1, cfg) == pytest.approx(HI)
    assert get_lr(20, cfg) == pytest.approx(LO)


def test_a_probe_shares_its_plans_schedule() -> None:
    """stop_after_epochs trains the first epochs of the plan at the plan's rates."""
    plan, probe = lr_config(), lr_config(stop_after_epochs=6)
    assert [get_lr(e, probe) for e in range(1, 7)] == [get_lr(e, plan) for e in range(1, 7)]
    assert [acyclic_weight(e, probe) for e in range(1, 7)] == [
        acyclic_weight(e, plan) for e in range(1, 7)]


def test_the_rising_penalty_starts_after_its_fraction_of_the_epochs() -> None:
    cfg = build_config("healthy", {"epochs": 10, "acyclic_start": 0.25, "lambda_acyclic": 4.0})
    assert acyclic_start_epoch(cfg) == 2
    assert [acyclic_weight(e, cfg) for e in (1, 2)] == [0.0, 0.0]
    assert acyclic_weight(3, cfg) == pytest.approx(4.0 / 8)
    assert acyclic_weight(10, cfg) == pytest.approx(4.0)
    # A start at the very end still leaves the last epoch penalised.
    late = build_config("healthy", {"epochs": 10, "acyclic_start": 0.99})
    assert acyclic_start_epoch(late) == 9 and acyclic_weight(10, late) > 0


def test_a_constant_penalty_is_on_from_the_first_epoch() -> None:
    cfg = build_config("standard", {"acyclic_schedule": "constant", "lambda_acyclic": 3.0})
    assert acyclic_start_epoch(cfg) == 0
    assert acyclic_weight(1, cfg) == 3.0
