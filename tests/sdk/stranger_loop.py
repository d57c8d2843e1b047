"""A stranger's training loop, not ours (trainer/ is never imported): a tiny linear SEM.

X ≈ X · (σ(A) ⊙ W) over d variables, with adjacency logits A and weights W, trained by Adam
on the full batch. Its regularizer weights are tiny, as in the seed's failing config: the
sparsity, acyclicity and "disentanglement" (here: weight decay) terms are a vanishing share
of the loss, which the backend's `regularizers_silent` red flag names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

VARIABLES = ["a", "b", "c", "d"]
REFERENCE = [("a", "b"), ("b", "c"), ("c", "d")]  # the chain the data is drawn from


def chain_data(n: int = 256, seed: int = 0) -> torch.Tensor:
    """[n, 4] samples of a → b → c → d with unit-variance noise."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 4, generator=g)
    x = torch.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for j in range(1, 4):
        x[:, j] = 0.8 * x[:, j - 1] + noise[:, j]
    return x


class TinySEM(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.adj_logits = nn.Parameter(torch.zeros(d, d))
        init = torch.randn(d, d, generator=torch.Generator().manual_seed(1))
        self.weights = nn.Parameter(0.1 * init)
        self.register_buffer("off_diagonal", 1.0 - torch.eye(d))

    def probabilities(self) -> torch.Tensor:  # [d, d], P[i, j] = edge i → j
        return torch.sigmoid(self.adj_logits) * self.off_diagonal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ (self.probabilities() * self.weights)


def train(
    run: Any,
    epochs: int,
    *,
    on_epoch: Callable[[int], None] | None = None,
    graph_every: int = 5,
    lambdas: tuple[float, float, float] = (1e-7, 1e-7, 1e-7),
) -> list[dict[str, float]]:
    """Train for `epochs`, logging each epoch to `run`; returns what was logged."""
    torch.manual_seed(0)
    x = chain_data()
    model = TinySEM(x.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    logged = []
    for epoch in range(1, epochs + 1):
        opt.zero_grad()
        p = model.probabilities()
        w = p * model.weights
        recon = ((x - model(x)) ** 2).mean()
        sparse = lambdas[0] * p.sum()
        acyclic = lambdas[1] * (torch.trace(torch.matrix_exp(w * w)) - w.shape[0])
        disen = lambdas[2] * (model.weights**2).sum()
        loss = recon + sparse + acyclic + disen
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
        opt.step()
        logits = model.adj_logits.detach()[model.off_diagonal.bool()]
        values = {
            "loss_total": loss.item(),
            "loss_recon": recon.item(),
            "loss_sparse": sparse.item(),
            "loss_acyclic": acyclic.item(),
            "loss_disen": disen.item(),
            "lr": opt.param_groups[0]["lr"],
            "grad_norm_mean": grad_norm,
            "grad_norm_max": grad_norm,
            "clip_pct": 100.0 if grad_norm > 1.0 else 0.0,
            "logit_mean": logits.mean().item(),
            "logit_std": logits.std(unbiased=False).item(),
            "edges_at_05": int((model.probabilities() > 0.5).sum()),
            # The stranger's own numbers: stored and charted as custom.
            "train/mse": recon.item(),
            "weight_norm": model.weights.detach().norm().item(),
        }
        run.log(values, step=epoch * 10)
        if epoch % graph_every == 0:
            run.log_graph(model.probabilities().detach())
        logged.append(values)
        if on_epoch is not None:
            on_epoch(epoch)
    return logged
