"""sortnregress: the variance-sorting baseline of Reisach, Seiler and Weichwald (2021),
"Beware of the Simulated DAG! Causal Discovery Benchmarks May Be Easy To Game" (NeurIPS).

On simulated additive-noise data the marginal variance tends to grow along the causal
order ("varsortability"). The baseline exploits exactly that and nothing else: order the
variables by increasing marginal variance, then regress each variable on all of its
predecessors in that order with a sparse (adaptive) lasso. If it scores well, a benchmark
rewards variance sorting rather than causal discovery; standardizing the data removes the
signal it relies on.

Follows the paper's reference code: an OLS fit gives adaptive-lasso weights |beta_OLS|,
LassoLarsIC (BIC) is fitted on the reweighted covariates, and the coefficients are mapped
back. Edges are the nonzero coefficients.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LassoLarsIC, LinearRegression


def sortnregress(x: np.ndarray) -> np.ndarray:
    """Weighted adjacency `[d, d]` (W[i, j] != 0 means i -> j) estimated from `x` `[n, d]`."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"x must be [n, d] with d >= 2, got shape {x.shape}")
    d = x.shape[1]
    w = np.zeros((d, d))
    increasing = np.argsort(x.var(axis=0), kind="stable")
    ols, lasso = LinearRegression(), LassoLarsIC(criterion="bic")
    for k in range(1, d):
        covariates, target = increasing[:k], increasing[k]
        y = x[:, target]
        ols.fit(x[:, covariates], y)
        # Adaptive lasso: covariates scaled by |OLS coefficient| are penalised less when
        # their OLS effect is large (Zou 2006), as in the paper's code.
        scale = np.abs(ols.coef_)
        lasso.fit(x[:, covariates] * scale, y)
        w[covariates, target] = lasso.coef_ * scale
    return w
