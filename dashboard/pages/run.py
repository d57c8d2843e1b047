"""One run, live: progress, health charts, adjacency, red flags with one-click fixes, scorecard."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import dash
import dash_bootstrap_components as dbc
from dash import ALL, ClientsideFunction, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import client, ids
from dashboard.client import BackendError
from dashboard.components import (
    alert_card,
    best_checkpoint_text,
    has_reference,
    max_f1_text,
    run_reference,
    scorecard_table,
    status_badge,
)
from dashboard.figures import (
    NO_REFERENCE_NOTE,
    adjacency_figure,
    empty_live_figures,
    level_guides,
)
from dashboard.links import download_path

dash.register_page(__name__, path_template="/run/<run_id>", title="Run · causalwatch")

GRAPH_CONFIG = {"displaylogo": False, "responsive": True}


def _clip_norm(run: dict[str, Any]) -> float | None:
    value = run["config"].get("grad_clip_norm")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def layout(run_id: str | None = None, **_query: Any) -> html.Div:
    if not run_id:
        return dbc.Alert("No run given.", color="warning")
    try:
        run = client.get().run(run_id)
        guides = level_guides(client.get().thresholds())
    except BackendError as err:
        return dbc.Alert(f"Cannot show run {run_id}: {err.message}.", color="danger",
                         className="mt-3")
    ref_size, ref_kind = run_reference(run)
    # Charts start empty: every point, history included, arrives through the live channel.
    figures = empty_live_figures(ref_size, ref_kind, _clip_norm(run), guides)
    graphs = {
        name: dcc.Graph(id=ids.graph_id(name), figure=fig, config=GRAPH_CONFIG)
        for name, fig in figures.items()
    }
    # The dashboard's own routes: they redirect to the backend with a fresh ticket on click.
    downloads = dbc.ButtonGroup([
        dbc.Button(label, href=download_path(run_id, what), external_link=True,
                   color="secondary", outline=True, size="sm", id=f"download-{what}")
        for what, label in (("csv", "metrics CSV"), ("json", "metrics JSON"), ("log", "log"))
    ])
    return html.Div([
        dcc.Store(id=ids.RUN_ID, data=run_id),
        dcc.Store(id=ids.LIVE_METRICS),
        dcc.Store(id=ids.LIVE_EVENT),
        dcc.Store(id=ids.LIVE_STATUS),
        dcc.Store(id=ids.RUN_SHOWN, data={"header": _header_key(run)}),
        dcc.Store(id=ids.RESTART_REQUEST),
        dcc.Location(id=ids.RUN_REDIRECT, refresh=True),
        html.Div(id=ids.RUN_HEADER, children=_header(run), className="mt-3"),
        # Outside the header: a re-rendered header must not swallow a click on Stop.
        dbc.Button("Stop", id=ids.RUN_STOP, color="danger", size="sm", className="mt-2",
                   disabled=not _stoppable(run)),
        # Acts on the text advice too: any change to this run's config, as a linked restart.
        dbc.Button("Edit and restart", id=ids.RUN_EDIT, href="/new?from=" + quote(run_id, safe=""),
                   color="primary", outline=True, size="sm", className="mt-2 ms-2"),
        dbc.Row([
            dbc.Col(dbc.Progress(id=ids.RUN_PROGRESS, value=0, label="", striped=True,
                                 style={"height": "22px"}), md=6),
            dbc.Col(html.Span(id=ids.RUN_PROGRESS_TEXT, className="small"), md=4),
            dbc.Col(downloads, md=2, className="text-end"),
        ], className="my-2 align-items-center"),
        dbc.Alert(id=ids.RUN_MESSAGE, is_open=False, dismissable=True),
        dbc.Row([
            dbc.Col([
                dbc.Row([dbc.Col(graphs["clip"], lg=6), dbc.Col(graphs["logit-std"], lg=6)]),
                dbc.Row([dbc.Col(graphs["loss-shares"], lg=6),
                         dbc.Col(graphs["loss-total"], lg=6)]),
                dbc.Row([dbc.Col(graphs["edges"], lg=6), dbc.Col(graphs["accuracy"], lg=6)]),
                dbc.Row([dbc.Col(graphs["grad-terms"], lg=6),
                         dbc.Col(graphs["update-ratio"], lg=6)]),
                dbc.Row([dbc.Col(graphs["lr"], lg=6)]),
                dcc.Graph(id=ids.HEATMAP, config=GRAPH_CONFIG, figure=adjacency_figure(
                    None, None, [] if ref_size is not None else None)),
            ], xl=8),
            dbc.Col([
                html.H5("Red flags"),
                html.Div(id=ids.ALERTS, children=html.Div("none yet", className="text-muted")),
                html.H5("Scorecard", className="mt-3"),
                html.Div(id=ids.SCORECARD),
            ], xl=4),
        ]),
    ])


def _header(run: dict[str, Any]) -> html.Div:
    parent = run.get("parent_id")
    lineage: list[Any] = []
    if parent:
        lineage = [" · restarted from ", dcc.Link(parent, href=f"/run/{parent}"), " · ",
                   dcc.Link("compare with parent", href=f"/compare?runs={parent},{run['id']}",
                            id="compare-with-parent")]
    children = run.get("children") or []
    if children:
        lineage += [" · restarts: "] + [
            dcc.Link(c, href=f"/run/{c}", className="me-1") for c in children
        ]
    reason = run.get("status_reason")
    return html.Div([
        html.H3([run.get("name") or run["id"], status_badge(run["status"], ids.RUN_STATUS)]),
        html.Div([f"{run['id']} · preset {run['preset']}", *lineage],
                 className="text-muted small"),
        _scores(run),
        html.Pre(reason, className="small mt-2 mb-0 run-reason") if reason else None,
    ])


def _scores(run: dict[str, Any]) -> html.Div:
    """The best checkpoint's F1/SHD beside the highest F1 seen, each named for what it is."""
    ref_size, ref_kind = run_reference(run)
    scored = f"F1/SHD vs the {ref_kind}" if ref_size is not None else NO_REFERENCE_NOTE
    return html.Div([
        html.Span("best checkpoint (label-free, lowest val_recon): ", className="text-muted"),
        html.Span(best_checkpoint_text(run), id=ids.RUN_F1_AT_BEST),
        html.Span(" · max F1 seen at any evaluation: ", className="text-muted"),
        html.Span(max_f1_text(run), id=ids.RUN_MAX_F1),
        html.Span(f" · {scored}", className="text-muted"),
    ], className="small mt-1")


