"""One run, live: progress, health charts, adjacency, red flags with one-click fixes, scorecard."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import quote

import dash
import dash_bootstrap_components as dbc
from dash import ALL, ClientsideFunction, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import client, ids
from dashboard.client import BackendClient, BackendError
from dashboard.components import run_reference
from dashboard.figures import ADJACENCY_HEIGHT, empty_live_figures, level_guides
from dashboard.labels import lineage_labels
from dashboard.links import download_path
from dashboard.run_charts import GRAPH_CONFIG, chart_grid
from dashboard.run_panels import live_view, read_view, render_panels

dash.register_page(__name__, path_template="/run/<run_id>", title="Run · causalwatch")

# Over the charts until their first points: a message, not empty axes.
WAITING_STYLE = {"position": "absolute", "inset": 0, "zIndex": 5, "pointerEvents": "none",
                 "background": "rgba(255, 255, 255, 0.85)", "paddingTop": "120px",
                 "textAlign": "center", "fontSize": "1.1rem", "color": "#7b8a8b"}
STOPPING_TEXT = "Stopping: the trainer finishes its current epoch, then ends."


def _clip_norm(run: dict[str, Any]) -> float | None:
    value = run["config"].get("grad_clip_norm")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _label(api: BackendClient, run: dict[str, Any]) -> str | None:
    """The run's lineage label, as the runs list shows it (unique among all runs)."""
    try:
        return lineage_labels(api.runs()).get(run["id"])
    except BackendError:
        return None  # the full name then stays the title


def layout(run_id: str | None = None, **_query: Any) -> html.Div:
    if not run_id:
        return dbc.Alert("No run given.", color="warning")
    try:
        api = client.get()
        # The panels are rendered here, with the page: a reopened run shows its flags with
        # the page, not after a callback that waits for the browser to draw the charts.
        view = read_view(api, run_id)
        guides = level_guides(api.thresholds())
        terms = tuple(api.record_fields()["loss_terms"])
    except BackendError as err:
        return dbc.Alert(f"Cannot show run {run_id}: {err.message}.", color="danger",
                         className="mt-3")
    run = view.run
    label = _label(api, run)
    view = dataclasses.replace(view, label=label)
    panels = render_panels(view, {})
    state = panels.state
    ref_size, ref_kind = run_reference(run)
    # Charts start empty: every point, history included, arrives through the live channel.
    figures = empty_live_figures(ref_size, ref_kind, _clip_norm(run), guides, terms=terms)
    # The dashboard's own routes: they redirect to the backend with a fresh ticket on click.
    downloads = dbc.ButtonGroup([
        dbc.Button(label, href=download_path(run_id, what), external_link=True,
                   color="secondary", outline=True, size="sm", id=f"download-{what}")
        for what, label in (("csv", "metrics CSV"), ("json", "metrics JSON"), ("log", "log"))
    ])
    live = state["live"]
    return html.Div([
        dcc.Store(id=ids.RUN_ID, data=run_id),
        dcc.Store(id=ids.LIVE_METRICS),
        dcc.Store(id=ids.LIVE_PANELS),
        dcc.Store(id=ids.LIVE_EVAL),
        dcc.Store(id=ids.LIVE_STATUS),
        dcc.Store(id=ids.RUN_FETCHED),
        dcc.Store(id=ids.RUN_HEALTH, data=view.health),
        dcc.Store(id=ids.RUN_LABEL, data=label),
        dcc.Store(id=ids.RUN_SHOWN, data=panels.shown),
        dcc.Store(id=ids.RUN_STATE, data=state),
        dcc.Store(id=ids.RESTART_REQUEST),
        dcc.Location(id=ids.RUN_REDIRECT, refresh=True),
        html.Div(id=ids.RUN_HEADER, children=panels.header, className="mt-3"),
        # Outside the header: a re-rendered header must not swallow a click on Stop.
        dbc.Button("Stop", id=ids.RUN_STOP, color="danger", size="sm", className="mt-2 me-2",
                   disabled=panels.stop_disabled, style=panels.stop_style),
        # Acts on the text advice too: any change to this run's config, as a linked restart.
        # Not for a loop of the user's own: its config is theirs, and only their script runs it.
        dbc.Button("Edit and restart", id=ids.RUN_EDIT, href="/new?from=" + quote(run_id, safe=""),
                   color="primary", outline=True, size="sm", className="mt-2",
                   style=None if run.get("restartable", True) else {"display": "none"}),
        dbc.Row([
            # Striped and moving only while the run lives: a finished bar holds still.
            dbc.Col(dbc.Progress(id=ids.RUN_PROGRESS, value=0 if live else state["value"],
                                 label="" if live else state["label"], striped=live,
                                 animated=live, color="primary" if live else state["color"],
                                 style={"height": "22px"}), md=6),
            dbc.Col(html.Span(state["text"], id=ids.RUN_PROGRESS_TEXT, className="small"), md=4),
            dbc.Col(downloads, md=2, className="text-end"),
        ], className="my-2 align-items-center"),
        dbc.Alert(id=ids.RUN_MESSAGE, is_open=False, dismissable=True),
        dbc.Alert(STOPPING_TEXT, id=ids.RUN_STOPPING, color="info", is_open=False,
                  dismissable=True),
        dbc.Row([
            dbc.Col([
                html.Div(state["waiting"] or "loading the run's epochs…", id=ids.RUN_WAITING,
                         className="run-waiting", style=WAITING_STYLE),
                *chart_grid(figures, run.get("kind")),
                # A fixed height: left to the layout, it followed the red-flag column.
                dcc.Graph(id=ids.HEATMAP, config=GRAPH_CONFIG, figure=panels.heatmap,
                          style={"height": f"{ADJACENCY_HEIGHT}px"}),
            ], xl=8, style={"position": "relative"}),
            dbc.Col([
                html.H5("Red flags"),
                html.Div(id=ids.ALERTS, children=panels.cards),
                html.H5("Scorecard", className="mt-3"),
                html.Div(id=ids.SCORECARD, children=panels.scorecard),
            ], xl=4),
        ], className="align-items-start"),
    ])


