"""How the supervisor learns a run's outcome: the trainer's message, else its outcome file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.executors import Ended
from backend.schemas import RunPublic, RunStatus
from backend.settings import Settings
from backend.store import Store
from backend.supervisor import Supervisor, TrainerProcess, read_outcome
from trainer.config import build_config
from trainer.protocol import LOG_FILE, OUTCOME_FILE, Outcome


class _Gone:
    """A trainer handle whose process has ended; the supervisor only asks for its pid."""

    run_id = "r1"
    pid = None


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    settings = Settings(runs_dir=tmp_path / "runs")
    store = Store.from_url(settings.db_url)
    notified: list[RunPublic] = []
    try:
        yield Supervisor(settings, store, notified.append)
    finally:
        store.engine.dispose()


def _write_outcome(run_dir: Path, status: str, reason: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / OUTCOME_FILE).write_text(Outcome(status=status, reason=reason).model_dump_json())  # type: ignore[arg-type]


def test_outcome_file_is_read(tmp_path: Path) -> None:
    _write_outcome(tmp_path, "early_stopped", "no val_recon improvement for 15 epochs")
    assert read_outcome(tmp_path) == Outcome(
        status="early_stopped", reason="no val_recon improvement for 15 epochs"
    )


def test_old_run_folder_without_outcome_file_reads_its_log(tmp_path: Path) -> None:
    (tmp_path / LOG_FILE).write_text("epoch    2/2 | loss 1.0\nSTOPPED: stop requested after "
                                     "epoch 2\nsummary {}\n")
    assert read_outcome(tmp_path) == Outcome(status="stopped",
                                             reason="stop requested after epoch 2")


def test_no_word_from_the_trainer_is_none(tmp_path: Path) -> None:
    (tmp_path / LOG_FILE).write_text("epoch    1/2 | loss 1.0 | note: nothing ended here\n")
    assert read_outcome(tmp_path) is None
    (tmp_path / OUTCOME_FILE).write_text('{"status": "comp')  # cut by a crash
    assert read_outcome(tmp_path) is None


def test_recovered_run_takes_the_outcome_file(supervisor: Supervisor) -> None:
    _write_outcome(supervisor.runs_dir / "r1", "stopped", "stop requested after epoch 3")
    status, reason = supervisor._recover_from_files("r1")
    assert status is RunStatus.stopped
    assert reason.startswith("stop requested after epoch 3 (ended while the backend was away")


def test_lost_finished_message_is_made_good_by_the_file(supervisor: Supervisor) -> None:
    # A re-attached trainer's exit code is unknown (-1) and its finished message went to an
    # earlier backend: the outcome file still says it completed.
    _write_outcome(supervisor.runs_dir / "r1", "completed", "ran all 4 epochs")
    tp = TrainerProcess("r1", _Gone(), reattached=True)  # type: ignore[arg-type]
    assert supervisor._outcome(tp, Ended(-1)) == (RunStatus.completed, "ran all 4 epochs")


def _running(supervisor: Supervisor, run_id: str) -> None:
    config = build_config("uci").model_dump()
    supervisor.store.create_run(run_id=run_id, preset="uci", config=config)
    supervisor.store.set_status(run_id, RunStatus.running)


def test_the_message_wins_over_the_file(supervisor: Supervisor) -> None:
    # Its word arrives before the backend has re-attached its trainer: kept for the reap.
    _running(supervisor, "r1")
    _write_outcome(supervisor.runs_dir / "r1", "completed", "from the file")
    supervisor.report("r1", "failed", {"reason": "non-finite loss_acyclic"})
    tp = TrainerProcess("r1", _Gone())  # type: ignore[arg-type]
    status, reason = supervisor._outcome(tp, Ended(1))
    assert status is RunStatus.failed
    assert reason.startswith("non-finite loss_acyclic")


def test_a_word_after_the_recorded_end_is_not_kept(supervisor: Supervisor) -> None:
    _running(supervisor, "r2")
    supervisor.store.set_status("r2", RunStatus.completed, "ran all 4 epochs")
    supervisor.report("r2", "finished", {"status": "completed", "reason": "late"})
    supervisor.report("unknown", "finished", {"status": "completed"})
    assert supervisor._reports == {}
