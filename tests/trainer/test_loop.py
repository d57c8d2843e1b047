"""The training loop in-process on a few samples (trainer/loop.py): what each epoch reports,
how a run ends, and what it calls back. Correctness of the learned graph is test_model's."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trainer.config import TrainConfig, build_config
from trainer.data import Dataset
from trainer.loop import RunResult, train
from trainer.protocol import EVAL_FIELDS, LOSS_TERMS, EpochRecord
from trainer.schedule import get_lr

D = 3
TRAIN_ROWS = 48
BATCH = 16


def chain_data(seed: int = 0) -> Dataset:
    """x0 → x1 → x2, linear with noise: small enough that an epoch is a few milliseconds."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=TRAIN_ROWS + 16)
    x1 = 0.8 * x0 + 0.3 * rng.normal(size=x0.size)
    x2 = -0.6 * x1 + 0.3 * rng.normal(size=x0.size)
    x = np.stack([x0, x1, x2], axis=1).astype(np.float32)
    reference = np.zeros((D, D), dtype=np.int8)
    reference[0, 1] = reference[1, 2] = 1
    return Dataset(
        name="synthetic", variables=["x0", "x1", "x2"], train=x[:TRAIN_ROWS],
        val=x[TRAIN_ROWS:], reference=reference, reference_kind="ground truth",
        standardized=True, stats={},
    )


def tiny(**overrides: Any) -> TrainConfig:
    return build_config("standard", {"epochs": 4, "batch_size": BATCH, "latent_dim": 2,
                                     "hidden_dim": 4, "warmup_epochs": 1, "eval_every": 2,
                                     "patience": 0, "device": "cpu", **overrides})


def run(cfg: TrainConfig, data: Dataset | None = None, **kwargs: Any) -> RunResult:
    return train(cfg, data or chain_data(), "loop-test", **kwargs)


def test_each_epoch_sends_one_valid_record_at_the_scheduled_rate() -> None:
    cfg = tiny()
    seen: list[dict[str, Any]] = []
    graphs: list[tuple[int, list[list[float]]]] = []
    result = run(cfg, on_record=seen.append, on_graph=lambda e, p: graphs.append((e, p)))

    assert (result.status, result.epochs_run) == ("completed", 4)
    assert seen == result.history and [r["epoch"] for r in seen] == [1, 2, 3, 4]
    for record in seen:
        EpochRecord.model_validate(record)  # what the backend would accept
        assert set(record) == set(EpochRecord.model_fields)
        assert record["lr"] == pytest.approx(get_lr(record["epoch"], cfg))
        assert record["step"] == record["epoch"] * math.ceil(TRAIN_ROWS / BATCH)
        assert record["loss_total"] == pytest.approx(
            sum(record[f"loss_{t}"] for t in LOSS_TERMS))
        assert sum(record[f"share_{t}"] for t in LOSS_TERMS) == pytest.approx(100.0)
        evaluated = cfg.is_eval_epoch(record["epoch"])
        assert all((record[f] is not None) == evaluated for f in EVAL_FIELDS), record
    # The adjacency heatmap: d × d probabilities with no self-loops, on evaluation epochs.
    assert [e for e, _ in graphs] == [2, 4]
    for _, probabilities in graphs:
        assert len(probabilities) == D and all(len(row) == D for row in probabilities)
        assert all(probabilities[i][i] == 0.0 for i in range(D))
        assert all(0.0 <= p <= 1.0 for row in probabilities for p in row)


def test_the_same_seed_trains_the_same_run() -> None:
    first, second = run(tiny(seed=7)), run(tiny(seed=7))
    keys = [f"loss_{t}" for t in LOSS_TERMS] + ["logit_mean", "edges_tuned"]
    assert [[r[k] for k in keys] for r in first.history] == [
        [r[k] for k in keys] for r in second.history]
    other = run(tiny(seed=8))
    assert [r["loss_total"] for r in other.history] != [r["loss_total"] for r in first.history]


def test_a_training_step_moves_the_parameters_and_the_graph() -> None:
    result = run(tiny(epochs=2, learning_rate_init=1e-2, learning_rate_max=1e-2))
    first, last = result.history
    assert first["update_ratio"] > 0 and last["update_ratio"] > 0
    assert first["grad_norm_mean"] > 0 and first["grad_norm_max"] >= first["grad_norm_mean"]
    assert last["loss_recon"] != first["loss_recon"]


def test_best_checkpoint_is_chosen_by_val_recon_and_saved(tmp_path: Path) -> None:
    # The rising penalty starts after epoch 2 here: only epochs from 3 may be the best.
    cfg = tiny(epochs=6, acyclic_schedule="rising", acyclic_start=1 / 3)
    checkpoint = tmp_path / "best.pt"
    result = run(cfg, checkpoint_path=checkpoint)
    bests = [r["epoch"] for r in result.history if r["is_best"]]
    assert bests and all(e >= 3 and cfg.is_eval_epoch(e) for e in bests)
    assert result.best_epoch == bests[-1] and result.best_record is not None
    assert result.best_record["val_recon"] == min(
        r["val_recon"] for r in result.history if r["epoch"] in bests)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == result.best_epoch
    summary = result.summary()
    assert summary["best_epoch"] == result.best_epoch
    assert summary["f1_at_best"] == result.best_record["f1"]


def test_a_stop_request_ends_the_run_after_the_epoch() -> None:
    result = run(tiny(), should_stop=lambda: True)
    assert (result.status, result.epochs_run) == ("stopped", 1)
    assert result.reason == "stop requested after epoch 1"


def test_stop_after_epochs_trains_the_start_of_the_plan() -> None:
    result = run(tiny(epochs=10, stop_after_epochs=3))
    assert (result.status, result.epochs_run) == ("completed", 3)
    assert "3 of 10" in result.reason
    # The last epoch trained is an evaluation epoch, so the probe is judged on fresh scores.
    assert result.history[-1]["f1"] is not None


def test_non_finite_data_fails_the_run_naming_the_term() -> None:
    data = chain_data()
    poisoned = dataclasses.replace(data, train=np.full_like(data.train, np.nan))
    result = run(tiny(), poisoned)
    assert (result.status, result.epochs_run) == ("failed", 0)
    assert result.reason.startswith("non-finite loss_recon") and "epoch 1 step 1" in result.reason


def test_without_a_reference_the_scores_stay_null() -> None:
    data = dataclasses.replace(chain_data(), reference=None, reference_kind="none")
    result = run(tiny(), data)
    evaluated = result.history[1]
    assert evaluated["val_recon"] is not None
    assert [evaluated[f] for f in ("shd", "f1", "precision", "recall", "f1_skeleton")] == [
        None] * 5
    # Top-k keeps d edges when there is no reference to count them from.
    assert all(r["edges_topk"] == D for r in result.history)
