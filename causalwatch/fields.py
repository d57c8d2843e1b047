"""What the user hands the SDK may be: logged values (EpochRecord fields go into the record,
other keys into `custom`), steps, graphs, the config and the variables.

The rules are derived from `trainer.protocol.EpochRecord` (types and bounds), never copied,
so a value the SDK accepts is one the backend stores. Every check raises a `ValueError`
naming the key, in the caller's frame: a bad value is reported where it was logged, not an
epoch later by a refusal in a log line.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainer.protocol import (
    CUSTOM_KEY_PATTERN,
    LOSS_TERMS,
    MAX_CUSTOM_KEYS,
    MAX_INT,
    EpochRecord,
)

MAX_GRAPH_SIZE = 500  # trainer.protocol.GraphSnapshot's bound
# Set by the SDK itself: a user's key of the same name is kept as a custom value.
RESERVED = frozenset({"run_id", "epoch", "step", "custom"})
_CUSTOM_KEY = re.compile(CUSTOM_KEY_PATTERN)


@dataclass(frozen=True)
class FieldSpec:
    """One EpochRecord field as the SDK checks it: its kind and its bounds."""

    kind: str  # "float" | "int" | "bool"
    ge: float | None = None
    le: float | None = None


def _specs() -> dict[str, FieldSpec]:
    specs: dict[str, FieldSpec] = {}
    for name, field in EpochRecord.model_fields.items():
        if name in RESERVED:
            continue
        text = str(field.annotation)
        kind = "bool" if "bool" in text else "int" if "int" in text else "float"
        ge = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
        le = next((m.le for m in field.metadata if hasattr(m, "le")), None)
        specs[name] = FieldSpec(kind, ge, le)
    return specs


FIELDS: dict[str, FieldSpec] = _specs()
SHARE_OF = {f"loss_{term}": f"share_{term}" for term in LOSS_TERMS}


def as_number(key: str, value: Any) -> float | int | bool:
    """A finite Python number from a float, int, bool, numpy scalar or 0-d tensor."""
    if isinstance(value, bool | int | float):
        number: Any = value
    elif hasattr(value, "item") and callable(value.item):
        # numpy scalars and one-element tensors, without importing either library.
        try:
            number = value.item()
        except (ValueError, RuntimeError, TypeError):
            raise ValueError(
                f"{key}: must be a single number, got {type(value).__name__} "
                f"of shape {tuple(getattr(value, 'shape', ()))}"
            ) from None
        if not isinstance(number, bool | int | float):
            raise ValueError(f"{key}: must be a number, got {type(number).__name__}")
    elif isinstance(value, numbers.Real):
        number = float(value)
    else:
        raise ValueError(f"{key}: must be a number, got {type(value).__name__} {value!r:.60}")
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"{key}: must be a finite number, got {number}")
    return number  # type: ignore[no-any-return]


def check_field(key: str, value: Any) -> float | int | bool:
    """An EpochRecord field's value, converted to the field's type and checked against it."""
    spec = FIELDS[key]
    number = as_number(key, value)
    if spec.kind == "bool":
        if number not in (0, 1):
            raise ValueError(f"{key}: must be true or false, got {number!r}")
        return bool(number)
    if spec.kind == "int":
        if isinstance(number, float):
            if not number.is_integer():
                raise ValueError(f"{key}: must be a whole number, got {number}")
            number = int(number)
        number = int(number)
        if number > MAX_INT:
            raise ValueError(f"{key}: must be at most {MAX_INT}, got {number}")
    else:
        number = float(number)
    if spec.ge is not None and number < spec.ge:
        raise ValueError(f"{key}: must be ≥ {spec.ge:g}, got {number}")
    if spec.le is not None and number > spec.le:
        raise ValueError(f"{key}: must be ≤ {spec.le:g}, got {number}")
    return number


@functools.lru_cache(maxsize=1024)
def custom_key(name: str) -> str:
    """A free-text metric name (Lightning's) as a valid custom key: characters a key may
    not have become "_", and it is cut to the longest a key may be (CUSTOM_KEY_PATTERN)."""
    key = "".join(c if _CUSTOM_KEY.match(c) else "_" for c in name) or "_"
    while not _CUSTOM_KEY.match(key):
        key = key[:-1]
    return key


def check_custom_key(key: Any) -> str:
    if not isinstance(key, str):
        raise ValueError(f"{key!r}: keys must be strings, got {type(key).__name__}")
    if not _CUSTOM_KEY.match(key):
        raise ValueError(
            f"{key!r}: a key is 1–64 characters of letters, digits, '_', '.', '/', '-'"
        )
    return key


def split(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """(record fields, custom values) of one logged dict, every value checked.

    Raises ValueError naming the first bad key.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"data: must be a mapping of key → number, got {type(data).__name__}")
    fields: dict[str, Any] = {}
    custom: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(key, str) and key in FIELDS:
            fields[key] = check_field(key, value)
        else:
            check_custom_key(key)
            custom[key] = float(as_number(key, value))
    if len(custom) > MAX_CUSTOM_KEYS:
        raise ValueError(f"custom keys: at most {MAX_CUSTOM_KEYS} per row, got {len(custom)}")
    return fields, custom


