"""The run page's server-rendered panels: header, Stop, red flags, scorecard, adjacency and
progress state, from one read of the API; re-rendered only where what they show changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dash
from dash import html

from dashboard.client import BackendClient, BackendError
from dashboard.components import alert_card, has_reference, scorecard_table
from dashboard.figures import adjacency_figure
from dashboard.run_header import header, header_key
from dashboard.run_state import is_finished, progress_state

HIDDEN = {"display": "none"}


@dataclass(frozen=True)
class RunView:
    """Everything the server-rendered panels show, read from the API at one moment."""

    run: dict[str, Any]
    alerts: list[dict[str, Any]]
    card: dict[str, Any]
    graph: dict[str, Any] | None
    health: dict[str, Any] | None  # /healthz, read only for a queued run


def read_view(api: BackendClient, run_id: str) -> RunView:
    run = api.run(run_id)
    health = None
    if run["status"] == "queued":
        try:
            health = api.health()
        except BackendError:
            health = None  # the waiting line then says "? running"
    return RunView(run, api.alerts(run_id), api.scorecard(run_id), api.graph(run_id), health)


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
    now = {
        "header": header_key(run),
        # A card changes when its probes report, not only when a new alert arrives.
        "alerts": [[a["id"], a.get("verification")] for a in view.alerts],
        "scorecard": view.card,
        "graph": view.graph["epoch"] if view.graph else None,
        "state": progress_state(run, view.health),
    }

    def changed(key: str) -> bool:
        return key not in shown or now[key] != shown[key]

    cards: Any = dash.no_update
    if changed("alerts"):
        cards = [alert_card(a, run["config"], can_restart=True) for a in view.alerts] or [
            html.Div("none yet", className="text-muted")
        ]
    heatmap: Any = dash.no_update
    if changed("graph"):
        data = run.get("data") or {}
        reference = (data.get("reference_edges") or []) if has_reference(run) else None
        heatmap = adjacency_figure(view.graph, data.get("variables"), reference)
    finished = is_finished(run)
    return Panels(
        header=header(run) if changed("header") else dash.no_update,
        stop_disabled=finished,
        # A finished run has nothing to stop: no button, as W&B and TensorBoard show none.
        stop_style=HIDDEN if finished else {},
        cards=cards,
        scorecard=scorecard_table(view.card) if changed("scorecard") else dash.no_update,
        heatmap=heatmap,
        state=now["state"] if changed("state") else dash.no_update,
        shown=now,
    )
