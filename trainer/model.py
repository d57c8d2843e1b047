"""Neural causal-structure model: adjacency logits over d variables and per-variable SEMs.

Each variable x_j is encoded to a latent z_j; each variable x_i is reconstructed from the
latents of its parents, gated by an edge mask:

    P      = sigmoid(L) ∘ (1 - I)                   edge probabilities, L ∈ R^{d×d}
    M      ~ GumbelSigmoid(L, τ), per example       hard 0/1 edges, straight-through (DCDI)
           (edge_mask="soft": M = P, the seed's model)
    A      = sparsify(M)                           topk keeps the k likeliest edges
    z_j    = enc_j(x_j)                            z_j ∈ R^k
    m_i    = Σ_j A[j, i] z_j                       message from i's parents
    x̂_i    = dec_i(m_i)

The structure-learning objective (docs/model.md) is

    λ_recon·‖X − X̂‖²/(n·d) + λ_sparse·mean_{i≠j} P_ij + λ_acyclic(t)·h(P) + λ_disen·D(Z)

with h the NOTEARS (Zheng et al. 2018) or DAGMA (Bello et al. 2022) acyclicity function and
λ_acyclic(t) scheduled over the epochs (SDCD, Nazaret et al. 2024). A[j, i] is the edge
j → i, as in NOTEARS' W.
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
        *,
        edge_mask: str = "gumbel",
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if sparsify_method not in ("topk", "sigmoid"):
            raise ValueError(f"sparsify_method: 'topk' or 'sigmoid', got {sparsify_method!r}")
        if edge_mask not in ("gumbel", "soft"):
            raise ValueError(f"edge_mask: 'gumbel' or 'soft', got {edge_mask!r}")
        self.d = d
        self.sparsify_method = sparsify_method
        self.edge_mask = edge_mask
        self.temperature = temperature
        self.topk_edges = topk_edges if topk_edges is not None else d
        # Small random logits: every edge starts near p = 0.5 and undecided.
        self.adj_logits = nn.Parameter(0.01 * torch.randn(d, d))
        self.register_buffer("off_diagonal", 1.0 - torch.eye(d))
        self.encoder = PerVariableMLP(d, 1, hidden_dim, latent_dim)
        self.decoder = PerVariableMLP(d, latent_dim, hidden_dim, 1)

    def edge_probabilities(self) -> Tensor:
        """P = sigmoid(L) with the diagonal forced to 0 (no self-loops). (d, d)"""
        return torch.sigmoid(self.adj_logits) * self.off_diagonal

    def topk_keep(self, probs: Tensor) -> Tensor:
        """0/1 mask of the k largest probabilities (k = topk_edges, default d). (d, d)"""
        k = min(self.topk_edges, self.d * (self.d - 1))
        keep = torch.zeros_like(probs).flatten()
        keep[torch.topk(probs.detach().flatten(), k).indices] = 1.0
        return keep.view_as(probs)

    def sparsify(self, mask: Tensor, probs: Tensor) -> Tensor:
        """The adjacency the decoders use, from the edge mask (d, d) or (B, d, d).

        `topk` keeps the edges among the k most probable and zeroes the rest in the forward
        pass; the backward pass is straight-through (Bengio et al. 2013), so a dropped edge
        still learns how much it would help and can re-enter the top k. `sigmoid` uses the
        mask as it is.
        """
        if self.sparsify_method == "sigmoid":
            return mask
        hard = mask * self.topk_keep(probs)
        return mask + (hard - mask).detach()

    def sample_mask(self, batch: int, noise: Tensor | None = None) -> Tensor:
        """Hard Gumbel-sigmoid edges, one draw per example, straight-through. (B, d, d)

        M = 1[σ((L + G)/τ) > ½] with G = log U − log(1 − U) logistic noise, so that
        P(M_ij = 1) = σ(L_ij) exactly; the backward pass uses ∂σ((L + G)/τ)/∂L (Maddison et
        al. 2017; Jang et al. 2017; as in DCDI, Brouillard et al. 2020). A hard 0/1 gate is
        what closes the scale loophole: a decoder can rescale a soft A[j, i] but not a 0/1 one.
        """
        if noise is None:
            u = torch.rand(batch, self.d, self.d, device=self.adj_logits.device)
            u = u.clamp(1e-6, 1 - 1e-6)
            noise = torch.log(u) - torch.log1p(-u)
        soft = torch.sigmoid((self.adj_logits + noise) / self.temperature)
        hard = (soft > 0.5).to(soft.dtype)
        return (soft + (hard - soft).detach()) * self.off_diagonal

    def adjacency(self, probs: Tensor, batch: int) -> Tensor:
        """A for a batch of `batch` examples: (B, d, d) when sampled, (d, d) otherwise.

        In training a Gumbel mask is drawn per example; in eval mode the point estimate
        1[P > ½] is used, the graph the metrics score.
        """
        if self.edge_mask == "soft":
            mask = probs
        elif self.training:
            mask = self.sample_mask(batch)
        else:
            mask = (probs > 0.5).to(probs.dtype)
        return self.sparsify(mask, probs)

    def forward(self, x: Tensor, graph: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, d) -> (x_hat (B, d), latents (B, d, k), edge probabilities (d, d)).

        `graph` (d, d) 0/1 replaces the learned mask: validation reconstructs through the
        graph the run reports, so val_recon scores that graph.
        """
        probs = self.edge_probabilities()
        adj = graph if graph is not None else self.adjacency(probs, x.shape[0])
        z = self.encoder(x.unsqueeze(-1))  # (B, d, k)
        if adj.dim() == 3:
            messages = torch.einsum("bji,bjk->bik", adj, z)  # m_i = Σ_j A_b[j, i] z_j
        else:
            messages = torch.einsum("ji,bjk->bik", adj, z)
        x_hat = self.decoder(messages).squeeze(-1)  # (B, d)
        return x_hat, z, probs

    def off_diagonal_logits(self) -> Tensor:
        """The d(d-1) logits that can be edges. (d*(d-1),)"""
        mask = self.off_diagonal.bool()
        return self.adj_logits[mask]
