"""The data of a run: UCI Air Quality, a synthetic SEM or the user's own CSV, cleaned,
split and described.

`load_dataset(config)` returns a `Dataset`: float32 train and validation matrices with no
missing or non-finite value, the reference graph to score against (None when a CSV comes
without one), and `stats`, the facts
about the data a user must be told before trusting a run (row counts, imputation, raw
variance spread, near-deterministic columns). docs/data.md explains every step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.config import TrainConfig
from trainer.data.reference import UCI_VARIABLES, reference_adjacency
from trainer.data.split import DataError, split_sizes
from trainer.data.synthetic import simulate_er_dag, simulate_sem
from trainer.protocol import NEAR_DETERMINISTIC_R2, NO_REFERENCE_KIND

__all__ = ["DataError", "Dataset", "load_dataset"]

# reference_kind of a CSV run: its own graph is whatever the user believes, not known truth.
CSV_REFERENCE_KIND = "user reference graph"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset; `reference[i, j] == 1` means the edge i -> j.

    `reference` is None (and `reference_kind` "none") for a CSV given without a reference
    graph: there is nothing to score against, so SHD, F1, precision and recall are null.
    """

    name: str  # "uci" | "synthetic" | "csv"
    variables: list[str]
    train: np.ndarray  # float32 (n_train, d)
    val: np.ndarray  # float32 (n_val, d)
    reference: np.ndarray | None  # int8 (d, d)
    # "plausibility reference" | "ground truth" | "user reference graph" | "none"
    reference_kind: str
    standardized: bool
    stats: dict[str, Any]  # JSON-serialisable


def load_dataset(
    config: TrainConfig,
    data_path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    reference_path: str | os.PathLike[str] | None = None,
) -> Dataset:
    """The dataset `config.dataset` names. `data_path` is the UCI or CSV file, `cache_dir`
    the UCI download's cache, `reference_path` a CSV's reference graph (JSON).

    Raises DataError naming the file and the problem when the data cannot be used.
    """
    if reference_path is not None and config.dataset != "csv":
        raise DataError(
            reference_path,
            f"a reference graph is read for dataset 'csv' only (dataset is {config.dataset!r})",
        )
    if config.dataset == "synthetic":
        return _load_synthetic(config)
    if config.dataset == "csv":
        return _load_csv(config, data_path, reference_path)
    # The file readers import pandas (~0.3 s): only a run that reads a file pays for it.
    from trainer.data.uci import load_uci

    split = load_uci(config.val_fraction, data_path, cache_dir)
    variables = list(UCI_VARIABLES)
    return _finish(
        name="uci",
        variables=variables,
        train=split.train,
        val=split.val,
        reference=reference_adjacency(variables),
        reference_kind="plausibility reference",
        standardize=config.standardize_effective,
        stats=split.stats,
    )


def _load_csv(
    config: TrainConfig,
    data_path: str | os.PathLike[str] | None,
    reference_path: str | os.PathLike[str] | None,
) -> Dataset:
    if data_path is None or not str(data_path).strip():
        raise DataError("--data", "dataset 'csv' reads the file given with --data; none was given")
    from trainer.data.csv import load_csv, read_reference

    split = load_csv(
        data_path, config.val_fraction, separator=config.csv_separator, missing=config.csv_missing
    )
    reference = None
    if reference_path is not None:
        reference = read_reference(reference_path, split.variables)
        split.stats["reference_source"] = str(reference_path)
        split.stats["reference_edges"] = int(reference.sum())
    return _finish(
        name="csv",
        variables=split.variables,
        train=split.train,
        val=split.val,
        reference=reference,
        reference_kind=NO_REFERENCE_KIND if reference is None else CSV_REFERENCE_KIND,
        standardize=config.standardize_effective,
        stats=split.stats,
    )