def _header_key(run: dict[str, Any]) -> list[Any]:
    """What the header shows: it is re-rendered only when this changes."""
    return [run.get("name"), run["status"], run.get("status_reason"), run.get("children"),
            *(run.get(k) for k in ("best_epoch", "f1_at_best", "shd_at_best", "max_f1_seen",
                                   "max_f1_epoch"))]


def _stoppable(run: dict[str, Any]) -> bool:
    return run["status"] in ("queued", "running")


# Subscribe the page to the backend's live stream (assets/live.js).
dash.clientside_callback(
    ClientsideFunction(namespace="causalwatch", function_name="watch"),
    Output(ids.LIVE_STATUS, "id"),
    Input(ids.RUN_ID, "data"),
    State(ids.API, "data"),
)

# New records → extendData of every chart, without a server round trip.
dash.clientside_callback(
    ClientsideFunction(namespace="causalwatch", function_name="extend"),
    [Output(ids.graph_id(name), "extendData") for name in ids.LIVE_GRAPHS],
    Input(ids.LIVE_METRICS, "data"),
    [State(ids.graph_id(name), "id") for name in ids.LIVE_GRAPHS],
)

dash.clientside_callback(
    ClientsideFunction(namespace="causalwatch", function_name="progress"),
    Output(ids.RUN_PROGRESS, "value"),
    Output(ids.RUN_PROGRESS, "label"),
    Output(ids.RUN_PROGRESS_TEXT, "children"),
    Input(ids.LIVE_METRICS, "data"),
)


