"""Small CSV and reference files for the `dataset=csv` tests, written into a test's tmp dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

VARIABLES = ("alpha", "beta", "gamma", "delta")
CHAIN = {"edges": [{"from": "alpha", "to": "beta"}, {"from": "beta", "to": "gamma"},
                   {"from": "gamma", "to": "delta", "why": "extra keys are ignored"}]}


def chain_samples(n: int = 120, seed: int = 0) -> np.ndarray:
    """alpha -> beta -> gamma -> delta, linear with unit noise: `[n, 4]`."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, 4))
    x[:, 0] = rng.normal(size=n)
    for j in range(1, 4):
        x[:, j] = 1.5 * x[:, j - 1] + rng.normal(size=n)
    return x


def write_csv(
    path: Path, *, sep: str = ",", decimal: str = ".", missing: str | None = None,
    header: bool = True, n: int = 120, trailing: str = "",
) -> Path:
    """The chain's samples as a CSV; every 10th beta cell is `missing` when given."""
    x = chain_samples(n)
    lines = [sep.join(VARIABLES) + trailing] if header else []
    for i, row in enumerate(x):
        cells = [f"{v:.5f}".replace(".", decimal) for v in row]
        if missing is not None and i % 10 == 3:
            cells[1] = missing
        lines.append(sep.join(cells) + trailing)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_reference(path: Path, graph: object = CHAIN) -> Path:
    path.write_text(json.dumps(graph))
    return path
