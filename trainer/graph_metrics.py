"""Graph accuracy against a reference adjacency, and the label-free thresholds (docs/metrics.md).

Adjacency matrices are (d, d) with B[i, j] = 1 meaning the edge i → j; diagonals are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _binary(adj: np.ndarray, name: str) -> np.ndarray:
    adj = np.asarray(adj)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {adj.shape}")
    if not np.isin(adj, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1")
    out = adj.astype(bool)
    np.fill_diagonal(out, False)
    return out


def is_acyclic(adj: np.ndarray) -> bool:
    """True when the directed graph has no cycle (Kahn's algorithm)."""
    b = np.asarray(adj, dtype=bool).copy()
    np.fill_diagonal(b, False)
    indegree = b.sum(axis=0)
    ready = list(np.flatnonzero(indegree == 0))
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for child in np.flatnonzero(b[node]):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return seen == b.shape[0]


@dataclass(frozen=True)
class GraphScores:
    shd: int
    precision: float
    recall: float
    f1: float
    f1_skeleton: float


def _f1(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score_graph(predicted: np.ndarray, reference: np.ndarray) -> GraphScores:
    """SHD, directed precision/recall/F1 and skeleton F1 of `predicted` against `reference`.

    SHD counts unordered pairs {i, j} whose connection differs (none, i→j, j→i or both):
    a missing, extra or reversed edge each costs 1, as in NOTEARS' count_accuracy.
    Precision is 0 when nothing is predicted. Skeleton F1 ignores direction.
    """
    pred = _binary(predicted, "predicted")
    true = _binary(reference, "reference")
    if pred.shape != true.shape:
        raise ValueError(f"shape mismatch: predicted {pred.shape} vs reference {true.shape}")
    upper = np.triu(np.ones_like(pred, dtype=bool), k=1)
    # Encode each pair's state as 2 bits: (i→j, j→i).
    pred_state = pred.astype(int) + 2 * pred.T.astype(int)
    true_state = true.astype(int) + 2 * true.T.astype(int)
    shd = int(((pred_state != true_state) & upper).sum())

    tp = int((pred & true).sum())
    precision, recall, f1 = _f1(tp, int(pred.sum()), int(true.sum()))

    pred_skel = (pred | pred.T) & upper
    true_skel = (true | true.T) & upper
    tp_skel = int((pred_skel & true_skel).sum())
    _, _, f1_skel = _f1(tp_skel, int(pred_skel.sum()), int(true_skel.sum()))
    return GraphScores(shd=shd, precision=precision, recall=recall, f1=f1, f1_skeleton=f1_skel)


def off_diagonal(probs: np.ndarray) -> np.ndarray:
    return probs[~np.eye(probs.shape[0], dtype=bool)]


def threshold_graph(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Edges whose probability is strictly above `threshold`, as a 0/1 matrix."""
    graph = (np.asarray(probs) > threshold).astype(np.int8)
    np.fill_diagonal(graph, 0)
    return graph


def tuned_threshold(probs: np.ndarray) -> float:
    """The smallest threshold t whose graph {P > t} is acyclic.

    Chosen without the reference graph: only acyclicity of the model's own output decides.
    Candidates are the distinct off-diagonal probabilities; the largest always yields the
    empty graph, so a t always exists. When all probabilities are equal (collapsed logits)
    every smaller threshold keeps all d(d-1) edges, a cycle, so t is that value and the
    tuned graph is empty.
    """
    candidates = np.unique(off_diagonal(np.asarray(probs, dtype=np.float64)))
    # Acyclicity only improves as t grows: bisect for the first acyclic candidate.
    lo, hi = 0, len(candidates) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if is_acyclic(threshold_graph(probs, candidates[mid])):
            hi = mid
        else:
            lo = mid + 1
    return float(candidates[lo])


def topk_graph(probs: np.ndarray, k: int) -> np.ndarray:
    """The k off-diagonal entries with the largest probabilities (ties broken by index)."""
    d = probs.shape[0]
    masked = np.asarray(probs, dtype=np.float64).copy()
    np.fill_diagonal(masked, -np.inf)
    k = max(0, min(k, d * (d - 1)))
    graph = np.zeros((d, d), dtype=np.int8)
    if k:
        idx = np.argsort(-masked, axis=None, kind="stable")[:k]
        graph.flat[idx] = 1
    return graph
