"""Numbers as text, written the same way wherever the dashboard shows one.

A value the API does not have (None, NaN) reads "—", never "None". Scores (F1, precision,
recall) carry two decimals: on a 13-edge reference one edge moves F1 by ~0.05, so a third
decimal is noise. Percentages carry one decimal; anything else three significant digits,
in scientific notation when it is tiny or huge (λ = 1e-5, a loss of 2.2e4), as the value a
user would type into the launch form.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"
SIGNIFICANT = 3
SCORE_DECIMALS = 2
PERCENT_DECIMALS = 1
# Below SMALL or from LARGE on, positional notation hides the magnitude ("0.0000224").
SMALL = 1e-3
LARGE = 1e5

SCORES = frozenset({"f1", "f1_skeleton", "precision", "recall", "f1_at_best", "max_f1_seen"})
COUNTS = frozenset({"shd", "epoch", "edges_at_05", "edges_tuned", "edges_topk"})


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _scientific(value: float, digits: int) -> str:
    """`2.24e-10`, `1e-5`: mantissa without trailing zeros, exponent without padding."""
    mantissa, _, exponent = f"{value:.{digits - 1}e}".partition("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def number(value: Any, *, digits: int = SIGNIFICANT) -> str:
    """Any config or metric value: integers as integers, floats to `digits` significant
    digits, booleans as the launch form spells them, text as it is."""
    if _missing(value):
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, float):
        return str(value)
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude < SMALL or magnitude >= LARGE:
        return _scientific(value, digits)
    if value.is_integer():
        return str(int(value))
    # Round to `digits` significant digits, then print without an exponent or padding.
    decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent(value: Any) -> str:
    """A share or clip %: `86.0%`, `100%`; a share far below 0.1% keeps its magnitude
    (`1.1e-9%`): a regularizer's vanishing share is the finding, not a rounding to 0."""
    if _missing(value):
        return MISSING
    value = float(value)
    if value == 0 or value.is_integer():
        return f"{int(value)}%"
    if abs(value) < 10 ** -PERCENT_DECIMALS:
        return f"{number(value, digits=2)}%"
    return f"{value:.{PERCENT_DECIMALS}f}%"


def score(value: Any) -> str:
    """An F1, precision or recall: `0.21`."""
    if _missing(value):
        return MISSING
    return f"{float(value):.{SCORE_DECIMALS}f}"


def count(value: Any) -> str:
    """An SHD or an edge count: an integer, even when JSON brought it as 13.0."""
    if _missing(value):
        return MISSING
    return str(round(value)) if isinstance(value, float) else str(value)


def metric(name: str, value: Any) -> str:
    """A value of the record field (or scorecard criterion) `name`, in that field's style."""
    if name in SCORES:
        return score(value)
    if name in COUNTS:
        return count(value)
    if name.endswith("_pct") or name.startswith("share_"):
        return percent(value)
    return number(value)