# Subscribe the page to the backend's live stream (assets/live.js).
dash.clientside_callback(
    ClientsideFunction(namespace="causalwatch", function_name="watch"),
    Output(ids.LIVE_STATUS, "id"),
    Input(ids.RUN_ID, "data"),
    State(ids.API, "data"),
)

dash.clientside_callback(
    ClientsideFunction(namespace="causalwatch", function_name="progress"),
    Output(ids.RUN_PROGRESS, "value"),
    Output(ids.RUN_PROGRESS, "label"),
    Output(ids.RUN_PROGRESS, "striped"),
    Output(ids.RUN_PROGRESS, "animated"),
    Output(ids.RUN_PROGRESS, "color"),
    Output(ids.RUN_PROGRESS_TEXT, "children"),
    Output(ids.RUN_WAITING, "children"),
    Output(ids.RUN_WAITING, "className"),
    Input(ids.LIVE_METRICS, "data"),
    Input(ids.RUN_STATE, "data"),
)


# The custom chart's picker, applied in the browser: live.js holds the traces.
dash.clientside_callback(
    ClientsideFunction(namespace="causalwatch", function_name="pickCustom"),
    Output(ids.CUSTOM_PICKER, "id"),
    Input(ids.CUSTOM_PICKER, "value"),
    prevent_initial_call=True,
)

# The shell's /healthz reads, handed on while the run is queued: its line counts the runs
# holding the trainer slots.
dash.clientside_callback(
    ClientsideFunction(namespace="causalwatch", function_name="queuedHealth"),
    Output(ids.RUN_HEALTH, "data"),
    Input(ids.HEALTH, "data"),
    State(ids.RUN_STATE, "data"),
    State(ids.RUN_HEALTH, "data"),
    prevent_initial_call=True,
)


