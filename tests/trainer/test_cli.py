"""The real CLI in a subprocess: run files, exit codes, field-named errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.protocol import OUTCOME_FILE, EpochRecord, Outcome

pytestmark = pytest.mark.cli


def run_cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def read_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def check_run_folder(run_dir: Path, epochs: int, eval_every: int = 2) -> list[dict]:
    records = read_records(run_dir)
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    for r in records:
        EpochRecord.model_validate(r)  # every field of the contract, finite, in range
        assert r["run_id"] == run_dir.name
        has_eval = r["epoch"] % eval_every == 0 or r["epoch"] == epochs
        assert (r["f1"] is not None) == has_eval
        assert (r.get("shd") is not None) == has_eval
        total = r["share_recon"] + r["share_sparse"] + r["share_acyclic"] + r["share_disen"]
        assert total == pytest.approx(100.0, abs=1e-6)
    assert [r["step"] for r in records] == sorted(r["step"] for r in records)
    log = (run_dir / "train.log").read_text().splitlines()
    epoch_lines = [line for line in log if line.startswith("epoch ")]
    assert len(epoch_lines) == epochs
    assert "clip" in epoch_lines[0] and "logit std" in epoch_lines[0] and "lr " in epoch_lines[0]
    best = [r["epoch"] for r in records if r["is_best"]]
    assert best, "an evaluation epoch is always the first best"
    assert [i + 1 for i, line in enumerate(epoch_lines) if line.endswith("BEST")] == best
    config = json.loads((run_dir / "config.json").read_text())
    assert config["epochs"] == epochs
    outcome = Outcome.model_validate_json((run_dir / OUTCOME_FILE).read_text())
    assert outcome.status == "completed", outcome
    assert f"ran all {epochs} epochs" == outcome.reason
    return records


def test_uci_run_writes_jsonl_and_log(tmp_path: Path, uci_csv_path: Path) -> None:
    proc = run_cli(
        "--preset", "uci", "--epochs", "4", "--data", str(uci_csv_path),
        "--runs-dir", str(tmp_path), "--run-id", "uci-short",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    records = check_run_folder(tmp_path / "uci-short", 4)
    assert all(r["edges_topk"] == 13 for r in records)  # k = the reference's 13 edges
    assert "plausibility reference" in proc.stdout
    # The progress bar goes to stderr with the epoch count.
    assert "4/4" in proc.stderr
    assert (tmp_path / "uci-short" / "best.pt").exists()


def test_synthetic_run_and_standard_raw_warning(tmp_path: Path, uci_csv_path: Path) -> None:
    proc = run_cli(
        "--preset", "synthetic", "--epochs", "3", "--set", "synthetic_samples=300",
        "--set", "synthetic_mechanism=mlp", "--runs-dir", str(tmp_path), "--run-id", "syn",
        "--quiet", cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    check_run_folder(tmp_path / "syn", 3)
    assert "ground truth" in proc.stdout

    raw = run_cli(
        "--preset", "standard", "--epochs", "2", "--data", str(uci_csv_path),
        "--runs-dir", str(tmp_path), "--run-id", "raw", "--quiet", cwd=tmp_path,
    )
    assert raw.returncode == 0, raw.stderr
    assert "standardize is off" in raw.stderr
    assert "WARNING raw column variances" in (tmp_path / "raw" / "train.log").read_text()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "learning_rate_max=-1"], "learning_rate_max"),
        (["--set", "epochs=abc"], "epochs"),
        (["--set", "sparsify_method=gumbel"], "'topk', 'sigmoid'"),
        (["--set", "no_such_field=1"], "unknown field 'no_such_field'"),
        (["--run-id", "../escape"], "invalid --run-id"),
        # `$` alone would let a trailing newline through, which the backend's path refuses.
        (["--run-id", "r1\n"], "invalid --run-id"),
        (["--backend", "ftp://example"], "invalid --backend"),
    ],
)
def test_bad_config_exits_2_naming_the_field(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    proc = run_cli("--preset", "synthetic", "--runs-dir", str(tmp_path), *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir()), "no half-written run folder"


def test_bad_data_file_exits_2_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a\tb\tc\n1\t2\t3\n")
    proc = run_cli(
        "--preset", "uci", "--data", str(bad), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "bad.csv" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_non_finite_loss_stops_the_run_with_a_reason(tmp_path: Path, uci_csv_path: Path) -> None:
    # DAGMA's log-det is only defined while the spectral radius of P∘P is below 1; a dense
    # 13-node graph at p ≈ 0.5 is outside that domain from the first step.
    proc = run_cli(
        "--preset", "uci", "--epochs", "3", "--data", str(uci_csv_path),
        "--set", "acyclicity=dagma", "--set", "lambda_acyclic=1",
        "--runs-dir", str(tmp_path), "--run-id", "nan", "--quiet", cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "non-finite loss_acyclic" in proc.stdout
    assert "FAILED: non-finite" in (tmp_path / "nan" / "train.log").read_text()
    outcome = Outcome.model_validate_json((tmp_path / "nan" / OUTCOME_FILE).read_text())
    assert outcome.status == "failed" and "non-finite loss_acyclic" in outcome.reason


def test_relative_paths_resolve_against_the_start_dir(tmp_path: Path, uci_csv_path: Path) -> None:
    start = tmp_path / "start"
    start.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "air.csv").symlink_to(uci_csv_path)
    (start / "cfg.json").write_text(json.dumps({"batch_size": 512}))
    proc = run_cli(
        "--preset", "uci", "--epochs", "1", "--data", "../data/air.csv", "--config", "cfg.json",
        "--runs-dir", "out/runs", "--run-id", "rel", "--quiet", cwd=start,
    )
    assert proc.returncode == 0, proc.stderr
    config = json.loads((start / "out" / "runs" / "rel" / "config.json").read_text())
    assert config["batch_size"] == 512
    assert str(start / "out" / "runs" / "rel") in proc.stdout  # the run folder, absolute


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data", "../nope.csv"], "--data ../nope.csv: file not found (resolved to "),
        (["--config", "nope.json"], "--config nope.json: file not found (resolved to "),
        (["--runs-dir", "afile/runs"], "--runs-dir afile/runs: cannot be created (resolved to "),
        (["--runs-dir", "afile"], "--runs-dir afile: not a folder (resolved to "),
    ],
)
def test_bad_path_options_exit_2_naming_option_and_path(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "afile").write_text("")
    proc = run_cli("--preset", "synthetic", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert f"causalwatch: {expected}{tmp_path.parent}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_trainer_runs_its_math_on_one_thread_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trainer.cli import SINGLE_THREAD_ENV, main

    for name in SINGLE_THREAD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")  # the user's own choice
    assert main(["no-such-command"]) == 2
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "1"
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4"
