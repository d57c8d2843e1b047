"""Neural causal-structure model: adjacency logits over d variables and per-variable SEMs.

Each variable x_j is encoded to a latent z_j; each variable x_i is reconstructed from the
latents of its parents, weighted by the learned edge strengths:

    P      = sigmoid(L) ∘ (1 - I)                   edge probabilities, L ∈ R^{d×d}
    A      = sparsify(P)                           topk mask or P itself (docs/model.md)
    z_j    = enc_j(x_j)                            z_j ∈ R^k
    m_i    = Σ_j A[j, i] z_j                       message from i's parents
    x̂_i    = dec_i(m_i)

The structure-learning objective (docs/model.md) is

    λ_recon·‖X − X̂‖²/(n·d) + λ_sparse·‖P‖₁ + λ_acyclic·h(P) + λ_disen·D(Z)

with h the NOTEARS (Zheng et al. 2018) or DAGMA (Bello et al. 2022) acyclicity function.
A[j, i] is the edge j → i, as in NOTEARS' W.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PerVariableMLP(nn.Module):
    """d independent two-layer MLPs, one per variable, evaluated as one batched einsum."""

    def __init__(self, d: int, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(d, in_dim, hidden_dim))
        self.b1 = nn.Parameter(torch.zeros(d, hidden_dim))
        self.w2 = nn.Parameter(torch.empty(d, hidden_dim, out_dim))
        self.b2 = nn.Parameter(torch.zeros(d, out_dim))
        # Same fan-in scaling as nn.Linear, per variable.
        nn.init.uniform_(self.w1, -1 / math.sqrt(in_dim), 1 / math.sqrt(in_dim))
        nn.init.uniform_(self.w2, -1 / math.sqrt(hidden_dim), 1 / math.sqrt(hidden_dim))

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, d, in_dim) -> (B, d, out_dim)
        h = torch.tanh(torch.einsum("bdi,dih->bdh", x, self.w1) + self.b1)
        return torch.einsum("bdh,dho->bdo", h, self.w2) + self.b2


class CausalStructureModel(nn.Module):
    """Adjacency logits L plus per-variable encoders and decoders (docs/model.md)."""

    def __init__(
        self,
        d: int,
        latent_dim: int,
        hidden_dim: int,
        sparsify_method: str = "topk",
        topk_edges: int | None = None,
    ) -> None:
        super().__init__()
        if sparsify_method not in ("topk", "sigmoid"):
            raise ValueError(f"sparsify_method: 'topk' or 'sigmoid', got {sparsify_method!r}")
        self.d = d
        self.sparsify_method = sparsify_method
        self.topk_edges = topk_edges if topk_edges is not None else d
        # Small random logits: every edge starts near p = 0.5 and undecided.
        self.adj_logits = nn.Parameter(0.01 * torch.randn(d, d))
        self.register_buffer("off_diagonal", 1.0 - torch.eye(d))
        self.encoder = PerVariableMLP(d, 1, hidden_dim, latent_dim)
        self.decoder = PerVariableMLP(d, latent_dim, hidden_dim, 1)

    def edge_probabilities(self) -> Tensor:
        """P = sigmoid(L) with the diagonal forced to 0 (no self-loops). (d, d)"""
        return torch.sigmoid(self.adj_logits) * self.off_diagonal

    def sparsify(self, probs: Tensor) -> Tensor:
        """The adjacency the decoders use.

        `topk` keeps the k largest probabilities and zeroes the rest in the forward pass; the
        backward pass is straight-through (Bengio et al. 2013), so a dropped edge still learns
        how much it would help and can re-enter the top k. `sigmoid` uses P as it is.
        """
        if self.sparsify_method == "sigmoid":
            return probs
        k = min(self.topk_edges, self.d * (self.d - 1))
        flat = probs.flatten()
        keep = torch.zeros_like(flat)
        keep[torch.topk(flat, k).indices] = 1.0
        hard = probs * keep.view_as(probs)
        return probs + (hard - probs).detach()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, d) -> (x_hat (B, d), latents (B, d, k), edge probabilities (d, d))."""
        probs = self.edge_probabilities()
        adj = self.sparsify(probs)
        z = self.encoder(x.unsqueeze(-1))  # (B, d, k)
        messages = torch.einsum("ji,bjk->bik", adj, z)  # m_i = Σ_j A[j, i] z_j
        x_hat = self.decoder(messages).squeeze(-1)  # (B, d)
        return x_hat, z, probs

    def off_diagonal_logits(self) -> Tensor:
        """The d(d-1) logits that can be edges. (d*(d-1),)"""
        mask = self.off_diagonal.bool()
        return self.adj_logits[mask]
