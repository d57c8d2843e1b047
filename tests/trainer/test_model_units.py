"""The model's promises one at a time (trainer/model.py): shapes, no self-loops, a variable
reconstructed from its parents only, top-k's straight-through gradient."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from trainer.model import CausalStructureModel

D, LATENT, BATCH = 4, 3, 5


def model(**kwargs: Any) -> CausalStructureModel:
    torch.manual_seed(0)
    return CausalStructureModel(D, latent_dim=LATENT, hidden_dim=6, **kwargs)


def test_forward_shapes_in_training_and_eval() -> None:
    m = model()
    x = torch.randn(BATCH, D)
    for mode in (m.train, m.eval):
        mode()
        x_hat, z, probs = m(x)
        assert x_hat.shape == (BATCH, D)
        assert z.shape == (BATCH, D, LATENT)
        assert probs.shape == (D, D)
    # Training draws one mask per example, evaluation one graph for the batch.
    assert m.train().adjacency(m.edge_probabilities(), BATCH).shape == (BATCH, D, D)
    assert m.eval().adjacency(m.edge_probabilities(), BATCH).shape == (D, D)


def test_no_self_loops_whatever_the_logits() -> None:
    m = model()
    with torch.no_grad():
        m.adj_logits.fill_(20.0)  # every edge, the diagonal too, as likely as can be
    probs = m.edge_probabilities()
    assert torch.all(torch.diagonal(probs) == 0)
    assert torch.all(probs + torch.eye(D) > 0.99)
    assert torch.all(torch.diagonal(m.sample_mask(50), dim1=1, dim2=2) == 0)
    assert m.off_diagonal_logits().shape == (D * (D - 1),)


@pytest.mark.parametrize("sparsify_method", ["topk", "sigmoid"])
def test_a_variable_is_reconstructed_from_its_parents_only(sparsify_method: str) -> None:
    """Through graph A (A[j, i] = edge j → i), ∂x̂_i/∂x_j is non-zero exactly for i's parents."""
    m = model(sparsify_method=sparsify_method)
    graph = torch.zeros(D, D)
    graph[0, 2] = graph[1, 2] = graph[2, 3] = 1.0  # 0 → 2 ← 1, 2 → 3
    x = torch.randn(BATCH, D, requires_grad=True)
    x_hat, _, _ = m(x, graph)
    for i in range(D):
        (grad,) = torch.autograd.grad(x_hat[:, i].sum(), x, retain_graph=True)
        reads = {j for j in range(D) if grad[:, j].abs().sum() > 0}
        assert reads == {j for j in range(D) if graph[j, i]}, (i, reads)


def test_without_edges_the_reconstruction_ignores_the_data() -> None:
    m = model()
    x_hat, _, _ = m(torch.randn(BATCH, D), torch.zeros(D, D))
    other, _, _ = m(torch.randn(BATCH, D), torch.zeros(D, D))
    assert torch.equal(x_hat, other)


def test_topk_keeps_the_k_likeliest_edges_and_passes_gradient_to_the_rest() -> None:
    m = model(topk_edges=2, edge_mask="soft")
    with torch.no_grad():
        m.adj_logits.copy_(torch.arange(D * D, dtype=torch.float32).view(D, D) / 4)
    probs = m.edge_probabilities()
    keep = m.topk_keep(probs)
    assert int(keep.sum()) == 2
    assert keep[3, 2] == 1 and keep[3, 1] == 1  # the two largest off-diagonal logits
    adjacency = m.adjacency(probs, BATCH)
    assert torch.equal(adjacency != 0, keep.bool())
    # Straight-through: a dropped edge still learns how much it would help.
    adjacency.sum().backward()
    grad = m.adj_logits.grad
    assert grad is not None and grad[0, 1] > 0 and keep[0, 1] == 0
    assert torch.all(torch.diagonal(grad) == 0)


def test_topk_asks_for_no_more_edges_than_exist() -> None:
    m = model(topk_edges=100)
    assert int(m.topk_keep(m.edge_probabilities()).sum()) == D * (D - 1)


def test_soft_mask_is_the_probabilities_themselves() -> None:
    m = model(edge_mask="soft", sparsify_method="sigmoid")
    probs = m.edge_probabilities()
    assert torch.equal(m.train().adjacency(probs, BATCH), probs)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"sparsify_method": "lasso"}, "sparsify_method"),
    ({"edge_mask": "hard"}, "edge_mask"),
])
def test_unknown_options_are_refused_by_name(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        model(**kwargs)
