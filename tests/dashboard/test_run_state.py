"""The run page's progress line in words: waiting, live, finished."""

from __future__ import annotations

from typing import Any

from dashboard.run_state import progress_state


def run(status: str, last_epoch: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"status": status, "last_epoch": last_epoch, "epochs_total": 100, "kind": "run",
            **extra}


def test_a_queued_run_waits_for_a_slot_and_says_how_many_run() -> None:
    state = progress_state(run("queued"), {"runs_active": 2, "runs_queued": 1})
    assert state["live"] and state["queued"]  # the page keeps the count fresh while queued
    assert state["text"] == "waiting for a free trainer slot (2 running, max set by --max-runs)"


def test_a_running_run_without_an_epoch_is_starting() -> None:
    assert progress_state(run("running"), None)["text"] == "starting the trainer… (loading data)"
    sdk = progress_state(run("running", kind="sdk"), None)
    assert sdk["waiting"] == "waiting for the first epoch from your training process"
    live = progress_state(run("running", 12), None)
    # The browser draws this line.
    assert live == {"live": True, "waiting": None, "text": "", "queued": False}


def test_a_finished_run_shows_how_it_ended() -> None:
    early = progress_state(run("completed", 38, summary={"status": "early_stopped"}), None)
    assert not early["live"] and early["text"] == "completed · 38 of 100 epochs (early stop)"
    assert early["value"] == 38 and early["label"] == "38 / 100" and early["color"] == "success"
    stopped = progress_state(run("stopped", 12, summary={"status": "stopped"}), None)
    assert stopped["text"] == "stopped · 12 of 100 epochs" and stopped["color"] == "warning"
    failed = progress_state(run("failed"), None)
    assert failed["text"] == "failed · 0 of 100 epochs"
    assert failed["waiting"] == "failed before its first epoch: no epochs recorded"
