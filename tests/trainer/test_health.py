"""Health metrics against hand-computed cases."""

import numpy as np
import pytest

from trainer.health import clip_pct, count_edges_above, eta_seconds, logit_stats, loss_shares


def test_clip_pct_counts_steps_strictly_above_the_norm() -> None:
    assert clip_pct([0.5, 1.0, 1.5, 3.0], 1.0) == pytest.approx(50.0)
    assert clip_pct([2.0, 2.0], 1.0) == 100.0
    assert clip_pct([], 1.0) == 0.0


def test_loss_shares_are_percent_of_summed_magnitudes() -> None:
    shares = loss_shares({"recon": 6.0, "sparse": 2.0, "acyclic": 0.0, "disen": -2.0})
    assert shares == pytest.approx({"recon": 60.0, "sparse": 20.0, "acyclic": 0.0, "disen": 20.0})
    assert sum(shares.values()) == pytest.approx(100.0)
    assert loss_shares({"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}


def test_logit_stats_population_std() -> None:
    mean, std = logit_stats(np.array([1.0, 3.0]))
    assert (mean, std) == (2.0, 1.0)
    assert logit_stats(np.full(10, -4.2))[1] == pytest.approx(0.0, abs=1e-12)


def test_edges_above_ignores_diagonal() -> None:
    probs = np.array([[0.9, 0.6], [0.5, 0.9]])
    assert count_edges_above(probs, 0.5) == 1


def test_eta_is_mean_pace_times_epochs_left() -> None:
    assert eta_seconds([1.0, 3.0], 5) == pytest.approx(10.0)
    assert eta_seconds([1.0], 0) == 0.0


def test_update_ratio_is_step_norm_over_start_norm() -> None:
    from trainer.health import update_ratio

    # θ = (3, 4): ‖θ‖ = 5; step (0, 1): ‖Δθ‖ = 1.
    assert update_ratio(np.array([3.0, 4.0]), np.array([3.0, 5.0])) == pytest.approx(0.2)
    assert update_ratio(np.zeros(2), np.array([0.0, 2.0])) == pytest.approx(2.0)
