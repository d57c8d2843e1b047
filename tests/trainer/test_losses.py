"""Acyclicity and disentanglement terms."""

import torch

from trainer.losses import decorrelation, h_dagma, h_notears


def dag() -> torch.Tensor:
    a = torch.zeros(4, 4, dtype=torch.float64)
    a[0, 1] = 0.9
    a[1, 2] = 0.7
    a[0, 3] = 0.5
    return a


def test_notears_is_zero_on_a_dag_and_positive_on_a_cycle() -> None:
    a = dag()
    assert abs(float(h_notears(a))) < 1e-12
    a[2, 0] = 0.6  # 0→1→2→0
    assert float(h_notears(a)) > 1e-3


def test_dagma_is_zero_on_a_dag_and_positive_on_a_cycle() -> None:
    a = dag()
    assert abs(float(h_dagma(a))) < 1e-12
    a[2, 0] = 0.6
    assert float(h_dagma(a)) > 1e-3


def test_acyclicity_gradient_matches_finite_differences() -> None:
    a = (0.3 * torch.rand(4, 4, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(h_notears, (a,))
    assert torch.autograd.gradcheck(h_dagma, (a,))


def test_decorrelation_is_zero_for_uncorrelated_and_positive_for_redundant_latents() -> None:
    torch.manual_seed(0)
    b = 4096
    independent = torch.randn(b, 3, 2)
    assert float(decorrelation(independent)) < 1e-3
    base = torch.randn(b, 3, 1)
    redundant = torch.cat([base, base], dim=-1)  # both dims identical: covariance 1
    assert float(decorrelation(redundant)) > 0.5
    assert float(decorrelation(torch.randn(8, 3, 1))) == 0.0
