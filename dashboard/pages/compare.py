"""Several runs, one metric overlaid; the runs' configs side by side where they differ."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import client, ids
from dashboard.client import BackendError
from dashboard.components import (
    best_checkpoint_text,
    format_value,
    max_f1_text,
    status_badge,
)
from dashboard.figures import COMPARE_METRICS, compare_figure

dash.register_page(__name__, path="/compare", title="Compare · causalwatch", name="Compare")

REFRESH_MS = 1000


def layout(runs: str = "", metric: str = "f1", **_query: Any) -> html.Div:
    try:
        all_runs = client.get().runs()
    except BackendError as err:
        return dbc.Alert(f"Cannot list runs: {err.message}.", color="danger", className="mt-3")
    chosen = [r for r in runs.split(",") if r]
    return html.Div([
        html.H3("Compare runs", className="mt-3"),
        dbc.Row([
            dbc.Col(dcc.Dropdown(id=ids.COMPARE_RUNS, options=_options(all_runs), value=chosen,
                                 multi=True,
                                 placeholder="pick runs"), md=8),
            dbc.Col(dcc.Dropdown(
                id=ids.COMPARE_METRIC,
                options=[{"label": v, "value": k} for k, v in COMPARE_METRICS.items()],
                value=metric if metric in COMPARE_METRICS else "f1", clearable=False,
            ), md=4),
        ], className="mb-2"),
        dcc.Graph(id=ids.COMPARE_GRAPH, config={"displaylogo": False}),
        html.Div(id=ids.COMPARE_CONFIG),
        dcc.Interval(id="compare-tick", interval=REFRESH_MS),
        dcc.Store(id="compare-signature"),
    ])


def _options(runs: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"label": f"{r.get('name') or r['id']} ({r['status']})", "value": r["id"]}
            for r in runs]


@dash.callback(
    Output(ids.COMPARE_GRAPH, "figure"),
    Output(ids.COMPARE_CONFIG, "children"),
    Output("compare-signature", "data"),
    Output(ids.COMPARE_RUNS, "options"),
    Input(ids.COMPARE_RUNS, "value"),
    Input(ids.COMPARE_METRIC, "value"),
    Input("compare-tick", "n_intervals"),
    State("compare-signature", "data"),
)
def overlay(
    run_ids: list[str] | None, metric: str, _tick: int | None, shown: list[Any] | None
) -> tuple[Any, Any, Any]:
    api = client.get()
    try:
        all_runs = api.runs()
        by_id = {r["id"]: r for r in all_runs}
        runs = [by_id[r] for r in run_ids or [] if r in by_id]
        # Redraw only when a compared run moved on, or a run's status (the options' labels)
        # changed: finished runs cost nothing per tick.
        signature = [metric, [[r["id"], r["status"]] for r in all_runs],
                     [[r["id"], r.get("last_epoch")] for r in runs]]
        if signature == shown:
            raise PreventUpdate
        series = {_label(run): api.metrics(run["id"], fields=[metric]) for run in runs}
    except BackendError as err:
        raise PreventUpdate from err
    if not runs:
        empty = html.Div("Pick runs to compare.", className="text-muted")
        return compare_figure({}, metric), empty, signature, _options(all_runs)
    return compare_figure(series, metric), _config_table(runs), signature, _options(all_runs)


def _label(run: dict[str, Any]) -> str:
    return f"{run.get('name') or run['id']}"


def _config_table(runs: list[dict[str, Any]]) -> html.Div:
    """The runs side by side: status, lineage, progress, and every config field that differs."""
    fields = sorted({k for r in runs for k in r["config"]})
    differing = [f for f in fields if len({repr(r["config"].get(f)) for r in runs}) > 1]
    head = html.Tr([html.Th("")] + [
        html.Th([dcc.Link(_label(r), href=f"/run/{r['id']}"), status_badge(r["status"])])
        for r in runs
    ])
    info = [
        html.Tr([html.Td("parent")] + [html.Td(r.get("parent_id") or "—") for r in runs]),
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
