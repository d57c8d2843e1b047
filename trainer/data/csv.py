"""Your own data: any numeric CSV with a header row, and optionally a reference graph.

The file: a first line naming the variables, `,` or `;` separated (detected from that line
unless `csv_separator` says), one row per sample, numbers only. With `;` a decimal comma is
accepted as well as a point (the UCI file's convention). Empty cells, `NA`, `NaN`, `null`
and the configured marker (`csv_missing`, e.g. `-200`) are missing. Columns with neither a
name nor a value (a trailing separator on every line) are dropped.

Cleaning is UCI's (docs/data.md): rows with every value missing are dropped, the file's row
order is kept and its last `val_fraction` validates, gaps of at most 3 rows are interpolated
linearly along the rows, the rest take the training split's median.

The reference graph is the shape of `uci_reference_graph.json`,
`{"edges": [{"from": "A", "to": "B"}, ...]}` (other keys ignored); it must name only
columns of the file and be acyclic. Without one, a run has no SHD or F1.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainer.data.split import DataError, split_sizes
from trainer.data.uci import (
    MAX_INTERPOLATION_GAP_HOURS,
    first_line,
    header_names,
    impute_splits,
    parse_column,
    read_text_table,
)

MAX_CSV_BYTES = 512 * 1024 * 1024
MAX_REFERENCE_BYTES = 10 * 1024 * 1024
MIN_ROWS = 50
MAX_VARIABLES = 200  # the model holds d x d logits and a decoder per variable
SEPARATOR_NAMES = {"comma": ",", "semicolon": ";"}


@dataclass(frozen=True, eq=False)
class CsvSplit:
    """Cleaned, imputed float64 splits of a user's CSV, its column names and counts."""

    variables: list[str]
    train: np.ndarray  # (n_train, d)
    val: np.ndarray  # (n_val, d)
    stats: dict[str, Any]


def load_csv(
    path: str | os.PathLike[str],
    val_fraction: float,
    *,
    separator: str = "auto",
    missing: str | None = None,
) -> CsvSplit:
    """Read, clean and split `path`; every refusal is a DataError naming the file."""
    path = Path(path)
    _check_size(path, MAX_CSV_BYTES)
    header = first_line(path)
    sep = _separator(path, header, separator)
    names = header_names(header, sep)
    raw = read_text_table(path, sep)
    if len(raw.columns) != len(names):  # a quoted separator inside a name: trust pandas
        names = [str(c) for c in raw.columns]
    raw.columns = range(len(names))
    keep, dropped = _named_columns(path, names, raw)
    variables = [names[i] for i in keep]
    _check_header(path, variables, sep)
    decimal = "," if sep == ";" else "."
    columns = {}
    for i, name in zip(keep, variables, strict=True):
        text = _blank_marker(raw[i], missing)
        try:
            columns[name] = parse_column(text, name, decimal, path)
        except DataError as err:
            raise DataError(
                path, f"{err.problem}; every column must be numeric (leave text columns such "
                "as dates or labels out of the file)"
            ) from None
    values = pd.DataFrame(columns, index=raw.index)
    marker = _numeric_marker(missing)
    if marker is not None:
        values = values.mask(values == marker)
    split = _clean_and_split(values, variables, val_fraction, path)
    split.stats.update(
        source=str(path),
        format=f"{sep!r} separated, decimal {'comma or point' if sep == ';' else 'point'}",
        missing_marker=missing,
        columns_dropped_empty=dropped,
    )
    return split


