"""UCI Air Quality (dataset id 360): find the file, read either CSV format, clean, split, impute.

Accepted formats, detected from the header line:
- the original file: `;` separated, decimal comma, CRLF, Date and Time first, two empty
  trailing columns and trailing rows of only separators;
- ucimlrepo's CSV: `,` separated, decimal point, with or without Date and Time.

`-200` codes a missing value. docs/data.md gives each cleaning step, why, and the row
counts it yields on the distributed file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainer.data.reference import UCI_VARIABLES
from trainer.data.split import DataError, split_sizes

logger = logging.getLogger(__name__)

UCI_DATASET_ID = 360
DATA_ENV_VAR = "CAUSALWATCH_DATA"
DEFAULT_CACHE_DIR = "~/.cache/causalwatch"
CACHE_FILENAME = "uci_air_quality_360.csv"
# The real file is under 1 MB; anything this big is the wrong file, and reading it whole
# as text would exhaust memory before we could say so.
MAX_FILE_BYTES = 512 * 1024 * 1024
MIN_ROWS = 50
MISSING_CODE = -200.0
# Hourly data: a gap of up to 3 hours is bridged by a straight line; longer gaps are not
# guessed from their neighbours but median-filled.
MAX_INTERPOLATION_GAP_HOURS = 3
SENSOR_COLUMNS: tuple[str, ...] = tuple(c for c in UCI_VARIABLES if c.startswith("PT08."))
# separator -> the decimal mark that goes with it
SEPARATORS: dict[str, str] = {";": ",", ",": "."}
# Written by hand or by other tools for "no value"; pandas' defaults miss padded variants.
_MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none"})


@dataclass(frozen=True, eq=False)
class UciSplit:
    """Cleaned, imputed float64 splits (columns in `UCI_VARIABLES` order) and their counts."""

    train: np.ndarray  # (n_train, 13)
    val: np.ndarray  # (n_val, 13)
    stats: dict[str, Any]


def load_uci(
    val_fraction: float,
    data_path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> UciSplit:
    """Resolve the file, read it, clean it and split it chronologically."""
    path = resolve_uci_path(data_path, cache_dir)
    values, file_format = read_uci_csv(path)
    split = clean_and_split(values, val_fraction, path)
    split.stats.update(source=str(path), format=file_format)
    return split


# --- where the file comes from ------------------------------------------------------------


def resolve_uci_path(
    data_path: str | os.PathLike[str] | None, cache_dir: str | os.PathLike[str] | None
) -> Path:
    """`data_path`, else $CAUSALWATCH_DATA, else the cached download, else a fresh download."""
    if data_path is not None and str(data_path).strip():
        return _given_file(Path(data_path).expanduser(), "given as the data path (--data)")
    from_env = os.environ.get(DATA_ENV_VAR, "").strip()
    if from_env:
        return _given_file(Path(from_env).expanduser(), f"given by ${DATA_ENV_VAR}")
    cached = Path(cache_dir or DEFAULT_CACHE_DIR).expanduser() / CACHE_FILENAME
    if cached.is_file():
        return cached
    return _download_to_cache(cached)


def _given_file(path: Path, origin: str) -> Path:
    if not path.exists():
        raise DataError(path, f"file not found ({origin})")
    return path


def _download_to_cache(cached: Path) -> Path:
    """Fetch dataset 360 with ucimlrepo and keep its features table as CSV at `cached`."""
    advice = f"pass --data PATH or set ${DATA_ENV_VAR} to a copy of AirQualityUCI.csv"
    try:
        from ucimlrepo import fetch_ucirepo
    except ImportError as err:
        raise DataError(
            cached, f"no cached copy and ucimlrepo is unavailable ({err}); {advice}"
        ) from err
    logger.info("downloading UCI dataset %d with ucimlrepo into %s", UCI_DATASET_ID, cached)
    try:
        repo = fetch_ucirepo(id=UCI_DATASET_ID)
    # ucimlrepo surfaces network trouble as several unrelated exception types.
    except Exception as err:
        raise DataError(
            cached, f"no cached copy and the download failed ({err}); {advice}"
        ) from err
    features = getattr(getattr(repo, "data", None), "features", None)
    if not isinstance(features, pd.DataFrame):
        raise DataError(
            cached, f"ucimlrepo returned no features table for dataset {UCI_DATASET_ID}"
        )
    # Write beside the target and rename, so an interrupted write never leaves a
    # truncated file that later runs would trust as the cache.
    partial = cached.with_name(cached.name + ".part")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        features.to_csv(partial, index=False)
        partial.replace(cached)
    except OSError as err:
        raise DataError(cached, f"cannot write the downloaded data to the cache ({err})") from err
    return cached


# --- reading ------------------------------------------------------------------------------


def read_uci_csv(path: Path) -> tuple[pd.DataFrame, str]:
    """The 13 variables as float64 with NaN for missing (`-200` or empty), one row per data line.

    Returns the table and a short name of the detected format.
    """
    header = first_line(path)
    sep = _detect_separator(path, header)
    raw = read_text_table(path, sep)
    decimal = SEPARATORS[sep]
    values = pd.DataFrame(
        {name: parse_column(raw[name], name, decimal, path) for name in UCI_VARIABLES},
        index=raw.index,
    )
    file_format = (
        "original (';' separated, decimal comma)"
        if sep == ";"
        else ("ucimlrepo (',' separated, decimal point)")
    )
    return values.mask(values == MISSING_CODE), file_format


def first_line(path: Path) -> str:
    """The header line, after refusing what cannot be a readable, reasonably sized text file."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise DataError(path, "is not a regular file")
        if size > MAX_FILE_BYTES:
            raise DataError(
                path,
                f"file is {size / 2**20:.0f} MB, above the {MAX_FILE_BYTES // 2**20} MB limit "
                "(AirQualityUCI.csv is under 1 MB); is this the right file?",
            )
        if size == 0:
            raise DataError(path, "file is empty")
        with path.open(encoding="utf-8-sig", newline="") as handle:
            line = handle.readline()
    except FileNotFoundError as err:
        raise DataError(path, "file not found") from err
    except UnicodeDecodeError as err:
        raise DataError(path, f"is not a UTF-8 text file ({err.reason})") from err
    except OSError as err:
        raise DataError(path, f"cannot be read ({err.strerror or err})") from err
    if not line.strip():
        raise DataError(path, "first line is empty; expected a header naming the columns")
    return line


