"""A run's reference graph: edges (cause, effect) given as a list or read from a file.

Files: a CSV of two columns (cause, effect; an optional header row), a JSON list of pairs,
or the trainer's JSON shape `{"edges": [{"from": .., "to": ..}, ..]}`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

Edge = tuple[str, str]
_HEADERS = {("cause", "effect"), ("from", "to"), ("source", "target"), ("parent", "child")}


def load_reference(
    reference: str | os.PathLike[str] | Iterable[Sequence[Any]] | None,
    variables: Sequence[str] | None = None,
) -> list[Edge] | None:
    """The edges, checked: each a pair of names, no self-loops, and among `variables` if
    given. Raises ValueError naming the file or the edge."""
    if reference is None:
        return None
    if isinstance(reference, str | os.PathLike):
        edges = _read_file(Path(reference))
        where = f"reference {reference}"
    else:
        edges = [_pair(item, f"reference[{i}]") for i, item in enumerate(reference)]
        where = "reference"
    known = set(variables) if variables is not None else None
    for cause, effect in edges:
        if cause == effect:
            raise ValueError(f"{where}: self-loop {cause!r} → {effect!r}")
        for name in (cause, effect):
            if known is not None and name not in known:
                raise ValueError(f"{where}: {name!r} is not one of the variables")
    return edges


def _pair(item: Any, where: str) -> Edge:
    if isinstance(item, dict) and {"from", "to"} <= item.keys():
        item = (item["from"], item["to"])
    if (
        not isinstance(item, Sequence)
        or isinstance(item, str)
        or len(item) != 2
        or not all(isinstance(name, str) and name for name in item)
    ):
        raise ValueError(f"{where}: an edge is a pair of variable names, got {item!r:.80}")
    return (item[0], item[1])


def _read_file(path: Path) -> list[Edge]:
    if not path.is_file():
        raise ValueError(f"reference {path}: file not found")
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"reference {path}: unreadable ({err})") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            raw = json.loads(text)
        except ValueError as err:
            raise ValueError(f"reference {path}: not JSON ({err})") from None
        if isinstance(raw, dict):
            raw = raw.get("edges")
        if not isinstance(raw, list):
            raise ValueError(f"reference {path}: expected a list of edges or {{\"edges\": [...]}}")
        return [_pair(item, f"reference {path}: edge {i + 1}") for i, item in enumerate(raw)]
    dialect = ";" if text.count(";") > text.count(",") else ","
    rows = [row for row in csv.reader(text.splitlines(), delimiter=dialect) if row]
    first = 1
    if rows and tuple(c.strip().lower() for c in rows[0]) in _HEADERS:
        rows, first = rows[1:], 2
    edges = []
    for number, row in enumerate(rows, start=first):
        cells = [c.strip() for c in row]
        edges.append(_pair(cells, f"reference {path}: row {number}"))
    return edges
