"""A run folder across the trainer's life (trainer/runlog.py): written again by a restarted
trainer, never given a line a reader could not parse, its config kept beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from utils.records import epoch_record

from trainer.protocol import LOG_FILE, METRICS_FILE
from trainer.runlog import CONFIG_FILE, RunFiles


def test_a_reopened_folder_keeps_the_epochs_already_written(tmp_path: Path) -> None:
    with RunFiles(tmp_path, epochs=4) as files:
        files.record(epoch_record(1))
    with RunFiles(tmp_path, epochs=4) as files:
        files.record(epoch_record(2))
    lines = (tmp_path / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [epoch_record(1), epoch_record(2)]
    assert len((tmp_path / LOG_FILE).read_text().splitlines()) == 2


def test_every_line_is_on_disk_before_the_files_close(tmp_path: Path) -> None:
    """A killed trainer leaves each finished epoch: nothing waits in a buffer."""
    files = RunFiles(tmp_path, epochs=4)
    files.record(epoch_record(1))
    files.log("a note")
    assert json.loads((tmp_path / METRICS_FILE).read_text())["epoch"] == 1
    assert (tmp_path / LOG_FILE).read_text().endswith("a note\n")
    files.close()


def test_a_non_finite_record_is_refused_and_leaves_no_line(tmp_path: Path) -> None:
    with RunFiles(tmp_path, epochs=4) as files:
        files.record(epoch_record(1))
        with pytest.raises(ValueError):
            files.record({**epoch_record(2), "loss_total": float("nan")})
    assert len((tmp_path / METRICS_FILE).read_text().splitlines()) == 1
    assert len((tmp_path / LOG_FILE).read_text().splitlines()) == 1


def test_config_and_checkpoint_live_in_the_run_folder(tmp_path: Path) -> None:
    with RunFiles(tmp_path / "deep" / "run", epochs=4) as files:
        files.write_config({"run_id": "run", "epochs": 4})
        assert files.checkpoint_path.parent == files.run_dir == files.metrics_path.parent
    written = json.loads((tmp_path / "deep" / "run" / CONFIG_FILE).read_text())
    assert written == {"run_id": "run", "epochs": 4}