def read_reference(path: str | os.PathLike[str], variables: Sequence[str]) -> np.ndarray:
    """The reference graph in `path` as an int8 `[d, d]` matrix over `variables` (i -> j)."""
    path = Path(path)
    _check_size(path, MAX_REFERENCE_BYTES)
    try:
        loaded = json.loads(path.read_text("utf-8-sig"))
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except UnicodeDecodeError as err:
        raise DataError(path, f"is not a UTF-8 text file ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise DataError(path, f"is not JSON ({err.msg} at line {err.lineno})") from None
    except OSError as err:
        raise DataError(path, f"cannot be read ({err.strerror or err})") from None
    edges = loaded.get("edges") if isinstance(loaded, dict) else None
    if not isinstance(edges, list):
        raise DataError(
            path, 'expected a JSON object with an "edges" list: '
            '{"edges": [{"from": "A", "to": "B"}, ...]}'
        )
    index = {name: i for i, name in enumerate(variables)}
    adj = np.zeros((len(variables), len(variables)), dtype=np.int8)
    unknown: list[str] = []
    for n, edge in enumerate(edges, start=1):
        ends = [edge.get(k) for k in ("from", "to")] if isinstance(edge, dict) else [None]
        if len(ends) != 2 or not all(isinstance(e, str) and e for e in ends):
            raise DataError(path, f'edge {n} is not {{"from": "<column>", "to": "<column>"}}: '
                            f"{json.dumps(edge)[:120]}")
        cause, effect = ends
        if cause == effect:
            raise DataError(path, f"edge {n} is a self-loop on {cause!r}")
        unknown += [e for e in (cause, effect) if e not in index and e not in unknown]
        if not unknown:
            adj[index[cause], index[effect]] = 1
    if unknown:
        raise DataError(
            path, f"names variable(s) not in the data: {', '.join(map(repr, unknown))}; "
            f"the data's columns are {', '.join(map(repr, variables))}"
        )
    cycle = find_cycle(adj)
    if cycle:
        named = " -> ".join(variables[i] for i in [*cycle, cycle[0]])
        raise DataError(path, f"the reference graph has a cycle: {named}; it must be a DAG")
    return adj


def find_cycle(adj: np.ndarray) -> list[int]:
    """The nodes of one directed cycle of `adj` in order, or [] when it is acyclic."""
    state = [0] * adj.shape[0]  # 0 unseen, 1 on the current path, 2 done
    for root in range(adj.shape[0]):
        if state[root]:
            continue
        path, stack = [root], [iter(np.flatnonzero(adj[root]).tolist())]
        state[root] = 1
        while stack:  # iterative DFS: 200 nodes deep would brush the recursion limit
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state[child] == 1:
                return path[path.index(child):]
            elif state[child] == 0:
                state[child] = 1
                path.append(child)
                stack.append(iter(np.flatnonzero(adj[child]).tolist()))
    return []


# --- reading ------------------------------------------------------------------------------


def _check_size(path: Path, limit: int) -> None:
    try:
        if not path.is_file():
            raise DataError(path, "not a file" if path.exists() else "file not found")
        size = path.stat().st_size
    except OSError as err:
        raise DataError(path, f"cannot be read ({err.strerror or err})") from None
    if size == 0:
        raise DataError(path, "file is empty")
    if size > limit:
        raise DataError(path, f"file is {size / 2**20:.0f} MB, above the {limit // 2**20} MB limit")


def _separator(path: Path, header: str, setting: str) -> str:
    """The configured separator, or the one of `,` `;` that splits the header most."""
    if setting in SEPARATOR_NAMES:
        return SEPARATOR_NAMES[setting]
    counts = {sep: len(header_names(header, sep)) for sep in SEPARATOR_NAMES.values()}
    best = max(counts, key=lambda sep: counts[sep])
    if counts[best] < 2:
        hint = "; tabs are not accepted as separators" if "\t" in header else ""
        raise DataError(
            path, f"only one column: the header {header.strip()[:80]!r} has neither ',' nor "
            f"';'{hint}; causal structure needs at least 2 variables"
        )
    return best


def _named_columns(path: Path, names: list[str], raw: pd.DataFrame) -> tuple[list[int], int]:
    """Indices of the columns to read, and how many nameless empty ones were dropped."""
    keep, dropped = [], 0
    for i, name in enumerate(names):
        has_values = raw[i].fillna("").astype(str).str.strip().ne("").any()
        if not name and not has_values:
            dropped += 1  # a trailing separator on every line: no column at all
        elif not name:
            raise DataError(path, f"column {i + 1} has values but no name in the header")
        else:
            keep.append(i)
    return keep, dropped


def _check_header(path: Path, variables: list[str], sep: str) -> None:
    if all(_is_number(v.replace(",", ".") if sep == ";" else v) for v in variables):
        raise DataError(
            path, f"no header: the first row is numbers ({sep.join(variables)[:80]}); the first "
            "row must name the columns"
        )
    if len(variables) < 2:
        raise DataError(
            path, f"only one column ({variables[0]!r}) with separator {sep!r}; causal structure "
            "needs at least 2 variables"
        )
    if len(variables) > MAX_VARIABLES:
        raise DataError(path, f"{len(variables)} columns, above the limit of {MAX_VARIABLES}")
    duplicates = sorted(name for name, count in Counter(variables).items() if count > 1)
    if duplicates:
        raise DataError(path, f"duplicate column name(s) {', '.join(map(repr, duplicates))}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numeric_marker(missing: str | None) -> float | None:
    if missing is None or not _is_number(missing.replace(",", ".")):
        return None
    return float(missing.replace(",", "."))


def _blank_marker(raw: pd.Series, missing: str | None) -> pd.Series:
    """Cells spelling a text marker (`?`, `missing`) emptied; numeric markers go after parsing,
    so `-200`, `-200.0` and `-200,0` all count."""
    if missing is None or not missing.strip() or _numeric_marker(missing) is not None:
        return raw
    text = raw.fillna("").astype(str).str.strip().str.lower()
    return raw.mask(text == missing.strip().lower(), "")


# --- cleaning, split, imputation ----------------------------------------------------------


def _clean_and_split(
    values: pd.DataFrame, variables: list[str], val_fraction: float, path: Path
) -> CsvSplit:
    x = values.to_numpy(dtype=np.float64)
    # Row positions stand for time: a gap spanning dropped rows is measured honestly.
    rows = np.arange(x.shape[0])
    all_missing = np.isnan(x).all(axis=1)
    kept, rows = x[~all_missing], rows[~all_missing]
    n = kept.shape[0]
    if n < MIN_ROWS:
        raise DataError(
            path, f"only {n} usable row(s) ({len(values)} read, {int(all_missing.sum())} with "
            f"every value missing); at least {MIN_ROWS} are needed"
        )
    n_train, n_val = split_sizes(n, val_fraction)
    train, val, imputation = impute_splits(kept, rows, n_train, path, variables)
    stats: dict[str, Any] = {
        "n_rows_raw": len(values),
        "n_rows_all_missing": int(all_missing.sum()),
        "n_rows_after_cleaning": n,
        "n_train": n_train,
        "n_val": n_val,
        "split": "file order (the last rows validate)",
        "max_interpolation_gap_rows": MAX_INTERPOLATION_GAP_HOURS,
        **imputation,
    }
    return CsvSplit(variables=variables, train=train, val=val, stats=stats)
