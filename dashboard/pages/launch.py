"""Start a run: preset picker, every config field pre-filled and editable, inline errors."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import client, ids
from dashboard.client import BackendError
from dashboard.components import field_input, parse_field

dash.register_page(__name__, path="/new", title="New run · causalwatch", name="New run")


def layout(preset: str = "standard", **_query: Any) -> html.Div:
    try:
        presets = client.get().presets()
    except BackendError as err:
        return dbc.Alert(f"Cannot load the presets: {err.message}.", color="danger")
    names = [p["name"] for p in presets]
    descriptions = {p["name"]: p["description"] for p in presets}
    return html.Div([
        html.H3("New run", className="mt-3"),
        dbc.Row([
            dbc.Col([
                dbc.Label("Preset", html_for=ids.PRESET, className="fw-semibold"),
                dbc.RadioItems(
                    id=ids.PRESET,
                    options=[{"label": html.Span([html.Strong(n), f" — {descriptions[n]}"]),
                              "value": n} for n in names],
                    value=preset if preset in names else names[0],
                ),
            ], md=8),
            dbc.Col([
                dbc.Label("Run name", html_for=ids.RUN_NAME, className="fw-semibold"),
                dbc.Input(id=ids.RUN_NAME, placeholder="optional"),
            ], md=4),
        ], className="mb-3"),
        html.H5("Configuration"),
        html.P("Every field comes from the preset; change any. The backend validates the "
               "whole config and names any field it refuses.", className="text-muted small"),
        dbc.Row(id=ids.FIELDS),
        dbc.Alert(id=ids.LAUNCH_ERROR, color="danger", is_open=False),
        dbc.Button("Start", id=ids.START, color="primary", size="lg", className="mt-2"),
        dcc.Location(id=ids.LAUNCH_REDIRECT, refresh=True),
    ])


@dash.callback(Output(ids.FIELDS, "children"), Input(ids.PRESET, "value"))
def fill_fields(preset: str | None) -> list[dbc.Col] | dbc.Alert:
    if not preset:
        raise PreventUpdate
    try:
        schema = client.get().config_schema()
        values = client.get().preset(preset)["config"]
    except BackendError as err:
        return dbc.Alert(f"Cannot load preset {preset}: {err.message}.", color="danger")
    return [field_input(info, values.get(info["name"])) for info in schema]


@dash.callback(
    Output(ids.LAUNCH_REDIRECT, "href"),
    Output(ids.LAUNCH_ERROR, "children"),
    Output(ids.LAUNCH_ERROR, "is_open"),
    Output({"type": ids.FIELD, "name": ALL}, "invalid"),
    Output({"type": ids.FIELD_FEEDBACK, "name": ALL}, "children"),
    Input(ids.START, "n_clicks"),
    State(ids.PRESET, "value"),
    State(ids.RUN_NAME, "value"),
    State({"type": ids.FIELD, "name": ALL}, "value"),
    State({"type": ids.FIELD, "name": ALL}, "id"),
    prevent_initial_call=True,
)
def start_run(
    _clicks: int | None, preset: str, name: str | None, values: list[Any],
    field_ids: list[dict[str, str]],
) -> tuple[Any, ...]:
    names = [f["name"] for f in field_ids]
    overrides = {n: parse_field(v) for n, v in zip(names, values, strict=True)}
    try:
        run = client.get().create_run(preset, overrides, name)
    except BackendError as err:
        bad = (err.field or "").removeprefix("overrides.")
        invalid = [n == bad for n in names]
        feedback = [err.message if n == bad else "" for n in names]
        where = f" (field {bad})" if bad in names else ""
        return dash.no_update, f"Not started{where}: {err.message}", True, invalid, feedback
    return f"/run/{run['id']}", "", False, [False] * len(names), [""] * len(names)