def header_names(header: str, sep: str) -> list[str]:
    return [name.strip().strip('"').strip() for name in header.rstrip("\r\n").split(sep)]


def _detect_separator(path: Path, header: str) -> str:
    """The separator under which the header names all 13 variables."""
    found = {
        sep: [c for c in UCI_VARIABLES if c in header_names(header, sep)] for sep in SEPARATORS
    }
    for sep, columns in found.items():
        if len(columns) == len(UCI_VARIABLES):
            return sep
    best_sep = max(found, key=lambda sep: len(found[sep]))
    if found[best_sep]:
        missing = [c for c in UCI_VARIABLES if c not in found[best_sep]]
        raise DataError(
            path,
            f"missing column(s) {', '.join(missing)} (header read with separator {best_sep!r}); "
            f"expected all of {', '.join(UCI_VARIABLES)}",
        )
    tried = " and ".join(repr(sep) for sep in SEPARATORS)
    hint = (
        "; the header contains tabs: tab-separated files are not accepted" if "\t" in header else ""
    )
    raise DataError(
        path,
        f"the expected columns were not found with either separator tried ({tried}){hint}; "
        f"header starts {header[:80]!r}; expected {', '.join(UCI_VARIABLES)}",
    )


def read_text_table(path: Path, sep: str) -> pd.DataFrame:
    """Every cell as text; parsing numbers ourselves lets us name the cell that is wrong."""
    try:
        # skip_blank_lines=False keeps "row index + 2" equal to the line number in messages.
        raw = pd.read_csv(path, sep=sep, dtype=str, skip_blank_lines=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, ValueError, OSError) as err:  # ParserError is a ValueError
        reason = str(err).strip()
        raise DataError(path, f"cannot be parsed as a {sep!r}-separated CSV ({reason})") from err
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw


def parse_column(raw: pd.Series, name: str, decimal: str, path: Path) -> pd.Series:
    """One variable's cells as float64, NaN where empty; refuses text and non-finite numbers."""
    text = raw.fillna("").astype(str).str.strip()
    text = text.mask(text.str.lower().isin(_MISSING_TOKENS), "")
    if decimal == ",":
        text = text.str.replace(",", ".", regex=False)
    present = (text != "").to_numpy()
    numbers = pd.to_numeric(text.mask(~present), errors="coerce").astype("float64")
    # NaN (unparseable text) and +-inf both fail isfinite.
    bad = present & ~np.isfinite(numbers.to_numpy())
    if bad.any():
        first = raw.index[int(np.argmax(bad))]
        raise DataError(
            path,
            f"column {name!r} has a value that is not a finite number: {raw[first]!r} at line "
            f"{int(first) + 2} ({int(bad.sum())} such cell(s) in this column)",
        )
    return numbers


# --- cleaning, split, imputation ----------------------------------------------------------