def _load_synthetic(config: TrainConfig) -> Dataset:
    """ER DAG + SEM drawn from `default_rng(config.seed)`; the samples are i.i.d., so the
    first rows train and the last `val_fraction` validate."""
    rng = np.random.default_rng(config.seed)
    adj = simulate_er_dag(config.synthetic_nodes, config.synthetic_edges, rng)
    x = simulate_sem(
        adj, config.synthetic_samples, config.synthetic_mechanism, config.synthetic_noise_scale, rng
    )
    n = x.shape[0]
    n_train, n_val = split_sizes(n, config.val_fraction)
    variables = [f"X{i + 1}" for i in range(config.synthetic_nodes)]
    stats: dict[str, Any] = {
        "n_rows_raw": n,
        "n_rows_after_cleaning": n,
        "n_train": n_train,
        "n_val": n_val,
        "split": "first rows train (samples are i.i.d.)",
        "imputed_cells": dict.fromkeys(variables, 0),
        "source": None,
        "generator": {
            "graph": "erdos-renyi",
            "nodes": config.synthetic_nodes,
            "expected_edges": config.synthetic_edges,
            "edges": int(adj.sum()),
            "mechanism": config.synthetic_mechanism,
            "noise_scale": config.synthetic_noise_scale,
            "seed": config.seed,
        },
    }
    return _finish(
        name="synthetic",
        variables=variables,
        train=x[:n_train],
        val=x[n_train:],
        reference=adj,
        reference_kind="ground truth",
        standardize=config.standardize_effective,
        stats=stats,
    )


def _finish(
    *,
    name: str,
    variables: list[str],
    train: np.ndarray,
    val: np.ndarray,
    reference: np.ndarray | None,
    reference_kind: str,
    standardize: bool,
    stats: dict[str, Any],
) -> Dataset:
    """Describe the cleaned float64 splits, standardize them if asked, and cast to float32."""
    source = stats.get("source") or f"{name} data"
    mean, std = train.mean(axis=0), train.std(axis=0)
    constant = [v for v, s in zip(variables, std, strict=True) if not s > 0]
    if constant:
        raise DataError(
            source, f"column(s) {', '.join(constant)} are constant in the training split"
        )
    variances = std**2
    r2 = r2_from_others(train)
    stats = {
        **stats,
        "raw_variances": _by_name(variables, variances),
        "variance_ratio": float(variances.max() / variances.min()),
        "r2_from_others": _by_name(variables, r2),
        "near_deterministic": [
            {"column": v, "r2": float(r)}
            for v, r in zip(variables, r2, strict=True)
            if r >= NEAR_DETERMINISTIC_R2
        ],
        "train_mean": _by_name(variables, mean),
        "train_std": _by_name(variables, std),
    }
    if standardize:
        # Training statistics only, applied to both splits: validation stays unseen.
        train, val = (train - mean) / std, (val - mean) / std
    train32, val32 = train.astype(np.float32), val.astype(np.float32)
    if not (np.isfinite(train32).all() and np.isfinite(val32).all()):
        raise DataError(source, "values overflow float32; standardize the data or shrink the graph")
    return Dataset(
        name=name,
        variables=variables,
        train=train32,
        val=val32,
        reference=None if reference is None else reference.astype(np.int8),
        reference_kind=reference_kind,
        standardized=standardize,
        stats=stats,
    )


def r2_from_others(x: np.ndarray) -> np.ndarray:
    """R^2 of each column regressed on a quadratic in all other columns: `[n, d]` -> `[d]`.

    Least squares on the other columns, their squares and pairwise products, with an
    intercept. The quadratic terms matter: both relations a user must be told about are
    curved (C6H6(GT) is a convex function of PT08.S2(NMHC); AH a product-like function of
    T and RH), and a straight-line fit scores them only 0.98 and 0.89 (docs/data.md).
    Columns are z-scored first so the squares stay well conditioned. A constant column
    cannot occur here: `_finish` refuses it before calling this.
    """
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    r2 = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        y = z[:, j]
        others = np.delete(z, j, axis=1)
        rows, cols = np.triu_indices(others.shape[1])
        features = np.column_stack(
            [np.ones(len(y)), others, others[:, rows] * others[:, cols]]
        )
        coef, *_ = np.linalg.lstsq(features, y, rcond=None)
        residual = y - features @ coef
        r2[j] = 1.0 - (residual @ residual) / (y @ y)
    return r2


def _by_name(variables: list[str], values: np.ndarray) -> dict[str, float]:
    return {v: float(x) for v, x in zip(variables, values, strict=True)}
