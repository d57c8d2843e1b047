"""`dataset=csv` loading in-process: cleaning, markers, separators, reference, data flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from utils.csv_files import VARIABLES, chain_samples, write_csv, write_reference

from trainer.config import TrainConfig, build_config
from trainer.data import DataError, load_dataset
from trainer.data.csv import find_cycle, load_csv


def csv_config(**overrides: object) -> TrainConfig:
    return build_config("uci", {"dataset": "csv", **overrides})


def test_stats_and_cleaning_match_uci(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", missing="-200.0", n=100)
    with path.open("a") as fh:  # rows of nothing are dropped, like UCI's trailing ones
        fh.write(",,,\n,,,\n")
    ds = load_dataset(csv_config(csv_missing=-200), path)
    assert ds.name == "csv" and ds.variables == list(VARIABLES)
    assert ds.reference is None and ds.reference_kind == "none"
    assert ds.standardized and abs(float(ds.train.mean())) < 1e-5
    s = ds.stats
    assert (s["n_rows_raw"], s["n_rows_all_missing"], s["n_rows_after_cleaning"]) == (102, 2, 100)
    assert (s["n_train"], s["n_val"]) == (80, 20)
    # Every 10th beta is missing, alone between measured rows: interpolated, never median.
    assert s["imputed_cells"] == {"alpha": 0, "beta": 10, "gamma": 0, "delta": 0}
    assert s["imputation"]["train"]["interpolated"]["beta"] == 8
    for key in ("raw_variances", "variance_ratio", "r2_from_others", "near_deterministic",
                "train_mean", "train_std", "source", "format", "missing_marker"):
        assert key in s
    assert np.isfinite(ds.train).all() and ds.train.dtype == np.float32


def test_without_marker_the_code_is_a_value(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", missing="-200")
    assert load_dataset(csv_config(), path).stats["imputed_cells"]["beta"] == 0
    path = write_csv(tmp_path / "t.csv", missing="?")
    ds = load_dataset(csv_config(csv_missing="?"), path)
    assert ds.stats["imputed_cells"]["beta"] == 12
    with pytest.raises(DataError, match="column 'beta' has a value that is not a finite number"):
        load_dataset(csv_config(), path)


def test_semicolon_decimal_comma_and_forced_separator(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", sep=";", decimal=",", trailing=";;")
    split = load_csv(path, 0.2)
    assert split.variables == list(VARIABLES)
    assert split.stats["columns_dropped_empty"] == 2
    np.testing.assert_allclose(split.train[:3], chain_samples()[:3], atol=1e-5)
    with pytest.raises(DataError, match="only one column"):
        load_csv(path, 0.2, separator="comma")


def test_raw_variance_and_near_deterministic_flags(tmp_path: Path) -> None:
    x = chain_samples(200)
    x[:, 3] = 1e3 * x[:, 2]  # a copy of gamma, in other units
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,d\n" + "".join(",".join(f"{v:.6f}" for v in row) + "\n" for row in x))
    ds = load_dataset(csv_config(standardize=False), path)
    assert not ds.standardized and ds.stats["variance_ratio"] > 10
    assert {item["column"] for item in ds.stats["near_deterministic"]} == {"c", "d"}


def test_reference_is_read_over_the_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv")
    ref = write_reference(tmp_path / "r.json", {"edges": [{"from": "delta", "to": "alpha"}]})
    ds = load_dataset(csv_config(), path, reference_path=ref)
    assert ds.reference_kind == "user reference graph" and ds.reference.dtype == np.int8
    assert ds.reference.sum() == 1 and ds.reference[3, 0] == 1
    assert ds.stats["reference_edges"] == 1


def test_find_cycle() -> None:
    adj = np.zeros((4, 4), dtype=np.int8)
    adj[0, 1] = adj[1, 2] = adj[2, 3] = 1
    assert find_cycle(adj) == []
    adj[3, 1] = 1
    assert find_cycle(adj) == [1, 2, 3]


def test_config_defaults_and_refusals() -> None:
    assert csv_config().standardize_effective
    assert csv_config(csv_missing=-200.5).csv_missing == "-200.5"
    with pytest.raises(ValueError, match="reference_file applies to dataset 'csv' only"):
        build_config("uci", {"reference_file": "r.json"})
    for bad in ("../x.csv", "/etc/passwd", ".hidden", "a/b.csv", "upload:../x"):
        with pytest.raises(ValueError, match="data_file"):
            csv_config(data_file=bad)
