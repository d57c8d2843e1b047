"""The run page's panels from what the websocket pushed: no read of the API, and only the
panels whose content changed are re-rendered."""

from __future__ import annotations

from typing import Any

import dash

from dashboard.run_panels import current_run, live_view, render_panels


def _run(status: str = "running", last_epoch: int | None = 4, **extra: Any) -> dict[str, Any]:
    return {"id": "r1", "name": "standard run", "preset": "standard", "kind": "run",
            "config": {"lambda_sparse": 1e-5}, "status": status, "status_reason": None,
            "parent_id": None, "children": [], "epochs_total": 10, "last_epoch": last_epoch,
            "best_epoch": None, "f1_at_best": None, "shd_at_best": None, "max_f1_seen": None,
            "max_f1_epoch": None, "data": None, **extra}


def _alert(alert_id: int, verification: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": alert_id, "rule": f"rule_{alert_id}", "severity": "warning", "epoch": 3,
            "message": "m", "cause": "c", "suggested_changes": {"lambda_sparse": 0.05},
            "verification": verification}


def test_the_pushed_status_wins_and_the_scores_come_from_the_later_read() -> None:
    pushed = _run("completed", 4)
    stale = _run("running", 3, best_epoch=2, f1_at_best=0.1)
    assert current_run(pushed, stale) is pushed  # an older read never brings "running" back
    later = _run("running", 6, best_epoch=6, f1_at_best=0.4)
    merged = current_run(_run("running", 4), later)
    assert merged["status"] == "running" and merged["best_epoch"] == 6
    assert merged["f1_at_best"] == 0.4 and merged["last_epoch"] == 6
    assert current_run(None, later) is later


def test_pushed_alerts_render_their_cards_once() -> None:
    pushed = {"run_id": "r1", "run": _run(), "alerts": [_alert(1)], "graph": None}
    first = render_panels(live_view(pushed, None, None, "standard"), {})
    assert first.cards is not dash.no_update and len(first.cards) == 1
    assert first.scorecard is dash.no_update  # not re-read here: the panel keeps its table

    again = render_panels(live_view(pushed, None, None, "standard"), first.shown)
    assert again.cards is dash.no_update and again.header is dash.no_update
    assert again.heatmap is dash.no_update and again.state is dash.no_update

    probed = {**pushed, "alerts": [_alert(1, {"status": "verified", "probes": []})]}
    after_probe = render_panels(live_view(probed, None, None, "standard"), again.shown)
    assert after_probe.cards is not dash.no_update  # its verification changed


def test_a_status_event_rerenders_the_header_and_state_only() -> None:
    pushed = {"run_id": "r1", "run": _run(), "alerts": [], "graph": None}
    shown = render_panels(live_view(pushed, None, None, None), {}).shown
    done = {**pushed, "run": _run("completed", 10)}
    p = render_panels(live_view(done, None, None, None), shown)
    assert p.header is not dash.no_update and p.state is not dash.no_update
    assert p.stop_disabled and p.cards is dash.no_update and p.heatmap is dash.no_update


def test_a_reread_scorecard_is_drawn_and_unknown_parts_are_kept() -> None:
    card = {"levels": [{"level": "Minimum", "achieved": None, "criteria": []}]}
    fetched = {"run": _run(), "card": card}
    p = render_panels(live_view(None, fetched, None, None), {"alerts": [[1, None]]})
    assert p.scorecard is not dash.no_update
    assert p.cards is dash.no_update and p.heatmap is dash.no_update  # not pushed yet
    assert p.shown["alerts"] == [[1, None]]  # still what the page shows


def test_a_queued_run_counts_the_running_from_the_health_it_is_handed() -> None:
    pushed = {"run_id": "r1", "run": _run("queued", None), "alerts": [], "graph": None}
    one = render_panels(live_view(pushed, None, {"runs_active": 1}, None), {})
    assert "(1 running" in one.state["text"]
    two = render_panels(live_view(pushed, None, {"runs_active": 2}, None), one.shown)
    assert "(2 running" in two.state["text"]
