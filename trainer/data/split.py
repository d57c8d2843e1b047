"""What every data source shares and that needs no table library: the refusal a bad file
gets, and the train / validation split sizes.

Kept apart from the file readers (uci.py, csv.py) so a synthetic run never imports pandas:
a trainer's start-up is part of every short run and probe.
"""

from __future__ import annotations

import os


class DataError(ValueError):
    """A data source was refused; the message names the file and what is wrong with it."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def split_sizes(n: int, val_fraction: float) -> tuple[int, int]:
    """(n_train, n_val): the last `val_fraction` of `n` rows validate, both splits non-empty."""
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    return n - n_val, n_val
