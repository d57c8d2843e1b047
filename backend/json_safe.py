"""Python values made strict JSON: what `json.dumps(..., allow_nan=False)` and a JSON column take.

Rule evidence, error echoes of a request's input and bench reports can hold NaN or infinity
(a diverged loss, a body sent with `NaN`), which JSON cannot carry: they become null.
"""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` with non-finite floats as None, bytes as text, tuples as lists, keys as str."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):  # a request body that was not JSON
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
