"""Every run: status, progress, F1/SHD at the best checkpoint and the max F1 seen, alerts,
lineage; filter, sort, compare, stop."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dash_table, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import client, ids
from dashboard.client import BackendError
from dashboard.components import runs_table_rows
from dashboard.runs_feed import feed

dash.register_page(__name__, path="/", title="Runs · causalwatch", name="Runs")

COLUMNS = [
    {"name": "run", "id": "run", "presentation": "markdown"},
    {"name": "status", "id": "status"},
    {"name": "preset", "id": "preset"},
    {"name": "epoch", "id": "progress"},
    # The label-free best checkpoint (lowest val_recon) and its scores; the highest F1 of any
    # evaluation is a separate column, so neither is taken for the other.
    {"name": "best ckpt epoch", "id": "best_epoch", "type": "numeric"},
    {"name": "F1 at best ckpt", "id": "f1_at_best", "type": "numeric"},
    {"name": "SHD at best ckpt", "id": "shd_at_best", "type": "numeric"},
    {"name": "max F1 seen", "id": "max_f1_seen", "type": "numeric"},
    {"name": "alerts", "id": "alerts", "type": "numeric"},
    {"name": "started", "id": "started"},
    {"name": "parent", "id": "parent", "presentation": "markdown"},
]
# The run and parent labels take what is left and wrap; the numbers keep to their width.
WIDE_COLUMNS = ("run", "parent")
# The story's first step: the preset that fails on raw UCI, so its red flags show at once.
STORY_PRESET = "standard"
# The least time between two re-reads of the list while runs train (a record an epoch each).
REFRESH_MS = 1500


def layout(**_query: Any) -> html.Div:
    return html.Div([
        dbc.Row([
            dbc.Col(html.H3("Runs", className="mt-3"), md=6),
            dbc.Col([
                dbc.Button("New run", href="/new", color="primary", className="me-2"),
                # Both act on the ticked rows: disabled, and looking it, until there are some.
                dbc.Button("Compare selected", id=ids.RUNS_COMPARE, color="primary",
                           outline=True, disabled=True, className="me-2"),
                dbc.Button("Stop selected", id=ids.RUNS_STOP, color="danger", outline=True,
                           disabled=True),
            ], md=6, className="text-end mt-3"),
        ]),
        dbc.Alert(id=ids.RUNS_MESSAGE, is_open=False, dismissable=True, className="mt-2"),
        empty_hint(),
        dash_table.DataTable(
            id=ids.RUNS_TABLE,
            columns=COLUMNS,
            data=[],
            row_selectable="multi",
            selected_rows=[],
            filter_action="native",
            sort_action="native",
            sort_by=[{"column_id": "started", "direction": "desc"}],
            page_size=25,
            markdown_options={"link_target": "_self"},
            # Case-insensitive filters, without the per-column "Aa" toggle nobody asked for.
            filter_options={"case": "insensitive"},
            css=[{"selector": ".dash-filter--case", "rule": "display: none"}],
            tooltip_duration=None,
            # Fits 1,400 px: headers wrap, labels wrap, nothing forces a sideways scroll.
            style_table={"overflowX": "auto"},
            style_cell={"fontFamily": "inherit", "fontSize": "14px", "padding": "6px",
                        "whiteSpace": "normal", "height": "auto", "minWidth": "56px"},
            style_cell_conditional=[
                {"if": {"column_id": c}, "minWidth": "180px", "maxWidth": "420px",
                 "textAlign": "left"}
                for c in WIDE_COLUMNS
            ],
            style_header={"fontWeight": "bold", "whiteSpace": "normal", "height": "auto"},
            style_data_conditional=[
                {"if": {"filter_query": '{status} = "failed"', "column_id": "status"},
                 "color": "#e74c3c", "fontWeight": "bold"},
                {"if": {"filter_query": '{status} = "running"', "column_id": "status"},
                 "color": "#3498db", "fontWeight": "bold"},
                {"if": {"filter_query": "{alerts} > 0", "column_id": "alerts"},
                 "color": "#f39c12", "fontWeight": "bold"},
            ],
        ),
        feed(spacing_ms=REFRESH_MS),
        dcc.Location(id="runs-redirect", refresh=True),
    ])


def empty_hint() -> dbc.Alert:
    """What a first-time user sees instead of an empty table: where to start."""
    return dbc.Alert([
        html.Strong("No runs yet. "),
        dcc.Link("Start a run", href=f"/new?preset={STORY_PRESET}", className="alert-link"),
        f" — the preset {STORY_PRESET} on the UCI data fails within seconds: its red flags "
        "name the cause and a fix, one click restarts it with that fix, and Compare overlays "
        "the two. Or pick another preset on ",
        dcc.Link("New run", href="/new", className="alert-link"), ".",
    ], id=ids.RUNS_EMPTY, color="info", is_open=False, className="mt-2")


@dash.callback(
    Output(ids.RUNS_TABLE, "data"),
    Output(ids.RUNS_TABLE, "tooltip_data"),
    Output(ids.RUNS_EMPTY, "is_open"),
    Output(ids.RUNS_TABLE, "style_table"),
    Input(ids.RUNS_FEED, "data"),
    State(ids.RUNS_TABLE, "style_table"),
)
def refresh(
    _changed: dict[str, Any] | None, style: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool, dict[str, Any]]:
    try:
        rows = runs_table_rows(client.get().runs())
    except BackendError as err:
        raise PreventUpdate from err
    # The full name on hover: the label is short, the name is what the user or backend gave.
    tips = [{"run": {"value": r["name"], "type": "text"}} for r in rows]
    shown = {**(style or {}), "display": "block" if rows else "none"}
    return rows, tips, not rows, shown


@dash.callback(
    Output(ids.RUNS_COMPARE, "disabled"),
    Output(ids.RUNS_STOP, "disabled"),
    Input(ids.RUNS_TABLE, "selected_rows"),
)
def selection_buttons(selected: list[int] | None) -> tuple[bool, bool]:
    return not selected, not selected


def _selected(rows: list[dict[str, Any]], selected: list[int]) -> list[str]:
    return [rows[i]["id"] for i in selected if i < len(rows)]


@dash.callback(
    Output("runs-redirect", "href"),
    Input(ids.RUNS_COMPARE, "n_clicks"),
    State(ids.RUNS_TABLE, "data"),
    State(ids.RUNS_TABLE, "selected_rows"),
    prevent_initial_call=True,
)
def compare(_clicks: int | None, rows: list[dict[str, Any]], selected: list[int]) -> str:
    chosen = _selected(rows, selected or [])
    if not chosen:
        raise PreventUpdate
    return "/compare?runs=" + ",".join(chosen)


@dash.callback(
    Output(ids.RUNS_MESSAGE, "children"),
    Output(ids.RUNS_MESSAGE, "is_open"),
    Output(ids.RUNS_MESSAGE, "color"),
    Input(ids.RUNS_STOP, "n_clicks"),
    State(ids.RUNS_TABLE, "data"),
    State(ids.RUNS_TABLE, "selected_rows"),
    prevent_initial_call=True,
)
def stop_selected(
    _clicks: int | None, rows: list[dict[str, Any]], selected: list[int]
) -> tuple[str, bool, str]:
    chosen = _selected(rows, selected or [])
    if not chosen:
        return "Select the runs to stop first.", True, "warning"
    problems = []
    for run_id in chosen:
        try:
            client.get().stop(run_id)
        except BackendError as err:
            problems.append(f"{run_id}: {err.message}")
    if problems:
        return "Not stopped — " + "; ".join(problems), True, "warning"
    return f"Stopping {len(chosen)} run(s).", True, "info"
