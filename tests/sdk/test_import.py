"""`causalwatch import FILE`: a trainer's metrics.jsonl, or any JSONL/CSV, as a finished run."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from utils.backend_server import BackendServer
from utils.sdk_cli import run_cli

from backend.cli import main


@pytest.fixture(scope="module")
def trainer_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, very short run of our trainer: its folder with metrics.jsonl and config.json."""
    import subprocess

    runs = tmp_path_factory.mktemp("trainer-runs")
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "--preset", "synthetic", "--epochs", "2",
         "--set", "synthetic_samples=300", "--runs-dir", str(runs), "--run-id", "short",
         "--quiet"],
        cwd=runs, capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return runs / "short"


def imported_id(stdout: str) -> str:
    match = re.search(r"as run (\S+)", stdout)
    assert match, stdout
    return match.group(1)


def test_import_of_the_trainers_metrics_reproduces_its_records(
    shared_backend: BackendServer, trainer_run: Path, tmp_path: Path
) -> None:
    proc = run_cli(
        "import", str(trainer_run / "metrics.jsonl"), "--server", shared_backend.url,
        "--dir", str(tmp_path / "runs"), cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    run_id = imported_id(proc.stdout)
    assert f"{shared_backend.url}/api/runs/{run_id}" in proc.stdout

    lines = (trainer_run / "metrics.jsonl").read_text().splitlines()
    original = [json.loads(line) for line in lines]
    stored = shared_backend.metrics(run_id)
    assert len(stored) == len(original) == 2
    for mine, theirs in zip(stored, original, strict=True):
        assert mine["run_id"] == run_id
        keys = (set(mine) | set(theirs)) - {"run_id"}
        differing = {k: (mine.get(k), theirs.get(k)) for k in keys if mine.get(k) != theirs.get(k)}
        assert not differing, differing
    run = shared_backend.run(run_id)
    assert run["kind"] == "sdk" and run["status"] == "completed"
    assert run["name"] == "import of short"
    assert run["config"] == json.loads((trainer_run / "config.json").read_text())


def test_import_of_a_csv_with_a_column_mapping(
    shared_backend: BackendServer, tmp_path: Path
) -> None:
    log = tmp_path / "their_log.csv"
    log.write_text("\ufeffep;train_loss;recon;val_acc;note\n1;2.0;1.5;0.25;\n2;1.0;0.75;0.5;\n4;0.5;0.25;0.75;\n")
    proc = run_cli(
        "import", str(log), "--map", "ep=epoch,train_loss=loss_total,recon=loss_recon",
        "--server", shared_backend.url, "--dir", str(tmp_path / "runs"), cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    stored = shared_backend.metrics(imported_id(proc.stdout))
    assert [r["epoch"] for r in stored] == [1, 2, 4]
    assert [r["loss_total"] for r in stored] == [2.0, 1.0, 0.5]
    assert [r["loss_recon"] for r in stored] == [1.5, 0.75, 0.25]
    assert [r["custom"] for r in stored] == [{"val_acc": v} for v in (0.25, 0.5, 0.75)]


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        (None, (), "{file}: file not found"),
        ("epoch,loss_total,phase\n1,2.0,warmup\n", (),
         "{file}: line 2, column 'phase': phase: must be a number, got str 'warmup' "
         "(leave the column out with --map phase=)"),
        ("epoch,loss_total\n1,2.0\n", ("--map", "loss_total=loss_totl"),
         "--map: 'loss_totl' is not a record field (docs/metrics.md lists them; leave it out "
         "with loss_total=)"),
        ("epoch,clip\n1,150\n", ("--map", "clip=clip_pct"),
         "{file}: line 2, column 'clip': clip_pct: must be ≤ 100, got 150.0 "
         "(leave the column out with --map clip=)"),
        ('{"epoch": 1, "loss_total": 1.0}\n{"epoch": 1, "loss_total": 0.5}\n', (),
         "{file}: line 2, column 'epoch': 1 must be ≥ 1 and after the previous row's 1"),
    ],
)
def test_import_errors_name_the_file_line_and_column(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    args: tuple[str, ...],
    expected: str,
) -> None:
    file = tmp_path / ("log.jsonl" if content and content.startswith("{") else "log.csv")
    if content is not None:
        file.write_text(content)
    code = main(["import", str(file), *args, "--server", "http://127.0.0.1:9",
                 "--dir", str(tmp_path / "runs")])
    assert code == 2
    assert capsys.readouterr().err == "causalwatch import: " + expected.format(file=file) + "\n"
    assert not (tmp_path / "runs").exists()  # nothing half-imported is left behind


def test_a_cli_error_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    proc = run_cli("import", str(tmp_path / "gone.jsonl"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == f"causalwatch import: {tmp_path / 'gone.jsonl'}: file not found\n"
