"""The four terms of the objective, returned as a named breakdown (docs/model.md)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def h_notears(adj: Tensor) -> Tensor:
    """NOTEARS acyclicity h(A) = tr(exp(A ∘ A)) − d (Zheng et al. 2018).

    h(A) = 0 exactly when the weighted graph of A is acyclic, > 0 otherwise.
    """
    d = adj.shape[0]
    return torch.trace(torch.linalg.matrix_exp(adj * adj)) - d


def h_dagma(adj: Tensor, s: float = 1.0) -> Tensor:
    """DAGMA log-det acyclicity h(A) = −log det(sI − A ∘ A) + d log s (Bello et al. 2022).

    Valid (≥ 0, = 0 iff acyclic) while the spectral radius of A ∘ A is below s; edge
    probabilities are in [0, 1] so for small d this holds near a DAG. Outside that region
    the determinant can turn non-positive: we return +inf, which stops the run with a reason.
    """
    d = adj.shape[0]
    eye = torch.eye(d, dtype=adj.dtype, device=adj.device)
    sign, logabsdet = torch.linalg.slogdet(s * eye - adj * adj)
    if sign <= 0:
        return torch.full((), float("inf"), dtype=adj.dtype, device=adj.device)
    return -logabsdet + d * torch.log(torch.tensor(s, dtype=adj.dtype))


def decorrelation(latents: Tensor) -> Tensor:
    """Disentanglement penalty: mean squared off-diagonal covariance within each variable's latent.

    latents: (B, d, k). For each variable j, C_j = cov(z_j) over the batch (k × k); the
    penalty is the mean of C_j[a, b]² over a ≠ b and j, pushing each variable's latent
    dimensions to carry non-redundant information. 0 when k = 1.
    """
    b, _, k = latents.shape
    if k < 2 or b < 2:
        return latents.new_zeros(())
    centred = latents - latents.mean(dim=0, keepdim=True)
    cov = torch.einsum("bja,bjc->jac", centred, centred) / (b - 1)  # (d, k, k)
    off = cov * (1.0 - torch.eye(k, dtype=cov.dtype, device=cov.device))
    return (off**2).sum(dim=(1, 2)).mean() / (k * (k - 1))


@dataclass(frozen=True)
class LossBreakdown:
    """Weighted loss terms (each already multiplied by its λ) and their sum."""

    recon: Tensor
    sparse: Tensor
    acyclic: Tensor
    disen: Tensor

    @property
    def total(self) -> Tensor:
        return self.recon + self.sparse + self.acyclic + self.disen


def structure_loss(
    x: Tensor,
    x_hat: Tensor,
    latents: Tensor,
    probs: Tensor,
    *,
    lambda_recon: float,
    lambda_sparse: float,
    lambda_acyclic: float,
    lambda_disen: float,
    acyclicity: str = "notears",
    residual_variance: Tensor | None = None,
) -> LossBreakdown:
    """λ_recon·MSE + λ_sparse·(1/d)Σ_{i≠j} P_ij + λ_acyclic·h(P) + λ_disen·D(Z).

    Sparsity is the expected number of parents per variable, as the MSE is the error per
    variable: one edge into x_i costs λ_sparse/d and must buy that much of the MSE, which
    it does when it lowers x_i's own squared error by λ_sparse. Neither scale grows with
    d or n, so one λ_sparse means the same on 5 variables and on 50.

    `residual_variance` (d,), when given, divides each variable's squared error by it
    (`recon_weighting="residual"`, docs/model.md): the gradient of a Gaussian likelihood
    with one noise variance per variable, as in GOLEM-NV (Ng et al. 2020).
    """
    h = h_notears if acyclicity == "notears" else h_dagma
    d = probs.shape[0]
    squared = (x - x_hat) ** 2
    if residual_variance is not None:
        squared = squared / residual_variance
    return LossBreakdown(
        recon=lambda_recon * torch.mean(squared),
        sparse=lambda_sparse * probs.abs().sum() / d,
        # Off (λ = 0, e.g. early in the rising schedule) it is not evaluated: DAGMA's h is
        # +inf outside its domain, and 0·inf would stop the run for a term that is not on.
        acyclic=lambda_acyclic * h(probs) if lambda_acyclic else probs.new_zeros(()),
        disen=lambda_disen * decorrelation(latents),
    )
