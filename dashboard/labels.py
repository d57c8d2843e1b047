"""Short lineage labels for runs: "standard → +standardize → λ ×0.032".

A restart's default name repeats its parent's whole name ("<id> · fix raw_variance · fix
clip_high"), so in a list, a picker or a legend every run of one family starts with the same
31 characters. The label says instead where the run comes from (its root's preset or given
name) and what each restart changed (the config diff against its parent), which is what a
reader compares runs by.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from dashboard import format as fmt

ARROW = " → "
# The name separator the backend puts between a parent's name and a restart's label.
NAME_JOIN = " · "
# Config fields grouped under one symbol: several moved by the same factor read as one rescale.
FAMILIES = {"lambda_": "λ", "learning_rate_": "LR"}
MAX_PARTS = 2  # changes named per restart step; the rest are counted
MAX_STEPS = 4  # restart steps shown; older ones collapse into "…"
SAME_RATIO = 1e-3  # relative tolerance for "every field of the family × the same factor"

Run = Mapping[str, Any]


def lineage_labels(runs: Sequence[Run]) -> dict[str, str]:
    """Every run's label by id, unique within `runs` (duplicates get their id's tail)."""
    by_id = {r["id"]: r for r in runs}
    labels = {r["id"]: _label(r, by_id) for r in runs}
    repeated = {label for label, n in Counter(labels.values()).items() if n > 1}
    return {rid: f"{label}{NAME_JOIN}{_id_tail(rid)}" if label in repeated else label
            for rid, label in labels.items()}


def _label(run: Run, by_id: Mapping[str, Run]) -> str:
    steps: list[str] = []
    seen = {run["id"]}
    current = run
    while True:
        given = _given_name(current, by_id)
        if given is not None:
            root = given
            break
        parent_id = current.get("parent_id")
        parent = by_id.get(parent_id) if parent_id else None
        if parent is None:
            # A root, or a parent outside the list (a probe, a deleted run): the preset names it.
            root = str(current.get("preset") or current["id"])
            if parent_id:
                steps.append(_restart_label(current, None))
                root += ARROW + "…"
            break
        steps.append(_step(parent, current))
        if parent["id"] in seen:  # a loop in the data must not hang the page
            break
        seen.add(parent["id"])
        current = parent
    steps.reverse()
    if len(steps) > MAX_STEPS:
        steps = ["…", *steps[-MAX_STEPS:]]
    return ARROW.join([root, *steps])


def _given_name(run: Run, by_id: Mapping[str, Run]) -> str | None:
    """The name a user chose, or None for a default one (none, the id, or the parent's name
    with a restart label appended, as the backend and the edit form name restarts)."""
    name = (run.get("name") or "").strip()
    if not name or name == run["id"]:
        return None
    parent = by_id.get(run.get("parent_id") or "")
    if run.get("parent_id") and parent is None:
        # An unknown parent: a name of the default form still says nothing of its own.
        return None if NAME_JOIN in name else name
    if parent is not None and name.startswith((parent.get("name") or parent["id"]) + NAME_JOIN):
        return None
    return name


def _restart_label(run: Run, parent: Run | None) -> str:
    """The label the restart added to the name ("fix raw_variance"), else "restart"."""
    name = run.get("name") or ""
    prefix = ((parent.get("name") or parent["id"]) + NAME_JOIN) if parent else None
    if prefix and name.startswith(prefix):
        return name[len(prefix):]
    return name.rsplit(NAME_JOIN, 1)[-1] if NAME_JOIN in name else "restart"


def _step(parent: Run, child: Run) -> str:
    """What the restart changed: its config diff, else the restart's own label."""
    parts = change_parts(parent.get("config") or {}, child.get("config") or {})
    if not parts:
        return _restart_label(child, parent)
    if len(parts) > MAX_PARTS:
        parts = [*parts[:MAX_PARTS], f"+{len(parts) - MAX_PARTS} more"]
    return ", ".join(parts)


def change_parts(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The config changes from `old` to `new`, each a few characters."""
    changed = [k for k in new if k != "stop_after_epochs" and old.get(k) != new.get(k)]
    parts: list[str] = []
    grouped: set[str] = set()
    for prefix, symbol in FAMILIES.items():
        family = [k for k in changed if k.startswith(prefix)]
        ratio = _common_ratio([old.get(k) for k in family], [new.get(k) for k in family])
        if len(family) >= 2 and ratio is not None:  # one field alone is no rescale
            parts.append(f"{symbol} ×{fmt.number(ratio, digits=2)}")
            grouped.update(family)
    for key in changed:
        if key not in grouped:
            parts.append(_change(key, new.get(key)))
    return parts


def _change(key: str, value: Any) -> str:
    if value is True:
        return f"+{_short(key)}"
    if value is False:
        return f"−{_short(key)}"
    return f"{_short(key)} {'default' if value is None else fmt.number(value)}"


def _short(key: str) -> str:
    for prefix, symbol in FAMILIES.items():
        if key.startswith(prefix):
            return f"{symbol}_{key.removeprefix(prefix)}"
    return key


def _common_ratio(old: list[Any], new: list[Any]) -> float | None:
    """The factor every new value is of its old one, if there is one."""
    numbers = [(a, b) for a, b in zip(old, new, strict=True)
               if isinstance(a, int | float) and isinstance(b, int | float) and a]
    if len(numbers) != len(old) or not numbers:
        return None
    ratios = [b / a for a, b in numbers]
    first = ratios[0]
    if all(abs(r - first) <= SAME_RATIO * abs(first) for r in ratios):
        return first
    return None


def _id_tail(run_id: str) -> str:
    """The id's random tail ("c8829a" of "20261128-071437-standard-c8829a")."""
    return run_id.rsplit("-", 1)[-1]