def derive_shares(fields: dict[str, Any]) -> None:
    """Fill the loss breakdown from the weighted loss terms given, when no share was given.

    docs/metrics.md: share = 100 · |term| / Σ|terms| (all 0 if every term is 0). A term the
    objective does not have weighs 0: once one term is logged, the absent ones are logged
    as 0 (value and share), so the loss-balance rules, which read all four, can judge.
    """
    if any(share in fields for share in SHARE_OF.values()):
        return
    if not any(loss in fields for loss in SHARE_OF):
        return
    for loss in SHARE_OF:
        fields.setdefault(loss, 0.0)
    terms = {loss: abs(float(fields[loss])) for loss in SHARE_OF}
    total = sum(terms.values())
    for loss, magnitude in terms.items():
        fields[SHARE_OF[loss]] = 100.0 * magnitude / total if total > 0 else 0.0


def check_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise ValueError(f"config: must be a mapping, got {type(config).__name__}")
    checked = dict(config)
    for key, value in checked.items():
        if not isinstance(key, str):
            raise ValueError(f"config: keys must be strings, got {key!r}")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"config.{key}: must be JSON (numbers, strings, lists, dicts): "
                             f"{err}") from None
    return checked


def check_variables(variables: Sequence[str] | None) -> list[str] | None:
    if variables is None:
        return None
    names = list(variables)
    if not names or len(names) > MAX_GRAPH_SIZE:
        raise ValueError(f"variables: 1 to {MAX_GRAPH_SIZE} names, got {len(names)}")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f"variables[{i}]: must be a non-empty string, got {name!r}")
    if len(set(names)) != len(names):
        raise ValueError("variables: names must be distinct")
    return names


def check_step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        if hasattr(step, "item"):
            step = step.item()
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f"step: must be a whole number, got {step!r}")
    if not 0 <= step <= MAX_INT:
        raise ValueError(f"step: must be between 0 and {MAX_INT}, got {step}")
    return int(step)


def check_matrix(probabilities: Any, variables: list[str] | None) -> list[list[float]]:
    if hasattr(probabilities, "detach"):
        probabilities = probabilities.detach()
    if hasattr(probabilities, "tolist"):
        probabilities = probabilities.tolist()
    try:
        rows = [[float(p) for p in row] for row in probabilities]
    except (TypeError, ValueError):
        raise ValueError("probabilities: must be a square matrix of numbers") from None
    d = len(rows)
    if d == 0 or d > MAX_GRAPH_SIZE or any(len(row) != d for row in rows):
        raise ValueError(f"probabilities: must be a non-empty square matrix (at most "
                         f"{MAX_GRAPH_SIZE} × {MAX_GRAPH_SIZE})")
    if variables is not None and d != len(variables):
        raise ValueError(f"probabilities: {d} × {d} for a run over {len(variables)} variables")
    for i, row in enumerate(rows):
        for j, p in enumerate(row):
            if not (math.isfinite(p) and 0.0 <= p <= 1.0):
                raise ValueError(f"probabilities[{i}][{j}]: must be in [0, 1], got {p}")
    return rows
