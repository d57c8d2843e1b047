"""Start a run: preset picker, the data (UCI, synthetic or a CSV picked or uploaded), every
other config field pre-filled and editable, inline errors."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import client, ids
from dashboard.client import BackendError
from dashboard.components import (
    data_overrides,
    dataset_options,
    decode_upload,
    field_input,
    parse_field,
)

dash.register_page(__name__, path="/new", title="New run · causalwatch", name="New run")

# Set by the Data section, not by the field grid.
DATA_FIELDS = ("dataset", "data_file", "reference_file")
DATASETS = {
    "uci": "UCI Air Quality (the backend's file)",
    "synthetic": "synthetic (random DAG, known truth)",
    "csv": "your own CSV",
}


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
        data_section(),
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
    return [field_input(info, values.get(info["name"])) for info in schema
            if info["name"] not in DATA_FIELDS]


@dash.callback(Output(ids.DATASET, "value"), Input(ids.PRESET, "value"))
def preset_dataset(preset: str | None) -> str:
    if not preset:
        raise PreventUpdate
    try:
        return str(client.get().preset(preset)["config"]["dataset"])
    except BackendError:
        raise PreventUpdate from None


def data_section() -> html.Div:
    """Dataset choice; for csv a file of the backend's data dir or an upload, and optionally
    a reference graph (without one, SHD and F1 are not computed)."""
    try:
        files = client.get().datasets()
        problem = None
    except BackendError as err:
        files, problem = [], f"Cannot list the data files: {err.message}."
    csv_options, reference_options = dataset_options(files)
    return html.Div([
        html.H5("Data"),
        dbc.RadioItems(
            id=ids.DATASET, inline=True, value="uci",
            options=[{"label": label, "value": v} for v, label in DATASETS.items()],
        ),
        dbc.Row([
            dbc.Col([
                dbc.Label("CSV file (dataset csv)", html_for=ids.DATA_FILE, className="small"),
                dcc.Dropdown(id=ids.DATA_FILE, options=csv_options,
                             placeholder="pick a file of the data dir or an upload"),
            ], md=4),
            dbc.Col([
                dbc.Label("Reference graph (optional)", html_for=ids.REFERENCE_FILE,
                          className="small"),
                dcc.Dropdown(id=ids.REFERENCE_FILE, options=reference_options,
                             placeholder="none: SHD and F1 not computed"),
            ], md=4),
            dbc.Col([
                dbc.Label("Upload", className="small"),
                dcc.Upload(
                    id=ids.DATA_UPLOAD, multiple=False,
                    children=html.Div(["Drop a .csv or reference .json, or ",
                                       html.A("choose one")]),
                    className="border border-secondary rounded text-center p-2 small",
                ),
            ], md=4),
        ], className="mt-2"),
        dbc.Alert(problem, id=ids.DATA_UPLOAD_MESSAGE, is_open=problem is not None,
                  color="warning", className="mt-2 small"),
    ], className="mb-3")


@dash.callback(
    Output(ids.DATA_UPLOAD_MESSAGE, "children"),
    Output(ids.DATA_UPLOAD_MESSAGE, "color"),
    Output(ids.DATA_UPLOAD_MESSAGE, "is_open"),
    Output(ids.DATA_FILE, "options"),
    Output(ids.REFERENCE_FILE, "options"),
    Output(ids.DATA_FILE, "value"),
    Output(ids.REFERENCE_FILE, "value"),
    Output(ids.DATASET, "value", allow_duplicate=True),
    Input(ids.DATA_UPLOAD, "contents"),
    State(ids.DATA_UPLOAD, "filename"),
    prevent_initial_call=True,
)
def upload_file(contents: str | None, filename: str | None) -> tuple[Any, ...]:
    if not contents or not filename:
        raise PreventUpdate
    keep = (dash.no_update,) * 5
    try:
        stored = client.get().upload_dataset(filename, decode_upload(contents))
        csv_options, reference_options = dataset_options(client.get().datasets())
    except (BackendError, ValueError) as err:
        message = err.message if isinstance(err, BackendError) else str(err)
        return f"{filename} was not uploaded: {message}", "danger", True, *keep
    is_csv = stored["kind"] == "csv"
    return (
        f"Uploaded {filename}: runs name it {stored['name']}.", "success", True,
        csv_options, reference_options,
        stored["name"] if is_csv else dash.no_update,
        dash.no_update if is_csv else stored["name"],
        "csv",
    )


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
    State(ids.DATASET, "value"),
    State(ids.DATA_FILE, "value"),
    State(ids.REFERENCE_FILE, "value"),
    prevent_initial_call=True,
)
def start_run(
    _clicks: int | None, preset: str, name: str | None, values: list[Any],
    field_ids: list[dict[str, str]], *data_choice: str | None,
) -> tuple[Any, ...]:
    names = [f["name"] for f in field_ids]
    overrides = {n: parse_field(v) for n, v in zip(names, values, strict=True)}
    overrides.update(data_overrides(*data_choice))
    try:
        run = client.get().create_run(preset, overrides, name)
    except BackendError as err:
        bad = (err.field or "").removeprefix("overrides.")
        invalid = [n == bad for n in names]
        feedback = [err.message if n == bad else "" for n in names]
        where = f" (field {bad})" if bad in names else ""
        return dash.no_update, f"Not started{where}: {err.message}", True, invalid, feedback
    return f"/run/{run['id']}", "", False, [False] * len(names), [""] * len(names)

