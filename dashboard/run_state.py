"""A run's state in words, for the run page's progress line and its charts' placeholder.

A live run's line ("epoch 12 / 100 · ETA 37 s") is drawn in the browser from each record
(assets/live.js); everything else is decided here, from the API's run and /healthz: a queued
run waits for a trainer slot, a running one without an epoch is starting, a finished one
shows how it ended and nothing that moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dashboard.components import STATUS_COLORS

FINISHED = frozenset({"completed", "stopped", "failed"})
# The trainer's word for a patience stop (trainer/loop.py): completed, before its last epoch.
EARLY_STOPPED = "early_stopped"
# Bootstrap's colour of a live bar: the theme's, as before a run ends.
LIVE_COLOR = "primary"
# A run fed by the user's own training loop (the causalwatch SDK): we start and restart nothing.
SDK_KIND = "sdk"


def is_finished(run: Mapping[str, Any]) -> bool:
    return run["status"] in FINISHED


def waiting_text(run: Mapping[str, Any], health: Mapping[str, Any] | None) -> str | None:
    """What a run without an epoch yet is waiting for; None once it has one."""
    if run.get("last_epoch"):
        return None
    status = run["status"]
    if status == "queued":
        running = "?" if health is None else str(health.get("runs_active", "?"))
        return f"waiting for a free trainer slot ({running} running, max set by --max-runs)"
    if status == "running":
        if run.get("kind") == SDK_KIND:
            return "waiting for the first epoch from your training process"
        return "starting the trainer… (loading data)"
    return f"{status} before its first epoch: no epochs recorded"


def final_text(run: Mapping[str, Any]) -> str:
    """How a finished run ended: "completed · 38 of 100 epochs (early stop)"."""
    done = run.get("last_epoch") or 0
    text = f"{run['status']} · {done} of {run['epochs_total']} epochs"
    if (run.get("summary") or {}).get("status") == EARLY_STOPPED:
        text += " (early stop)"
    return text


def progress_state(run: Mapping[str, Any], health: Mapping[str, Any] | None) -> dict[str, Any]:
    """The progress bar and line of the run page, as the browser's `progress` callback takes it.

    `live` True: the browser formats the line from each new record; until the first one it
    shows `waiting`. `live` False (a finished run): `value`, `label`, `text` and `color` are
    final, and the bar neither stripes nor moves.
    """
    waiting = waiting_text(run, health)
    if not is_finished(run):
        # `queued`: the page hands this state the shell's /healthz reads, so the count of
        # running trainers moves while the run waits (assets/live.js `queuedHealth`).
        return {"live": True, "waiting": waiting, "text": waiting or "",
                "queued": run["status"] == "queued"}
    total = run["epochs_total"] or 1
    done = run.get("last_epoch") or 0
    return {
        "live": False,
        "waiting": waiting,
        "value": min(100.0, 100.0 * done / total),
        "label": f"{done} / {run['epochs_total']}",
        "text": final_text(run),
        "color": STATUS_COLORS.get(run["status"], "secondary"),
    }