@dash.callback(
    Output(ids.RUN_HEADER, "children"),
    Output(ids.RUN_STOP, "disabled"),
    Output(ids.RUN_STOP, "style"),
    Output(ids.ALERTS, "children"),
    Output(ids.SCORECARD, "children"),
    Output(ids.HEATMAP, "figure"),
    Output(ids.RUN_STATE, "data"),
    Output(ids.RUN_SHOWN, "data"),
    Input(ids.LIVE_PANELS, "data"),
    Input(ids.RUN_FETCHED, "data"),
    Input(ids.RUN_HEALTH, "data"),
    State(ids.RUN_ID, "data"),
    State(ids.RUN_LABEL, "data"),
    State(ids.RUN_SHOWN, "data"),
    # The layout rendered every panel: only a live event can change one.
    prevent_initial_call=True,
)
def refresh_panels(  # noqa: PLR0917 - Dash passes each input and state by position
    pushed: dict[str, Any] | None, fetched: dict[str, Any] | None,
    health: dict[str, Any] | None, run_id: str, label: str | None,
    shown: dict[str, Any] | None,
) -> tuple[Any, ...]:
    """The panels from what the websocket pushed (run, alerts, graph) and the last re-read
    (scorecard, best-checkpoint scores): no read of the API here.

    Every store is an input, so each call sees all of them: Dash keeps only the newest call's
    result, and an alert's update must not be lost to the next graph's.
    """
    pushed = pushed if pushed and pushed.get("run_id") == run_id else None
    if pushed is None and not fetched:
        raise PreventUpdate
    p = render_panels(live_view(pushed, fetched, health, label), shown or {})
    return (p.header, p.stop_disabled, p.stop_style, p.cards, p.scorecard, p.heatmap, p.state,
            p.shown)


@dash.callback(
    Output(ids.RUN_FETCHED, "data"),
    Input(ids.LIVE_EVAL, "data"),
    State(ids.RUN_ID, "data"),
    prevent_initial_call=True,
)
def reread_scores(request: dict[str, Any] | None, run_id: str) -> dict[str, Any]:
    """What the backend computes from every record and does not push: the scorecard and the
    run's best-checkpoint scores. Asked for by live.js after evaluations and status changes,
    at most every 2 s."""
    if not request or request.get("run_id") != run_id:
        raise PreventUpdate
    try:
        api = client.get()
        return {"run": api.run(run_id), "card": api.scorecard(run_id)}
    except BackendError as err:
        raise PreventUpdate from err  # the banner already says the backend is away


# "Stopping…" from the click until the run has ended. Decided in the browser from both: the
# stop request's answer and the status event race, and whichever came last would win.
dash.clientside_callback(
    """
    function (clicks, state) {
        return !!clicks && !!state && state.live;
    }
    """,
    Output(ids.RUN_STOPPING, "is_open"),
    Input(ids.RUN_STOP, "n_clicks"),
    Input(ids.RUN_STATE, "data"),
    prevent_initial_call=True,
)


@dash.callback(
    Output(ids.RUN_MESSAGE, "children", allow_duplicate=True),
    Output(ids.RUN_MESSAGE, "color", allow_duplicate=True),
    Output(ids.RUN_MESSAGE, "is_open", allow_duplicate=True),
    Output(ids.RUN_STOPPING, "is_open", allow_duplicate=True),
    Input(ids.RUN_STOP, "n_clicks"),
    State(ids.RUN_ID, "data"),
    prevent_initial_call=True,
)
def stop_run(clicks: int | None, run_id: str) -> tuple[str, str, bool, bool]:
    if not clicks:
        raise PreventUpdate
    try:
        client.get().stop(run_id)
    except BackendError as err:
        # Not stopping after all: the message says why instead.
        return f"Could not stop the run: {err.message}.", "danger", True, False
    raise PreventUpdate  # the "Stopping…" banner and the status event say the rest


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
