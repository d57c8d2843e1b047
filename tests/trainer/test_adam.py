"""trainer/adam.py: the same steps as torch.optim.Adam (its start-up: test_startup.py)."""

from __future__ import annotations

import torch

from trainer.adam import Adam
from trainer.losses import structure_loss
from trainer.model import CausalStructureModel

D = 5


def _model() -> CausalStructureModel:
    torch.manual_seed(0)
    return CausalStructureModel(D, 4, 8, "sigmoid")


def _groups(model: CausalStructureModel) -> list[dict[str, object]]:
    sem = [p for name, p in model.named_parameters() if name != "adj_logits"]
    return [{"params": sem, "lr_scale": 1.0}, {"params": [model.adj_logits], "lr_scale": 5.0}]


def _train(model: CausalStructureModel, optimizer: torch.optim.Adam | Adam, steps: int) -> None:
    """The loop's own use: lr set per group, an lr that changes, real losses and gradients.
    The SEM group gets no gradient on even steps, so each parameter counts its own steps."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, D, generator=gen)
    torch.manual_seed(2)  # the Gumbel noise: the same draws for both optimizers
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 1e-2 * (1 + step % 3) * group["lr_scale"]
        x_hat, z, probs = model(x)
        terms = structure_loss(x, x_hat, z, probs, acyclicity="dagma", residual_variance=None,
                               lambda_recon=1.0, lambda_sparse=0.1, lambda_acyclic=0.5,
                               lambda_disen=0.1)
        optimizer.zero_grad()
        terms.total.backward()
        if step % 2 == 0:
            for p in optimizer.param_groups[0]["params"]:
                p.grad = None
        optimizer.step()


def test_every_parameter_matches_torch_adam_to_the_bit() -> None:
    ours, theirs = _model(), _model()
    _train(ours, Adam(_groups(ours), lr=1e-3), steps=40)
    _train(theirs, torch.optim.Adam(_groups(theirs), lr=1e-3), steps=40)
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(),
                                 strict=True):
        assert torch.equal(a, b), f"{name}: max difference {(a - b).abs().max().item():.3g}"
    assert not torch.equal(ours.adj_logits, _model().adj_logits), "nothing was trained"