@dash.callback(
    Output(ids.RUN_HEADER, "children"),
    Output(ids.RUN_STOP, "disabled"),
    Output(ids.ALERTS, "children"),
    Output(ids.SCORECARD, "children"),
    Output(ids.HEATMAP, "figure"),
    Output(ids.RUN_SHOWN, "data"),
    Input(ids.LIVE_EVENT, "data"),
    State(ids.RUN_ID, "data"),
    State(ids.RUN_SHOWN, "data"),
)
def refresh_panels(
    event: dict[str, Any] | None, run_id: str, shown: dict[str, Any] | None
) -> tuple[Any, ...]:
    """Status, alerts, scorecard and adjacency: re-read from the API on every live event.

    Everything is re-read whatever the event was: Dash keeps only the newest call's result,
    so an alert event's update can be superseded by the next graph event's. A panel is
    re-rendered only when what it shows changed: replacing the header or the alert cards
    while the user clicks Stop or "restart with fix" would lose the click.
    """
    shown = shown or {}
    api = client.get()
    try:
        run = api.run(run_id)
        alerts = api.alerts(run_id)
        card = api.scorecard(run_id)
        graph = api.graph(run_id)
    except BackendError as err:
        raise PreventUpdate from err  # the banner already says the backend is away
    now = {
        "header": _header_key(run),
        # A card changes when its probes report, not only when a new alert arrives.
        "alerts": [[a["id"], a.get("verification")] for a in alerts],
        "graph": graph["epoch"] if graph else None,
    }
    header = _header(run) if now["header"] != shown.get("header") else dash.no_update
    cards: Any = dash.no_update
    if now["alerts"] != shown.get("alerts"):
        cards = [alert_card(a, run["config"], can_restart=True) for a in alerts] or [
            html.Div("none yet", className="text-muted")
        ]
    heatmap: Any = dash.no_update
    if now["graph"] != shown.get("graph", -1):
        data = run.get("data") or {}
        reference = (data.get("reference_edges") or []) if has_reference(run) else None
        heatmap = adjacency_figure(graph, data.get("variables"), reference)
    return header, not _stoppable(run), cards, scorecard_table(card), heatmap, now


@dash.callback(
    Output(ids.RUN_MESSAGE, "children", allow_duplicate=True),
    Output(ids.RUN_MESSAGE, "color", allow_duplicate=True),
    Output(ids.RUN_MESSAGE, "is_open", allow_duplicate=True),
    Input(ids.RUN_STOP, "n_clicks"),
    State(ids.RUN_ID, "data"),
    prevent_initial_call=True,
)
def stop_run(clicks: int | None, run_id: str) -> tuple[str, str, bool]:
    if not clicks:
        raise PreventUpdate
    try:
        client.get().stop(run_id)
    except BackendError as err:
        return f"Could not stop the run: {err.message}.", "danger", True
    return "Stopping: the trainer finishes its current epoch, then ends.", "info", True


# A click on "restart with fix" is taken in the browser first: a server callback on the
# buttons themselves would be re-run when new alert cards render, and Dash keeps only the
# newest call's result, so the click's redirect could be dropped.
dash.clientside_callback(
    """
    function (clicks) {
        const ctx = window.dash_clientside.callback_context;
        const fired = (ctx.triggered || []).filter(function (t) { return t.value; });
        if (!fired.length) return window.dash_clientside.no_update;
        const button = JSON.parse(fired[0].prop_id.split(".")[0]);
        return {alert: button.alert, at: Date.now()};
    }
    """,
    Output(ids.RESTART_REQUEST, "data"),
    Input({"type": ids.RESTART, "alert": ALL}, "n_clicks"),
    prevent_initial_call=True,
)


@dash.callback(
    Output(ids.RUN_REDIRECT, "href"),
    Output(ids.RUN_MESSAGE, "children", allow_duplicate=True),
    Output(ids.RUN_MESSAGE, "color", allow_duplicate=True),
    Output(ids.RUN_MESSAGE, "is_open", allow_duplicate=True),
    Input(ids.RESTART_REQUEST, "data"),
    State(ids.RUN_ID, "data"),
    prevent_initial_call=True,
)
def restart_with_fix(request: dict[str, Any] | None, run_id: str) -> tuple[Any, ...]:
    """Start the fixed run and open the comparison of parent and child."""
    if not request:
        raise PreventUpdate
    try:
        child = client.get().restart(run_id, alert_id=int(request["alert"]))
    except BackendError as err:
        if err.existing_run_id:
            link = dcc.Link(f"open run {err.existing_run_id}", href=f"/run/{err.existing_run_id}")
            message = ["This fix's config already ran: ", link, "."]
            return dash.no_update, message, "info", True
        return dash.no_update, f"Could not restart: {err.message}.", "danger", True
    return f"/compare?runs={run_id},{child['id']}", dash.no_update, dash.no_update, False
