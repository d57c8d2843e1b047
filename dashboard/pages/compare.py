"""Several runs, one metric overlaid; the runs' configs side by side where they differ."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ClientsideFunction, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import client, ids
from dashboard.client import BackendError
from dashboard.compare_metric import opening_metric
from dashboard.components import (
    best_checkpoint_text,
    format_value,
    max_f1_text,
    status_badge,
)
from dashboard.figures import COMPARE_METRICS, compare_figure
from dashboard.labels import lineage_labels
from dashboard.runs_feed import feed

dash.register_page(__name__, path="/compare", title="Compare · causalwatch", name="Compare")

REFRESH_MS = 1000  # the least time between two redraws while a compared run trains
HIDDEN = {"display": "none"}

Run = Mapping[str, Any]


def layout(runs: str = "", metric: str | None = None, **_query: Any) -> html.Div:
    api = client.get()
    try:
        all_runs = api.runs()
    except BackendError as err:
        return dbc.Alert(f"Cannot list runs: {err.message}.", color="danger", className="mt-3")
    chosen = [r for r in runs.split(",") if r]
    if metric not in COMPARE_METRICS:
        by_id = {r["id"]: r for r in all_runs}
        metric = opening_metric([by_id[r] for r in chosen if r in by_id], api.alerts)
    return html.Div([
        html.H3("Compare runs", className="mt-3"),
        dbc.Row([
            dbc.Col(dcc.Dropdown(id=ids.COMPARE_RUNS, options=_options(all_runs), value=chosen,
                                 multi=True,
                                 placeholder="pick runs"), md=8),
            dbc.Col(dcc.Dropdown(
                id=ids.COMPARE_METRIC,
                options=[{"label": v, "value": k} for k, v in COMPARE_METRICS.items()],
                # A short fixed list: picked by clicking, no search box to type into.
                value=metric, clearable=False, searchable=False,
            ), md=4),
        ], className="mb-2"),
        dcc.Graph(id=ids.COMPARE_GRAPH, config={"displaylogo": False}, style=HIDDEN),
        html.Div(id=ids.COMPARE_CONFIG),
        # Every run's status (the picker's labels), the compared runs' records.
        feed(spacing_ms=REFRESH_MS, runs=chosen),
        dcc.Store(id="compare-signature"),
    ])


def _options(runs: list[dict[str, Any]]) -> list[dict[str, str]]:
    labels = lineage_labels(runs)
    # The label tells runs apart; the full name and id show on hover.
    return [{"label": f"{labels[r['id']]} ({r['status']})", "value": r["id"],
             "title": f"{r.get('name') or r['id']} ({r['id']})"}
            for r in runs]


# The feed follows the records of the picked runs only.
dash.clientside_callback(
    ClientsideFunction(namespace="causalwatchFeed", function_name="focus"),
    Output(ids.RUNS_FEED_SCOPE, "data"),
    Input(ids.COMPARE_RUNS, "value"),
    State(ids.RUNS_FEED_SCOPE, "data"),
    prevent_initial_call=True,
)


@dash.callback(
    Output(ids.COMPARE_GRAPH, "figure"),
    Output(ids.COMPARE_GRAPH, "style"),
    Output(ids.COMPARE_CONFIG, "children"),
    Output("compare-signature", "data"),
    Output(ids.COMPARE_RUNS, "options"),
    Input(ids.COMPARE_RUNS, "value"),
    Input(ids.COMPARE_METRIC, "value"),
    Input(ids.RUNS_FEED, "data"),
    State("compare-signature", "data"),
)
def overlay(
    run_ids: list[str] | None, metric: str, _changed: dict[str, Any] | None,
    shown: list[Any] | None,
) -> tuple[Any, ...]:
    api = client.get()
    try:
        all_runs = api.runs()
        by_id = {r["id"]: r for r in all_runs}
        labels = lineage_labels(all_runs)
        runs = [by_id[r] for r in run_ids or [] if r in by_id]
        # Redraw only when a compared run moved on, or a run's status (the options' labels)
        # changed: another run's records cost a list read, no metrics read.
        signature = [metric, [[r["id"], r["status"]] for r in all_runs],
                     [[r["id"], r.get("last_epoch")] for r in runs]]
        if signature == shown:
            raise PreventUpdate
        series = {labels[run["id"]]: api.metrics(run["id"], fields=[metric]) for run in runs}
    except BackendError as err:
        raise PreventUpdate from err
    if not runs:
        # The hint alone: empty axes above it would only look like a chart that failed.
        empty = html.Div("Pick runs to compare.", className="text-muted", id="compare-hint")
        return dash.no_update, HIDDEN, empty, signature, _options(all_runs)
    return (compare_figure(series, metric), {}, _config_table(runs, labels), signature,
            _options(all_runs))


def _config_table(runs: list[dict[str, Any]], labels: Mapping[str, str]) -> html.Div:
    """The runs side by side: status, lineage, progress, and every config field that differs."""
    fields = sorted({k for r in runs for k in r["config"]})
    differing = [f for f in fields if len({repr(r["config"].get(f)) for r in runs}) > 1]
    head = html.Tr([html.Th("")] + [
        html.Th([dcc.Link(labels[r["id"]], href=f"/run/{r['id']}", title=r.get("name") or r["id"]),
                 status_badge(r["status"])])
        for r in runs
    ])
    info = [
        html.Tr([html.Td("parent")] + [html.Td(_parent_cell(r, labels)) for r in runs]),
        html.Tr([html.Td("epochs")] + [
            html.Td(f"{r.get('last_epoch') or 0}/{r['epochs_total']}") for r in runs]),
        html.Tr([html.Td("best checkpoint (lowest val_recon)")] + [
            html.Td(best_checkpoint_text(r)) for r in runs]),
        html.Tr([html.Td("max F1 seen (any epoch)")] + [
            html.Td(max_f1_text(r)) for r in runs]),
    ]
    diff = [
        html.Tr([html.Td(html.Code(f))] + [
            html.Td(format_value(r["config"].get(f)), className="fw-bold") for r in runs])
        for f in differing
    ]
    return html.Div([
        html.H5("Side by side", className="mt-3"),
        html.Table([html.Thead(head), html.Tbody(info + diff)],
                   className="table table-sm compare-table"),
        html.Div("Config fields not listed are the same in every run.",
                 className="text-muted small"),
    ])


def _parent_cell(run: Run, labels: Mapping[str, str]) -> Any:
    parent = run.get("parent_id")
    if not parent:
        return "—"
    return dcc.Link(labels.get(parent, parent), href=f"/run/{parent}", title=parent)
