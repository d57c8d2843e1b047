"""The UCI Air Quality reference graph: 13 directed edges from domain knowledge.

This is a *plausibility reference, not ground truth*. No published causal graph of this
dataset exists; several edges stand for a hidden common cause (traffic) or a part-whole
relation, and most of them could be reversed without changing what the data can show.
The empty graph already has SHD 13 against it, so SHD alone rewards predicting nothing:
F1 and skeleton F1 (direction ignored) are the headline numbers on UCI.

The edge list is kept here as code, so a run never needs the shared data folder; a test
checks it against the shared `uci_reference_graph.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Confidence = Literal["high", "medium", "low"]

# Column names exactly as the CSV spells them, in file order.
UCI_VARIABLES: tuple[str, ...] = (
    "CO(GT)",
    "PT08.S1(CO)",
    "NMHC(GT)",
    "C6H6(GT)",
    "PT08.S2(NMHC)",
    "NOx(GT)",
    "PT08.S3(NOx)",
    "NO2(GT)",
    "PT08.S4(NO2)",
    "PT08.S5(O3)",
    "T",
    "RH",
    "AH",
)

# (cause, effect, confidence)
UCI_REFERENCE_EDGES: tuple[tuple[str, str, Confidence], ...] = (
    # S1 is the sensor built to respond to carbon monoxide, so the gas drives its reading.
    ("CO(GT)", "PT08.S1(CO)", "high"),
    # S2 is sold as the hydrocarbon sensor; the hydrocarbon level moves its resistance.
    ("NMHC(GT)", "PT08.S2(NMHC)", "high"),
    # Benzene is one of the hydrocarbons S2 reacts to; but in this file benzene is an almost
    # exact monotone function of S2, so the data may well point the other way.
    ("C6H6(GT)", "PT08.S2(NMHC)", "low"),
    # S3 targets nitrogen oxides, but once the other gases are known the link is faint.
    ("NOx(GT)", "PT08.S3(NOx)", "low"),
    # S4 targets nitrogen dioxide; the two barely correlate in this file.
    ("NO2(GT)", "PT08.S4(NO2)", "low"),
    # S5 is labelled for ozone (never measured here) yet also reacts to reducing gases like CO.
    ("CO(GT)", "PT08.S5(O3)", "medium"),
    # Humidity shifts the baseline of metal-oxide sensors; temperature is the rival parent.
    ("AH", "PT08.S4(NO2)", "medium"),
    # Warmer air holds more water, so the same moisture reads as a lower relative humidity.
    ("T", "RH", "high"),
    # Absolute humidity is derived from temperature and relative humidity in this file.
    ("T", "AH", "high"),
    # Same derivation as above: AH is computed from RH (together with T).
    ("RH", "AH", "high"),
    # Both come out of the same exhaust pipes; the arrow only stands for that shared source.
    ("CO(GT)", "C6H6(GT)", "low"),
    # Likewise a traffic co-emission; which one "causes" the other is a convention.
    ("CO(GT)", "NOx(GT)", "low"),
    # NO2 is a component of NOx, a part-whole tie that could be drawn either way.
    ("NOx(GT)", "NO2(GT)", "low"),
)


def reference_adjacency(variables: Sequence[str]) -> np.ndarray:
    """The reference graph over `variables` as an int8 `[d, d]` matrix, `adj[i, j] = 1` for i -> j.

    `variables` may be any ordering or subset of `UCI_VARIABLES` (e.g. after a column was
    dropped); edges touching a variable that is not listed are left out.
    """
    index = {name: i for i, name in enumerate(variables)}
    if len(index) != len(variables):
        raise ValueError(f"variables: duplicate names in {list(variables)}")
    unknown = [name for name in variables if name not in UCI_VARIABLES]
    if unknown:
        raise ValueError(
            f"variables: {unknown} are not UCI Air Quality columns; allowed: {list(UCI_VARIABLES)}"
        )
    adj = np.zeros((len(variables), len(variables)), dtype=np.int8)
    for cause, effect, _ in UCI_REFERENCE_EDGES:
        if cause in index and effect in index:
            adj[index[cause], index[effect]] = 1
    return adj