def clean_and_split(values: pd.DataFrame, val_fraction: float, path: Path) -> UciSplit:
    """Drop all-missing and sensor-outage rows, split chronologically, impute each split.

    `values` holds the 13 variables in file order with NaN for missing.
    """
    x = values.to_numpy(dtype=np.float64)
    # The file has one row per hour with no skipped hours, so a row's position is its time;
    # it survives the drops below, so a gap spanning dropped rows is measured honestly.
    hours = np.arange(x.shape[0])
    all_missing = np.isnan(x).all(axis=1)
    sensors = [UCI_VARIABLES.index(c) for c in SENSOR_COLUMNS]
    outage = ~all_missing & np.isnan(x[:, sensors]).all(axis=1)
    keep = ~(all_missing | outage)
    kept, hours = x[keep], hours[keep]
    n = kept.shape[0]
    if n < MIN_ROWS:
        raise DataError(
            path,
            f"only {n} usable row(s) after cleaning ({len(values)} read, "
            f"{int(all_missing.sum())} with every value missing, {int(outage.sum())} sensor "
            f"outages dropped); at least {MIN_ROWS} are needed",
        )
    n_train, n_val = split_sizes(n, val_fraction)
    train, val, imputation = impute_splits(kept, hours, n_train, path, UCI_VARIABLES)
    stats: dict[str, Any] = {
        "n_rows_raw": len(values),
        "n_rows_all_missing": int(all_missing.sum()),
        "n_rows_sensor_outage": int(outage.sum()),
        "n_rows_after_cleaning": n,
        "n_train": n_train,
        "n_val": n_val,
        "split": "chronological",
        "max_interpolation_gap_hours": MAX_INTERPOLATION_GAP_HOURS,
        **imputation,
    }
    return UciSplit(train=train, val=val, stats=stats)


def impute_splits(
    kept: np.ndarray,
    positions: np.ndarray,
    n_train: int,
    path: Path,
    variables: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Train and validation rows imputed with the training medians, and what was imputed
    (`train_medians`, `imputed_cells`, `imputation`: the keys of a dataset's stats)."""
    medians = train_medians(kept[:n_train], path, variables)
    train, train_counts = impute(kept[:n_train], positions[:n_train], medians, variables)
    val, val_counts = impute(kept[n_train:], positions[n_train:], medians, variables)
    return train, val, {
        "train_medians": dict(zip(variables, map(float, medians), strict=True)),
        "imputed_cells": {
            c: sum(counts[kind][c] for counts in (train_counts, val_counts) for kind in counts)
            for c in variables
        },
        "imputation": {"train": train_counts, "val": val_counts},
    }


def train_medians(
    train: np.ndarray, path: Path, variables: Sequence[str] = UCI_VARIABLES
) -> np.ndarray:
    """Per-column median of the values actually measured in the training split."""
    observed = ~np.isnan(train)
    empty = [variables[j] for j in np.flatnonzero(~observed.any(axis=0))]
    if empty:
        raise DataError(path, f"column(s) {', '.join(empty)} have no value in the training split")
    return np.array([np.median(train[observed[:, j], j]) for j in range(train.shape[1])])


def impute(
    x: np.ndarray, hours: np.ndarray, medians: np.ndarray,
    variables: Sequence[str] = UCI_VARIABLES,
) -> tuple[np.ndarray, dict[str, dict[str, int]]]:
    """Short gaps interpolated in time, the rest set to the training median; counts per column."""
    interpolated = _interpolate_short_gaps(x, hours, MAX_INTERPOLATION_GAP_HOURS)
    still_missing = np.isnan(interpolated)
    filled = np.where(still_missing, medians, interpolated)
    counts = {
        "interpolated": _per_column(np.isnan(x) & ~still_missing, variables),
        "median": _per_column(still_missing, variables),
    }
    return filled, counts


def _per_column(mask: np.ndarray, variables: Sequence[str]) -> dict[str, int]:
    return dict(zip(variables, (int(v) for v in mask.sum(axis=0)), strict=True))


def _interpolate_short_gaps(x: np.ndarray, hours: np.ndarray, max_gap: int) -> np.ndarray:
    """Linear interpolation in time, only where both neighbours are at most `max_gap` hours apart.

    A gap counts every hour between the two measured neighbours, including dropped rows.
    Cells before the first or after the last measurement stay NaN (no extrapolation).
    """
    out = x.copy()
    for j in range(x.shape[1]):
        known = ~np.isnan(x[:, j])
        missing = np.flatnonzero(~known)
        if missing.size == 0 or known.sum() < 2:
            continue
        known_hours = hours[known]
        after = np.searchsorted(known_hours, hours[missing])
        inside = (after > 0) & (after < known_hours.size)
        gap = np.full(missing.size, np.inf)
        gap[inside] = known_hours[after[inside]] - known_hours[after[inside] - 1] - 1
        fill = missing[gap <= max_gap]
        out[fill, j] = np.interp(hours[fill], known_hours, x[known, j])
    return out
