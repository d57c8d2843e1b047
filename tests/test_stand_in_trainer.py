"""The streaming stand-in (tests/utils/stream_trainer.py) leaves what a real trainer leaves.

Many backend and browser tests run it instead of `python -m trainer`; should the trainer
gain a run file, a record field or a final word, this says the stand-in no longer stands in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from utils.stream_trainer import write_stream_trainer

ARGS = ["--preset", "synthetic", "--epochs", "3", "--set", "synthetic_samples=200", "--quiet"]


def train(python: str, runs_dir: Path, run_id: str) -> Path:
    done = subprocess.run(
        [python, "-m", "trainer", *ARGS, "--runs-dir", str(runs_dir), "--run-id", run_id],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return runs_dir / run_id


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_stand_in_leaves_a_real_trainers_files_records_and_outcome(tmp_path: Path) -> None:
    real = train(sys.executable, tmp_path / "runs", "real")
    stand_in = train(str(write_stream_trainer(tmp_path)), tmp_path / "runs", "stand-in")

    checkpoint = {"best.pt"}  # the one file only a model that learns has
    assert {p.name for p in stand_in.iterdir()} == {p.name for p in real.iterdir()} - checkpoint
    real_records, stand_in_records = records(real), records(stand_in)
    assert [r["epoch"] for r in stand_in_records] == [r["epoch"] for r in real_records]
    assert [sorted(r) for r in stand_in_records] == [sorted(r) for r in real_records]
    # Evaluated on the same epochs: the eval-only fields are null on the same ones.
    assert [r["f1"] is None for r in stand_in_records] == [r["f1"] is None for r in real_records]
    assert (stand_in / "outcome.json").read_text() == (real / "outcome.json").read_text()
    config = json.loads((stand_in / "config.json").read_text())
    assert config | {"run_id": "real"} == json.loads((real / "config.json").read_text())
