"""trainer.data: UCI loading in both formats, refusals, imputation, synthetic SEMs, reference."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trainer.config import TrainConfig, build_config
from trainer.data import DataError, Dataset, load_dataset, r2_from_others
from trainer.data import uci as uci_module
from trainer.data.reference import UCI_REFERENCE_EDGES, UCI_VARIABLES, reference_adjacency
from trainer.data.synthetic import simulate_er_dag, simulate_sem, topological_order
from trainer.data.uci import clean_and_split

# Counts on the distributed AirQualityUCI.csv, as docs/data.md reports them.
N_ROWS_RAW = 9471  # data lines, incl. 114 trailing separator-only lines
N_ROWS_ALL_MISSING = 145  # those 114 + 31 dated hours with all 13 values at -200
N_ROWS_SENSOR_OUTAGE = 335
N_ROWS_CLEAN = 8991
N_TRAIN, N_VAL = 7193, 1798
IMPUTED_CELLS = {
    "CO(GT)": 1647,
    "NMHC(GT)": 8104,
    "NOx(GT)": 1595,
    "NO2(GT)": 1598,
}
SENSORS = [c for c in UCI_VARIABLES if c.startswith("PT08.")]


# --- helpers and fixtures -----------------------------------------------------------------


def _uci(standardize: bool, val_fraction: float = 0.2) -> TrainConfig:
    return build_config("uci", {"standardize": standardize, "val_fraction": val_fraction})


def _original_frame(path: Path) -> pd.DataFrame:
    """The original file read independently of trainer.data, without the empty extras."""
    frame = pd.read_csv(path, sep=";", decimal=",")
    return frame[["Date", "Time", *UCI_VARIABLES]].dropna(how="all")


def _write_ucimlrepo_csv(path: Path, original: Path, with_datetime: bool) -> Path:
    """What ucimlrepo serves: comma separated, decimal point, no empty trailing rows."""
    frame = _original_frame(original)
    if not with_datetime:
        frame = frame[list(UCI_VARIABLES)]
    frame.to_csv(path, index=False)
    return path


def _original_lines(path: Path) -> list[str]:
    # read_bytes: read_text would translate the file's CRLF line ends
    return path.read_bytes().decode("utf-8").split("\r\n")


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\r\n".join(lines), encoding="utf-8", newline="")
    return path


def _assert_refused(path: Path, *fragments: str, **kwargs: Any) -> DataError:
    with pytest.raises(DataError) as info:
        load_dataset(_uci(True), data_path=path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


@pytest.fixture(autouse=True)
def _no_env_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(uci_module.DATA_ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def uci_standardized(uci_csv_path: Path) -> Dataset:
    return load_dataset(_uci(True), data_path=uci_csv_path)


@pytest.fixture(scope="module")
def uci_raw(uci_csv_path: Path) -> Dataset:
    return load_dataset(_uci(False), data_path=uci_csv_path)


# --- the original file ----------------------------------------------------------------------


def test_original_file_loads_with_documented_counts(uci_raw: Dataset) -> None:
    stats = uci_raw.stats
    assert uci_raw.name == "uci"
    assert uci_raw.variables == list(UCI_VARIABLES)
    assert stats["format"].startswith("original")
    assert stats["n_rows_raw"] == N_ROWS_RAW
    assert stats["n_rows_all_missing"] == N_ROWS_ALL_MISSING
    assert stats["n_rows_sensor_outage"] == N_ROWS_SENSOR_OUTAGE
    assert stats["n_rows_after_cleaning"] == N_ROWS_CLEAN
    assert (stats["n_train"], stats["n_val"]) == (N_TRAIN, N_VAL)
    assert uci_raw.train.shape == (N_TRAIN, 13)
    assert uci_raw.val.shape == (N_VAL, 13)
    assert stats["imputed_cells"] == {c: IMPUTED_CELLS.get(c, 0) for c in UCI_VARIABLES}
    # NMHC(GT) is measured only in spring 2004: all of validation is median-filled.
    assert stats["imputation"]["val"]["median"]["NMHC(GT)"] == N_VAL


def test_outputs_are_finite_float32_and_stats_are_json(
    uci_raw: Dataset, uci_standardized: Dataset
) -> None:
    for ds in (uci_raw, uci_standardized):
        for split in (ds.train, ds.val):
            assert split.dtype == np.float32
            assert np.isfinite(split).all()
        assert ds.reference.dtype == np.int8
        assert ds.reference_kind == "plausibility reference"
        assert ds.reference.sum() == 13
        json.dumps(ds.stats, allow_nan=False)


def test_standardization_uses_training_statistics(
    uci_raw: Dataset, uci_standardized: Dataset
) -> None:
    assert uci_standardized.standardized and not uci_raw.standardized
    np.testing.assert_allclose(uci_standardized.train.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(uci_standardized.train.std(axis=0), 1.0, atol=1e-4)
    mean = np.array([uci_raw.stats["train_mean"][c] for c in UCI_VARIABLES])
    std = np.array([uci_raw.stats["train_std"][c] for c in UCI_VARIABLES])
    # Validation is scaled with the training mean/std, not its own.
    np.testing.assert_allclose(
        uci_standardized.val, (uci_raw.val - mean) / std, rtol=1e-4, atol=1e-4
    )


def test_uci_preset_standardizes_by_default(uci_csv_path: Path) -> None:
    assert load_dataset(build_config("uci"), data_path=uci_csv_path).standardized
    assert not load_dataset(build_config("standard"), data_path=uci_csv_path).standardized


def test_split_is_chronological(uci_csv_path: Path, uci_raw: Dataset) -> None:
    frame = _original_frame(uci_csv_path)
    sensors = frame[SENSORS].replace(-200.0, np.nan)
    values = frame[list(UCI_VARIABLES)].replace(-200.0, np.nan)
    kept = frame[~values.isna().all(axis=1) & ~sensors.isna().all(axis=1)]
    cols = [UCI_VARIABLES.index(c) for c in SENSORS]  # sensors are never imputed once kept
    expected = kept[SENSORS].to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(uci_raw.train[:, cols], expected[:N_TRAIN])
    np.testing.assert_array_equal(uci_raw.val[:, cols], expected[N_TRAIN:])
    stamps = pd.to_datetime(kept["Date"] + " " + kept["Time"], format="%d/%m/%Y %H.%M.%S")
    assert stamps.is_monotonic_increasing
    assert stamps.iloc[N_TRAIN - 1] < stamps.iloc[N_TRAIN]


def test_raw_variances_and_near_deterministic_columns(uci_raw: Dataset) -> None:
    variances = uci_raw.stats["raw_variances"]
    assert min(variances, key=variances.get) == "AH"
    assert max(variances, key=variances.get) == "PT08.S5(O3)"
    assert variances["AH"] == pytest.approx(0.137, abs=0.001)
    assert variances["PT08.S5(O3)"] == pytest.approx(1.485e5, rel=1e-3)
    assert uci_raw.stats["variance_ratio"] == pytest.approx(1.084e6, rel=1e-3)
    # Measured on the cleaned train split with the quadratic fit: C6H6(GT) is flagged,
    # AH (0.995 from T and RH) and PT08.S2(NMHC) (0.9988) stay just below 0.999.
    r2 = uci_raw.stats["r2_from_others"]
    assert r2["C6H6(GT)"] == pytest.approx(0.99996, abs=5e-5)
    assert r2["AH"] == pytest.approx(0.9949, abs=5e-4)
    assert [c["column"] for c in uci_raw.stats["near_deterministic"]] == ["C6H6(GT)"]


def test_r2_from_others_finds_an_exact_function() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    x = np.column_stack([x, 2 * x[:, 0] - x[:, 1] + 1e-3 * rng.normal(size=500)])
    r2 = r2_from_others(x)
    assert r2[3] > 0.999
    assert r2[2] < 0.05
    # A curved function is found too: that is why the fit has quadratic terms.
    y = np.column_stack([x[:, :3], x[:, 0] ** 2 + 1e-3 * rng.normal(size=500)])
    assert r2_from_others(y)[3] > 0.999


# --- ucimlrepo's format and the download path -----------------------------------------------


@pytest.mark.parametrize("with_datetime", [True, False])
def test_ucimlrepo_csv_gives_the_same_data(
    tmp_path: Path, uci_csv_path: Path, uci_raw: Dataset, with_datetime: bool
) -> None:
    path = _write_ucimlrepo_csv(tmp_path / "uci.csv", uci_csv_path, with_datetime)
    ds = load_dataset(_uci(False), data_path=path)
    assert ds.stats["format"].startswith("ucimlrepo")
    assert ds.stats["n_rows_raw"] == N_ROWS_RAW - 114  # no trailing separator rows
    for key in ("n_rows_after_cleaning", "n_train", "n_val", "imputed_cells", "raw_variances"):
        assert ds.stats[key] == uci_raw.stats[key]
    np.testing.assert_array_equal(ds.train, uci_raw.train)
    np.testing.assert_array_equal(ds.val, uci_raw.val)


def test_download_goes_through_ucimlrepo_then_the_cache(
    tmp_path: Path, uci_csv_path: Path, uci_raw: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ucimlrepo

    frame = _original_frame(uci_csv_path)
    calls: list[int] = []

    def fake_fetch(id: int) -> SimpleNamespace:
        calls.append(id)
        return SimpleNamespace(data=SimpleNamespace(features=frame.copy()))

    monkeypatch.setattr(ucimlrepo, "fetch_ucirepo", fake_fetch)
    cache = tmp_path / "cache"
    first = load_dataset(_uci(False), cache_dir=cache)
    assert calls == [360]
    assert (cache / uci_module.CACHE_FILENAME).is_file()
    second = load_dataset(_uci(False), cache_dir=cache)
    assert calls == [360], "the second load must read the cache, not download again"
    assert second.stats["source"] == str(cache / uci_module.CACHE_FILENAME)
    for ds in (first, second):
        np.testing.assert_array_equal(ds.train, uci_raw.train)
        np.testing.assert_array_equal(ds.val, uci_raw.val)


def test_failed_download_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ucimlrepo

    def offline(id: int) -> None:
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(ucimlrepo, "fetch_ucirepo", offline)
    with pytest.raises(DataError, match="network unreachable") as info:
        load_dataset(_uci(True), cache_dir=tmp_path)
    assert str(tmp_path / uci_module.CACHE_FILENAME) in str(info.value)
    assert "--data" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_path_resolution_order(
    tmp_path: Path, uci_csv_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(uci_module.DATA_ENV_VAR, str(uci_csv_path))
    assert load_dataset(_uci(True), cache_dir=tmp_path).stats["source"] == str(uci_csv_path)
    other = _write_ucimlrepo_csv(tmp_path / "other.csv", uci_csv_path, with_datetime=False)
    assert load_dataset(_uci(True), data_path=other).stats["source"] == str(other)
    monkeypatch.setenv(uci_module.DATA_ENV_VAR, str(tmp_path / "gone.csv"))
    with pytest.raises(DataError, match=uci_module.DATA_ENV_VAR):
        load_dataset(_uci(True), cache_dir=tmp_path)


# --- refused files ----------------------------------------------------------------------------


def test_tab_separated_file_is_refused(tmp_path: Path, uci_csv_path: Path) -> None:
    text = uci_csv_path.read_text(encoding="utf-8").replace(";", "\t")
    path = tmp_path / "tabs.csv"
    path.write_text(text, encoding="utf-8", newline="")
    _assert_refused(path, "';'", "','", "tab")


def test_missing_column_is_named(tmp_path: Path, uci_csv_path: Path) -> None:
    frame = _original_frame(uci_csv_path).drop(columns=["NO2(GT)"])
    path = tmp_path / "no_no2.csv"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    _assert_refused(path, "missing column", "NO2(GT)")


@pytest.mark.parametrize("cell", ["abc", "inf"])
def test_bad_cell_names_column_and_line(tmp_path: Path, uci_csv_path: Path, cell: str) -> None:
    lines = _original_lines(uci_csv_path)
    fields = lines[10].split(";")
    fields[2] = cell  # CO(GT) on the 11th line of the file
    lines[10] = ";".join(fields)
    path = _write_lines(tmp_path / "bad_cell.csv", lines)
    _assert_refused(path, "'CO(GT)'", repr(cell), "line 11")


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    _assert_refused(path, "empty")


def test_too_few_rows_is_refused(tmp_path: Path, uci_csv_path: Path) -> None:
    path = _write_lines(tmp_path / "short.csv", _original_lines(uci_csv_path)[:11])
    _assert_refused(path, "only 10 usable row(s)", f"at least {uci_module.MIN_ROWS}")


def test_nonexistent_path_is_refused(tmp_path: Path) -> None:
    _assert_refused(tmp_path / "nope.csv", "file not found")


def test_directory_is_refused(tmp_path: Path) -> None:
    _assert_refused(tmp_path, "not a regular file")


def test_oversized_file_is_refused_before_reading(
    tmp_path: Path, uci_csv_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uci_module, "MAX_FILE_BYTES", 1024)
    _assert_refused(uci_csv_path, "MB limit")


def _garbage(path: Path, size: int, written: int = 2**20) -> Path:
    """`size` bytes of garbage: random bytes at both ends, a sparse hole between (no disk)."""
    with path.open("wb") as handle:
        handle.write(os.urandom(min(written, size)))
        if size > written:
            handle.seek(size - written)
            handle.write(os.urandom(written))
    return path


def test_a_gigabyte_of_garbage_is_cut_by_the_size_limit(tmp_path: Path) -> None:
    big = _garbage(tmp_path / "garbage.bin", 2**30)
    assert big.stat().st_size > uci_module.MAX_FILE_BYTES
    _assert_refused(big, "1024 MB", "above the 512 MB limit", "right file")


def test_garbage_under_the_size_limit_is_refused_as_not_text(tmp_path: Path) -> None:
    _assert_refused(_garbage(tmp_path / "garbage.bin", 8 * 2**20), "UTF-8")


# --- imputation -------------------------------------------------------------------------------


def _frame(columns: dict[str, list[float]], n: int) -> pd.DataFrame:
    """13 columns of 1.0 .. n (so nothing is constant), with the given columns replaced."""
    base = {c: np.arange(1.0, n + 1) for c in UCI_VARIABLES}
    base.update({c: np.asarray(v, dtype=float) for c, v in columns.items()})
    return pd.DataFrame(base)


def test_short_gaps_interpolated_long_gaps_median_filled() -> None:
    n = 100
    co = np.arange(n, dtype=float)
    co[10:13] = np.nan  # 3 missing hours: a straight line
    co[30:34] = np.nan  # 4 missing hours: too long, training median
    split = clean_and_split(_frame({"CO(GT)": co}, n), val_fraction=0.2, path=Path("x.csv"))
    col = UCI_VARIABLES.index("CO(GT)")
    np.testing.assert_allclose(split.train[10:13, col], [10.0, 11.0, 12.0])
    median = np.nanmedian(co[:80])
    np.testing.assert_allclose(split.train[30:34, col], median)
    counts = split.stats["imputation"]["train"]
    assert counts["interpolated"]["CO(GT)"] == 3
    assert counts["median"]["CO(GT)"] == 4


def test_imputation_never_reads_across_the_split() -> None:
    n = 100
    co = np.arange(n, dtype=float)
    co[78:80] = np.nan  # the last two training hours; the next measured hour is in validation
    split = clean_and_split(_frame({"CO(GT)": co}, n), val_fraction=0.2, path=Path("x.csv"))
    col = UCI_VARIABLES.index("CO(GT)")
    np.testing.assert_allclose(split.train[78:80, col], np.nanmedian(co[:80]))


def test_gap_length_counts_dropped_outage_hours() -> None:
    n = 100
    columns = {c: np.arange(1.0, n + 1) for c in SENSORS}
    for values in columns.values():
        values[20:23] = np.nan  # a 3-hour sensor outage: those rows are dropped
    co = np.arange(1.0, n + 1)
    co[23] = np.nan  # with the outage, 4 hours pass between measured CO values
    split = clean_and_split(_frame({**columns, "CO(GT)": co}, n), 0.2, Path("x.csv"))
    assert split.stats["n_rows_sensor_outage"] == 3
    assert split.stats["imputation"]["train"]["median"]["CO(GT)"] == 1


# --- synthetic ----------------------------------------------------------------------------------


def _synthetic(**overrides: Any) -> Dataset:
    return load_dataset(build_config("synthetic", overrides))


def test_er_dag_is_acyclic_with_the_expected_edge_count() -> None:
    counts = []
    for seed in range(200):
        adj = simulate_er_dag(13, 13, np.random.default_rng(seed))
        assert adj.dtype == np.int8
        assert not np.diag(adj).any()
        assert len(topological_order(adj)) == 13  # raises on a cycle
        counts.append(int(adj.sum()))
    # Binomial(78, 1/6): mean 13, standard error of the mean over 200 draws ~0.23.
    assert abs(np.mean(counts) - 13) < 1.0


@pytest.mark.parametrize("mechanism", ["linear", "mlp"])
def test_synthetic_dataset_shapes_and_ground_truth(mechanism: str) -> None:
    ds = _synthetic(synthetic_mechanism=mechanism, synthetic_nodes=8, synthetic_edges=10)
    assert ds.name == "synthetic"
    assert ds.variables == [f"X{i}" for i in range(1, 9)]
    assert ds.train.shape == (1600, 8) and ds.val.shape == (400, 8)
    assert ds.train.dtype == np.float32 and np.isfinite(ds.train).all()
    assert ds.reference_kind == "ground truth"
    assert ds.reference.shape == (8, 8) and ds.reference.dtype == np.int8
    assert ds.stats["generator"]["edges"] == int(ds.reference.sum())
    assert not ds.standardized  # synthetic default: off
    json.dumps(ds.stats, allow_nan=False)


def test_synthetic_is_reproducible_per_seed() -> None:
    a, b, c = _synthetic(seed=3), _synthetic(seed=3), _synthetic(seed=4)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.reference, b.reference)
    assert not np.array_equal(a.train, c.train)


def test_sem_follows_the_graph() -> None:
    rng = np.random.default_rng(0)
    adj = np.zeros((3, 3), dtype=np.int8)
    adj[2, 0] = adj[0, 1] = 1  # X3 -> X1 -> X2
    x = simulate_sem(adj, 5000, "linear", 0.1, rng)
    # X1 on X3: one weight in +-[0.5, 2], residual = the noise; X2 on (X1, X3): X3 unused.
    w1, *_ = np.linalg.lstsq(x[:, [2]], x[:, 0], rcond=None)
    assert 0.45 < abs(w1[0]) < 2.05
    assert np.std(x[:, 0] - x[:, [2]] @ w1) == pytest.approx(0.1, rel=0.05)
    w2, *_ = np.linalg.lstsq(x[:, [0, 2]], x[:, 1], rcond=None)
    assert 0.45 < abs(w2[0]) < 2.05 and abs(w2[1]) < 0.05
    with pytest.raises(ValueError, match="cycle"):
        simulate_sem(adj + adj.T, 10, "linear", 1.0, rng)


def test_synthetic_standardize_on_request() -> None:
    ds = _synthetic(standardize=True)
    np.testing.assert_allclose(ds.train.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(ds.train.std(axis=0), 1.0, atol=1e-4)


# --- reference graph ----------------------------------------------------------------------------


def test_reference_matches_the_shared_file(uci_reference_graph_path: Path) -> None:
    shared = json.loads(uci_reference_graph_path.read_text(encoding="utf-8"))
    assert tuple(shared["variables"]) == UCI_VARIABLES
    shared_edges = {(e["from"], e["to"]) for e in shared["edges"]}
    ours = {(cause, effect) for cause, effect, _ in UCI_REFERENCE_EDGES}
    assert ours == shared_edges
    assert len(UCI_REFERENCE_EDGES) == len(ours) == 13
    confidence = {(e["from"], e["to"]): e["confidence"] for e in shared["edges"]}
    assert {(c, e): conf for c, e, conf in UCI_REFERENCE_EDGES} == confidence


def test_reference_adjacency_follows_the_variable_order() -> None:
    adj = reference_adjacency(UCI_VARIABLES)
    assert adj.sum() == 13
    assert adj[UCI_VARIABLES.index("T"), UCI_VARIABLES.index("RH")] == 1
    assert adj[UCI_VARIABLES.index("RH"), UCI_VARIABLES.index("T")] == 0
    subset = reference_adjacency(["AH", "T", "RH"])  # T -> RH, T -> AH, RH -> AH
    assert subset.tolist() == [[0, 0, 0], [1, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="not UCI"):
        reference_adjacency(["T", "wind"])
