"""A run's own files, in-process: what a backend that was away reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.protocol import LOG_FILE, METRICS_FILE, OUTCOME_FILE, Outcome
from trainer.runlog import RunFiles, format_epoch_line

RECORD = {
    "epoch": 3, "loss_total": 1.5, "share_recon": 90.0, "share_sparse": 5.0,
    "share_acyclic": 3.0, "share_disen": 2.0, "clip_pct": 12.5, "lr": 1e-4,
    "logit_std": 0.25, "edges_at_05": 4, "edges_tuned": 5, "threshold_tuned": 0.42,
    "f1": 0.5, "f1_skeleton": 0.6, "shd": 9, "val_recon": 0.3, "is_best": True,
}


def test_records_and_log_lines_land_in_the_contract_files(tmp_path: Path) -> None:
    with RunFiles(tmp_path / "r", epochs=10) as files:
        files.record(RECORD)
        files.record({**RECORD, "epoch": 4, "f1": None, "is_best": False})
    lines = (tmp_path / "r" / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [3, 4]
    log = (tmp_path / "r" / LOG_FILE).read_text().splitlines()
    assert log[0].startswith("epoch    3/10") and log[0].endswith("| BEST")
    assert "SHD 9" in log[0] and "F1" not in log[1]


def test_outcome_is_written_whole_and_reads_back(tmp_path: Path) -> None:
    files = RunFiles(tmp_path / "r", epochs=2)
    files.write_outcome(Outcome(status="early_stopped", reason="no val_recon improvement"))
    files.close()
    written = Outcome.model_validate_json((tmp_path / "r" / OUTCOME_FILE).read_text())
    assert written == Outcome(status="early_stopped", reason="no val_recon improvement")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(
        [METRICS_FILE, LOG_FILE, OUTCOME_FILE]
    ), "no temporary file left behind"


def test_format_epoch_line_names_each_share() -> None:
    line = format_epoch_line(RECORD, 10)
    assert "recon 90.0% sparse 5.0% acyclic 3.0% disen 2.0%" in line
    assert "clip  12.5%" in line


def test_outcome_refuses_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="status"):
        Outcome(status="exploded", reason="?")  # type: ignore[arg-type]
