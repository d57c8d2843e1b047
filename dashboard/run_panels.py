"""The run page's server-rendered panels: header, Stop, red flags, scorecard, adjacency and
progress state; re-rendered only where what they show changed.

At page load they are rendered from one read of the API (`read_view`). After that from what
the live websocket pushed (`live_view`: the run, its alerts, its latest graph) and from the
one thing the backend computes but does not push, re-read after evaluations (`fetched`: the
scorecard and the run's best-checkpoint scores).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import dash
from dash import html

from dashboard.client import BackendClient, BackendError
from dashboard.components import alert_card, has_reference, scorecard_table
from dashboard.figures import adjacency_figure
from dashboard.run_header import header, header_key
from dashboard.run_state import SDK_KIND, is_finished, progress_state

HIDDEN = {"display": "none"}


class Unknown(Enum):
    """A part of the view this update does not know: its panel keeps what it shows."""

    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN

# What the backend computes from every record and refreshes in a re-read run, while a status
# event's run carries them only as of its status change.
SCORE_FIELDS = ("last_epoch", "eta_seconds", "progress", "best_epoch", "f1_at_best",
                "shd_at_best", "max_f1_seen", "max_f1_epoch", "open_alerts")


@dataclass(frozen=True)
class RunView:
    """Everything the server-rendered panels show."""

    run: dict[str, Any]
    alerts: list[dict[str, Any]] | Unknown
    card: dict[str, Any] | Unknown
    graph: dict[str, Any] | Unknown | None
    health: dict[str, Any] | None  # /healthz, only for a queued run
    label: str | None = None  # the run's lineage label (dashboard/labels.py)


def read_view(api: BackendClient, run_id: str) -> RunView:
    run = api.run(run_id)
    health = None
    if run["status"] == "queued":
        try:
            health = api.health()
        except BackendError:
            health = None  # the waiting line then says "? running"
    return RunView(run, api.alerts(run_id), api.scorecard(run_id), api.graph(run_id), health)


def current_run(pushed: dict[str, Any] | None, fetched: dict[str, Any] | None) -> dict[str, Any]:
    """The run as the page shows it: status, reason and children as last pushed (a status
    event is never older than the page's last read of them); the scores from whichever of the
    two has seen more epochs (a status event's were taken at its status change)."""
    if pushed is None or fetched is None:
        run = pushed or fetched
        if run is None:
            raise ValueError("current_run: neither a pushed nor a fetched run")
        return run
    if (fetched.get("last_epoch") or 0) <= (pushed.get("last_epoch") or 0):
        return pushed
    return {**pushed, **{k: fetched.get(k) for k in SCORE_FIELDS}}


def live_view(
    panels: Mapping[str, Any] | None,
    fetched: Mapping[str, Any] | None,
    health: dict[str, Any] | None,
    label: str | None,
) -> RunView:
    """The view from the live stores: `panels` as live.js pushed them ({run, alerts, graph}),
    `fetched` as the last re-read left it ({run, card})."""
    pushed = panels or {}
    read = fetched or {}
    run = current_run(pushed.get("run"), read.get("run"))
    return RunView(
        run=run,
        alerts=pushed["alerts"] if "alerts" in pushed else UNKNOWN,
        card=read["card"] if "card" in read else UNKNOWN,
        graph=pushed["graph"] if "graph" in pushed else UNKNOWN,
        health=health if run["status"] == "queued" else None,
        label=label,
    )


@dataclass(frozen=True)
class Panels:
    """Each panel's new content, or `dash.no_update` where what it shows has not changed."""

    header: Any
    stop_disabled: bool
    stop_style: dict[str, Any]
    cards: Any
    scorecard: Any
    heatmap: Any
    state: Any
    shown: dict[str, Any]


def render_panels(view: RunView, shown: dict[str, Any]) -> Panels:
    """The panels of `view`, re-rendered only where they differ from `shown` ({}: all).

    Replacing the header or the alert cards while the user clicks Stop or "restart with
    fix" would lose the click, and every re-render costs the browser a redraw.
    """
    run = view.run
    now = dict(shown)
    now["header"] = [view.label, *header_key(run)]
    now["state"] = progress_state(run, view.health)
    if not isinstance(view.alerts, Unknown):
        # A card changes when its probes report, not only when a new alert arrives.
        now["alerts"] = [[a["id"], a.get("verification")] for a in view.alerts]
    if not isinstance(view.card, Unknown):
        now["scorecard"] = view.card
    if not isinstance(view.graph, Unknown):
        now["graph"] = view.graph["epoch"] if view.graph else None

    def changed(key: str) -> bool:
        return key in now and (key not in shown or now[key] != shown[key])

    cards: Any = dash.no_update
    if changed("alerts") and not isinstance(view.alerts, Unknown):
        sdk = run.get("kind") == SDK_KIND
        cards = [alert_card(a, run["config"], can_restart=True, sdk=sdk)
                 for a in view.alerts] or [
            html.Div("none yet", className="text-muted")
        ]
    heatmap: Any = dash.no_update
    if changed("graph") and not isinstance(view.graph, Unknown):
        data = run.get("data") or {}
        reference = (data.get("reference_edges") or []) if has_reference(run) else None
        heatmap = adjacency_figure(view.graph, data.get("variables"), reference)
    scorecard: Any = dash.no_update
    if changed("scorecard") and not isinstance(view.card, Unknown):
        scorecard = scorecard_table(view.card)
    finished = is_finished(run)
    return Panels(
        header=header(run, view.label) if changed("header") else dash.no_update,
        stop_disabled=finished,
        # A finished run has nothing to stop: no button, as W&B and TensorBoard show none.
        stop_style=HIDDEN if finished else {},
        cards=cards,
        scorecard=scorecard,
        heatmap=heatmap,
        state=now["state"] if changed("state") else dash.no_update,
        shown=now,
    )
