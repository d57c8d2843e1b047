"""The edge-mask estimator, the acyclicity schedule and the per-term gradient norms."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.config import build_config
from trainer.data import load_dataset
from trainer.loop import term_gradients, train
from trainer.losses import LossBreakdown
from trainer.model import CausalStructureModel
from trainer.schedule import acyclic_weight


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_gumbel_mask_is_hard_forward_and_sigmoid_slope_backward() -> None:
    """2 variables by hand: M = 1[σ((L + G)/τ) > ½], ∂M/∂L = σ'((L + G)/τ)/τ."""
    model = CausalStructureModel(2, latent_dim=1, hidden_dim=1, sparsify_method="sigmoid",
                                 temperature=0.5)
    with torch.no_grad():
        model.adj_logits.copy_(torch.tensor([[0.0, 1.0], [-0.5, 0.0]]))
    noise = torch.tensor([[[0.0, -0.2], [0.9, 0.0]]])  # one example: G_01 = −0.2, G_10 = 0.9
    mask = model.sample_mask(1, noise)
    # a_01 = (1 − 0.2)/0.5 = 1.6 > 0 → edge 0→1 on; a_10 = (−0.5 + 0.9)/0.5 = 0.8 → on.
    assert mask[0].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    weights = torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    (mask[0] * weights).sum().backward()
    grad = model.adj_logits.grad
    assert grad is not None
    for (i, j), a, w in (((0, 1), 1.6, 2.0), ((1, 0), 0.8, 3.0)):
        expected = w * _sigmoid(a) * (1 - _sigmoid(a)) / 0.5
        assert float(grad[i, j]) == pytest.approx(expected, rel=1e-5)
    assert float(grad[0, 0]) == 0.0 and float(grad[1, 1]) == 0.0  # no self-loops, no gradient

    # A negative draw turns the edge off in the forward pass, and still passes a gradient.
    off = model.sample_mask(1, torch.tensor([[[0.0, -3.0], [-1.0, 0.0]]]))
    assert off[0].tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_gumbel_mask_frequency_is_the_edge_probability() -> None:
    torch.manual_seed(0)
    model = CausalStructureModel(3, latent_dim=1, hidden_dim=1)
    with torch.no_grad():
        model.adj_logits.copy_(torch.tensor([[0.0, 1.5, -1.0], [0.3, 0.0, 2.0], [-2.0, 0.0, 0.0]]))
    freq = model.sample_mask(20_000).mean(dim=0)
    probs = model.edge_probabilities()
    assert torch.allclose(freq, probs.detach(), atol=0.015)


def test_eval_mode_uses_the_point_estimate_graph() -> None:
    model = CausalStructureModel(3, latent_dim=2, hidden_dim=4).eval()
    with torch.no_grad():
        model.adj_logits.copy_(torch.tensor([[0.0, 2.0, -2.0], [-2.0, 0.0, 0.1], [0.0, -3.0, 0.0]]))
    adj = model.adjacency(model.edge_probabilities(), batch=5)
    assert adj.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


def test_rising_schedule_is_off_then_linear_to_lambda() -> None:
    cfg = build_config("healthy", {"epochs": 30, "acyclic_start": 1 / 3, "lambda_acyclic": 2.0})
    assert [acyclic_weight(e, cfg) for e in (1, 10)] == [0.0, 0.0]
    assert acyclic_weight(11, cfg) == pytest.approx(2.0 / 20)
    assert acyclic_weight(20, cfg) == pytest.approx(1.0)
    assert acyclic_weight(30, cfg) == pytest.approx(2.0)
    constant = build_config("standard", {"acyclic_schedule": "constant"})
    assert acyclic_weight(1, constant) == constant.lambda_acyclic


def test_term_gradients_sum_to_the_total_and_norm_each_term() -> None:
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    v = torch.tensor([3.0], requires_grad=True)
    terms = LossBreakdown(
        recon=(w**2).sum(),  # ∇_w = 2w = (2, 4), ‖·‖ = √20
        sparse=3.0 * v.sum(),  # ∇_v = 3
        acyclic=torch.zeros(()),  # off: no gradient
        disen=(w * v).sum(),  # ∇_w = (3, 3), ∇_v = 3: ‖·‖ = √27
    )
    grads, norms = term_gradients(terms, [w, v])
    assert norms["recon"] == pytest.approx(math.sqrt(20))
    assert norms["sparse"] == pytest.approx(3.0)
    assert norms["acyclic"] == 0.0
    assert norms["disen"] == pytest.approx(math.sqrt(27))
    assert grads[0].tolist() == [5.0, 7.0] and grads[1].tolist() == [6.0]


def test_rising_penalty_drives_h_to_zero_on_a_known_dag() -> None:
    cfg = build_config("healthy", {"dataset": "synthetic", "synthetic_nodes": 6,
                                   "synthetic_edges": 6, "synthetic_samples": 600,
                                   "epochs": 24, "seed": 1, "lambda_acyclic": 10.0})
    result = train(cfg, load_dataset(cfg), "h-test")

    def h(record: dict[str, float]) -> float:
        # loss_acyclic is weighted: λ(t)·h(P). Divide the schedule out to read h itself.
        return record["loss_acyclic"] / acyclic_weight(int(record["epoch"]), cfg)

    penalised = [r for r in result.history if acyclic_weight(r["epoch"], cfg) > 0]
    assert all(r["loss_acyclic"] == 0 for r in result.history[: -len(penalised)])
    # The data's graph is a DAG: as the penalty rises, h(P) falls by more than 10×.
    assert h(penalised[-1]) < 0.1 * h(penalised[0])
    assert penalised[-1]["grad_norm_acyclic"] > 0 and penalised[-1]["update_ratio"] > 0


def test_healthy_preset_recovers_most_of_a_small_graph() -> None:
    """A behaviour check, not a benchmark: 10 nodes, MLP SEM, a test-sized budget."""
    cfg = build_config("healthy", {"dataset": "synthetic", "synthetic_nodes": 10,
                                   "synthetic_edges": 10, "synthetic_samples": 2000,
                                   "synthetic_mechanism": "mlp", "epochs": 30, "seed": 3})
    result = train(cfg, load_dataset(cfg), "healthy-test")
    best = result.best_record
    assert best is not None and best["edges_tuned"] > 0
    assert best["f1_skeleton"] >= 0.6
    assert best["f1"] >= 0.5
    assert best["clip_pct"] <= 10
