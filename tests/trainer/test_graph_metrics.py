"""Graph metrics against hand-computed cases."""

import numpy as np
import pytest

from trainer.graph_metrics import (
    is_acyclic,
    score_graph,
    threshold_graph,
    topk_graph,
    tuned_threshold,
)


def adj(d: int, edges: list[tuple[int, int]]) -> np.ndarray:
    a = np.zeros((d, d), dtype=np.int8)
    for i, j in edges:
        a[i, j] = 1
    return a


def test_identical_graph_scores_perfectly() -> None:
    ref = adj(4, [(0, 1), (1, 2), (2, 3)])
    s = score_graph(ref, ref)
    assert (s.shd, s.precision, s.recall, s.f1, s.f1_skeleton) == (0, 1.0, 1.0, 1.0, 1.0)


def test_empty_prediction_costs_one_per_reference_edge() -> None:
    ref = adj(4, [(0, 1), (1, 2), (2, 3)])
    s = score_graph(np.zeros((4, 4), dtype=np.int8), ref)
    assert s.shd == 3
    assert (s.precision, s.recall, s.f1, s.f1_skeleton) == (0.0, 0.0, 0.0, 0.0)


def test_hand_computed_mixed_case() -> None:
    # reference 0→1, 1→2, 2→3; predicted 1→0 (reversed), 1→2 (correct), 0→3 (extra)
    ref = adj(4, [(0, 1), (1, 2), (2, 3)])
    pred = adj(4, [(1, 0), (1, 2), (0, 3)])
    s = score_graph(pred, ref)
    # reversed 1 + extra 1 + missing 2→3 1
    assert s.shd == 3
    assert s.precision == pytest.approx(1 / 3)
    assert s.recall == pytest.approx(1 / 3)
    assert s.f1 == pytest.approx(1 / 3)
    # skeleton: pred {01, 12, 03}, ref {01, 12, 23}: tp 2, precision 2/3, recall 2/3
    assert s.f1_skeleton == pytest.approx(2 / 3)


def test_bidirected_prediction_counts_once_in_shd() -> None:
    ref = adj(3, [(0, 1)])
    pred = adj(3, [(0, 1), (1, 0)])
    s = score_graph(pred, ref)
    assert s.shd == 1
    assert s.precision == pytest.approx(0.5)
    assert s.recall == 1.0


def test_malformed_graphs_are_rejected() -> None:
    with pytest.raises(ValueError, match="square"):
        score_graph(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="0 and 1"):
        score_graph(np.full((2, 2), 0.5), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape mismatch"):
        score_graph(np.zeros((2, 2)), np.zeros((3, 3)))


def test_is_acyclic() -> None:
    assert is_acyclic(adj(3, [(0, 1), (1, 2), (0, 2)]))
    assert not is_acyclic(adj(3, [(0, 1), (1, 2), (2, 0)]))
    assert not is_acyclic(adj(2, [(0, 1), (1, 0)]))


def test_tuned_threshold_is_smallest_acyclic_threshold() -> None:
    probs = np.array(
        [
            [0.0, 0.9, 0.2],
            [0.3, 0.0, 0.8],
            [0.4, 0.1, 0.0],
        ]
    )
    # t=0.4 keeps 0→1 (0.9), 1→2 (0.8): acyclic; t=0.3 adds 2→0 (0.4): cycle 0→1→2→0
    t = tuned_threshold(probs)
    assert t == pytest.approx(0.4)
    assert threshold_graph(probs, t).sum() == 2
    assert is_acyclic(threshold_graph(probs, t))


def test_collapsed_probabilities_give_empty_tuned_graph() -> None:
    probs = np.full((4, 4), 0.3)
    np.fill_diagonal(probs, 0.0)
    t = tuned_threshold(probs)
    assert t == pytest.approx(0.3)
    assert threshold_graph(probs, t).sum() == 0


def test_topk_keeps_k_largest_off_diagonal() -> None:
    probs = np.array(
        [
            [0.99, 0.9, 0.2],
            [0.3, 0.99, 0.8],
            [0.4, 0.1, 0.99],
        ]
    )
    g = topk_graph(probs, 2)
    assert g.sum() == 2
    assert g[0, 1] == 1 and g[1, 2] == 1
    assert np.trace(g) == 0
    assert topk_graph(probs, 100).sum() == 6
