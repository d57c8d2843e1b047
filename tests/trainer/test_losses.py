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


def test_residual_weighting_divides_each_variables_squared_error() -> None:
    from trainer.losses import structure_loss

    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x_hat = torch.tensor([[0.0, 2.0], [3.0, 2.0]])  # squared errors: col 0 (1, 0), col 1 (0, 4)
    probs = torch.zeros(2, 2)
    latents = torch.zeros(2, 2, 1)
    weights = {"lambda_recon": 2.0, "lambda_sparse": 0.0, "lambda_acyclic": 0.0,
               "lambda_disen": 0.0}
    plain = structure_loss(x, x_hat, latents, probs, **weights)
    assert float(plain.recon) == 2.0 * (1 + 0 + 0 + 4) / 4
    scaled = structure_loss(x, x_hat, latents, probs, residual_variance=torch.tensor([0.5, 4.0]),
                            **weights)
    assert float(scaled.recon) == 2.0 * (1 / 0.5 + 4 / 4.0) / 4
