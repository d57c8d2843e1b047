"""Synthetic data with a known graph: an Erdos-Renyi DAG and a structural equation model.

Follows the generators of NOTEARS (Zheng et al. 2018; `notears/utils.py`: `simulate_dag`
with graph type "ER", `simulate_parameter`, `simulate_nonlinear_sem` with sem type "mlp"),
so results are comparable with that literature. Every draw comes from the `rng` passed in:
the same seed gives the same graph and the same samples.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Mechanism = Literal["linear", "mlp"]

# NOTEARS' simulate_parameter range: |w| in [0.5, 2.0] keeps every edge detectable
# (never near zero) without letting a chain of edges blow up too fast.
WEIGHT_RANGE = (0.5, 2.0)
MLP_HIDDEN_UNITS = 100


def simulate_er_dag(d: int, expected_edges: int, rng: np.random.Generator) -> np.ndarray:
    """A random DAG on `d` nodes with `expected_edges` edges on average.

    Each pair below the diagonal is an edge with probability
    p = expected_edges / (d (d - 1) / 2), which is acyclic by construction; the nodes are
    then randomly relabelled so the causal order is not the column order.

    Returns: int8 `[d, d]`, `adj[i, j] = 1` means i -> j.
    """
    if d < 2:
        raise ValueError(f"d: need at least 2 nodes (got {d})")
    max_edges = d * (d - 1) // 2
    if not 0 <= expected_edges <= max_edges:
        raise ValueError(
            f"expected_edges: must be in [0, {max_edges}] for d={d} (got {expected_edges})"
        )
    p = expected_edges / max_edges
    lower = np.tril(rng.random((d, d)) < p, k=-1)
    perm = rng.permutation(d)
    # Relabelling rows and columns together keeps the graph a DAG.
    return lower[np.ix_(perm, perm)].astype(np.int8)


def topological_order(adj: np.ndarray) -> list[int]:
    """Nodes ordered so every parent comes before its children (Kahn's algorithm)."""
    in_degree = adj.astype(bool).sum(axis=0)
    ready = [j for j in range(adj.shape[0]) if in_degree[j] == 0]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for j in np.flatnonzero(adj[i]):
            in_degree[j] -= 1
            if in_degree[j] == 0:
                ready.append(int(j))
    if len(order) != adj.shape[0]:
        raise ValueError("adj: the graph has a cycle; a structural equation model needs a DAG")
    return order


def simulate_sem(
    adj: np.ndarray,
    n: int,
    mechanism: Mechanism,
    noise_scale: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """`n` samples of X_j = f_j(X_parents(j)) + N(0, noise_scale^2), in topological order.

    linear: f_j(x) = x @ w_j, weights uniform in ±[0.5, 2.0] (NOTEARS' simulate_parameter).
    mlp:    f_j(x) = sigmoid(x @ W1) @ w2 with 100 hidden units, W1 and w2 uniform in
            ±[0.5, 2.0] (NOTEARS' simulate_nonlinear_sem, sem type "mlp").

    Args: adj int `[d, d]` DAG, `adj[i, j] = 1` means i -> j.
    Returns: float64 `[n, d]`.
    """
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"adj: must be a square matrix (got shape {adj.shape})")
    if n < 1:
        raise ValueError(f"n: must be >= 1 (got {n})")
    if noise_scale <= 0:
        raise ValueError(f"noise_scale: must be > 0 (got {noise_scale})")
    if mechanism not in ("linear", "mlp"):
        raise ValueError(f"mechanism: must be 'linear' or 'mlp' (got {mechanism!r})")
    d = adj.shape[0]
    x = np.zeros((n, d))
    for j in topological_order(adj):
        parents = np.flatnonzero(adj[:, j])
        noise = rng.normal(scale=noise_scale, size=n)
        if parents.size == 0:
            x[:, j] = noise
        elif mechanism == "linear":
            x[:, j] = x[:, parents] @ _signed_uniform(rng, parents.size) + noise
        else:
            x[:, j] = _random_mlp(x[:, parents], rng) + noise
    return x


def _signed_uniform(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Magnitudes uniform in WEIGHT_RANGE with a random sign."""
    magnitude = rng.uniform(*WEIGHT_RANGE, size=shape)
    sign = rng.choice(np.array([-1.0, 1.0]), size=shape)
    return magnitude * sign


def _random_mlp(parents_x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One fresh 1-hidden-layer sigmoid network applied to the parents' values `[n, k]`."""
    w1 = _signed_uniform(rng, parents_x.shape[1], MLP_HIDDEN_UNITS)  # (k, h)
    w2 = _signed_uniform(rng, MLP_HIDDEN_UNITS)  # (h,)
    # sigmoid(z) written via tanh, which cannot overflow for large |z| as exp(-z) can
    hidden = 0.5 * (1.0 + np.tanh(0.5 * (parents_x @ w1)))  # (n, h)
    return hidden @ w2
