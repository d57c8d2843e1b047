"""Start a run: preset picker, the data (UCI, synthetic or a CSV picked or uploaded), every
other config field pre-filled and editable, inline errors.

With `?from=<run id>` it is an edit form: pre-filled with that run's config, and Start
restarts that run with the form's values (a child linked to it) instead of creating one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

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
    field_changed,
    field_input,
    parse_field,
    preset_note,
)
from dashboard.labels import NAME_JOIN

dash.register_page(__name__, path="/new", title="New run · causalwatch", name="New run")

# Set by the Data section, not by the field grid.
DATA_FIELDS = ("dataset", "data_file", "reference_file")
DATASETS = {
    "uci": "UCI Air Quality (the backend's file)",
    "synthetic": "synthetic (random DAG, known truth)",
    "csv": "your own CSV",
}
# Fields that only mean something for one dataset, by name prefix: hidden for the others.
DATASET_FIELDS = {"synthetic_": "synthetic", "csv_": "csv"}
HIDDEN = {"display": "none"}
# RestartRequest's limit on `name`: a default name must not be refused for its length.
NAME_MAX = 200


def layout(preset: str = "standard", **query: Any) -> html.Div | dbc.Alert:
    edit: dict[str, Any] | None = None
    if "from" in query:
        loaded = edit_source(query["from"])
        if isinstance(loaded, dbc.Alert):
            return loaded
        edit = loaded
    try:
        presets = client.get().presets()
    except BackendError as err:
        return dbc.Alert(f"Cannot load the presets: {err.message}.", color="danger")
    names = [p["name"] for p in presets]
    descriptions = {p["name"]: p["description"] for p in presets}
    chosen = edit["preset"] if edit else preset
    source = f"run {edit['run_id']}" if edit else "the preset"
    return html.Div([
        # Start stays in sight: the form is longer than a screen, and a user who changed one
        # field near the top should not have to hunt for the button.
        html.Div([
            dbc.Row([
                dbc.Col(html.H3("Edit and restart" if edit else "New run", className="mb-0"),
                        width="auto"),
                dbc.Col(dbc.Button("Start", id=ids.START, color="primary", size="lg"),
                        width="auto"),
            ], align="center", justify="between"),
            dbc.Alert(id=ids.LAUNCH_ERROR, color="danger", is_open=False,
                      className="mt-2 mb-0"),
        ], className="sticky-top bg-white pt-3 pb-2 border-bottom mb-3 launch-actions"),
        edit_note(edit["run_id"]) if edit else None,
        dcc.Store(id=ids.EDIT_FROM, data=edit),
        dbc.Row([
            dbc.Col([
                dbc.Label("Preset", html_for=ids.PRESET, className="fw-semibold"),
                dbc.RadioItems(
                    id=ids.PRESET,
                    options=[{"label": html.Span([html.Strong(n), f" — {descriptions[n]}"]),
                              "value": n} for n in names],
                    value=chosen if chosen in names else names[0],
                ),
            ], md=8),
            dbc.Col([
                dbc.Label("Run name", html_for=ids.RUN_NAME, className="fw-semibold"),
                dbc.Input(id=ids.RUN_NAME, placeholder="optional",
                          value=edit_name(edit) if edit else None),
            ], md=4),
        ], className="mb-3"),
        data_section(edit["config"] if edit else None),
        html.H5("Configuration"),
        html.P(f"Every field comes from {source}; change any. Fields that differ from the "
               "preset are marked, with the preset's value under them. The backend validates "
               "the whole config and names any field it refuses.",
               className="text-muted small"),
        dbc.Row(id=ids.FIELDS),
        dcc.Store(id=ids.PRESET_VALUES),
        dcc.Location(id=ids.LAUNCH_REDIRECT, refresh=True),
    ])


def edit_source(run_id: Any) -> dict[str, Any] | dbc.Alert:
    """What an edit form copies from run `run_id`; an alert instead of the form without it."""
    api = client.get()
    try:
        # Anything but a run id is no run, and never becomes part of an API path.
        if not isinstance(run_id, str) or not api.is_run_id(run_id):
            return missing_run(run_id)
        run = api.run(run_id)
    except BackendError as err:
        if err.status == 404:
            return missing_run(run_id)
        return missing_run(run_id, f"Cannot load run {run_id}: {err.message}.")
    return {"run_id": run["id"], "preset": run["preset"], "config": run["config"],
            "name": run.get("name")}


def missing_run(run_id: Any, message: str | None = None) -> dbc.Alert:
    shown = run_id if isinstance(run_id, str) and run_id else "(none given)"
    return dbc.Alert([
        message or f"run {shown} not found.", " ",
        dcc.Link("Start a new run from a blank form", href="/new", className="alert-link"),
    ], id=ids.EDIT_MISSING, color="warning", className="mt-3")


def edit_note(run_id: str) -> dbc.Alert:
    return dbc.Alert([
        "Editing a copy of run ", dcc.Link(run_id, href="/run/" + quote(run_id, safe="")),
        " — the new run is linked to it as a restart.",
    ], id=ids.EDIT_NOTE, color="info", className="small py-2")


def edit_name(edit: Mapping[str, Any]) -> str:
    suffix = f"{NAME_JOIN}edit"
    return (edit.get("name") or edit["run_id"])[:NAME_MAX - len(suffix)] + suffix


def form_values(preset: str, edit: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the form shows for `preset`: its config; on an edit form on the run's own preset,
    the run's config over it (the preset fills only fields newer than the run).

    Picking another preset on an edit form fills from that preset, as on a blank form; picking
    the run's preset again brings the run's values back.
    """
    values = dict(client.get().preset(preset)["config"])
    if edit and edit.get("preset") == preset:
        values.update(edit["config"])
    return values


@dash.callback(Output(ids.FIELDS, "children"), Output(ids.PRESET_VALUES, "data"),
              Input(ids.PRESET, "value"), State(ids.EDIT_FROM, "data"))
def fill_fields(
    preset: str | None, edit: dict[str, Any] | None
) -> tuple[list[dbc.Col] | dbc.Alert, dict[str, Any] | None]:
    if not preset:
        raise PreventUpdate
    try:
        schema = client.get().config_schema()
        values = form_values(preset, edit)
        defaults = client.get().preset(preset)["config"]
    except BackendError as err:
        return dbc.Alert(f"Cannot load preset {preset}: {err.message}.", color="danger"), None
    fields = [field_input(info, values.get(info["name"])) for info in schema
              if info["name"] not in DATA_FIELDS]
    return fields, defaults


@dash.callback(
    Output({"type": ids.FIELD_BOX, "name": ALL}, "className"),
    Output({"type": ids.FIELD_PRESET, "name": ALL}, "children"),
    Input({"type": ids.FIELD, "name": ALL}, "value"),
    Input(ids.PRESET_VALUES, "data"),
    State({"type": ids.FIELD, "name": ALL}, "id"),
)
def mark_changed(
    values: list[Any], defaults: dict[str, Any] | None, field_ids: list[dict[str, str]]
) -> tuple[list[str], list[str]]:
    """Each field that differs from the preset, marked, with the preset's value under it."""
    defaults = defaults or {}
    classes, notes = [], []
    for value, fid in zip(values, field_ids, strict=True):
        name = fid["name"]
        changed = name in defaults and field_changed(value, defaults[name])
        classes.append("field-box field-changed" if changed else "field-box")
        notes.append(preset_note(defaults[name]) if changed else "")
    return classes, notes


@dash.callback(
    Output({"type": ids.FIELD_BOX, "name": ALL}, "style"),
    Output(ids.DATA_FILES, "style"),
    Input(ids.DATASET, "value"),
    Input({"type": ids.FIELD_BOX, "name": ALL}, "id"),
)
def show_dataset_fields(
    dataset: str | None, boxes: list[dict[str, str]]
) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Only the chosen dataset's own fields: no synthetic_* for UCI, csv files only for csv.
    Hidden fields keep their values and are still sent, so an edited run's config stays whole."""
    return ([{} if field_dataset(b["name"]) in (None, dataset) else HIDDEN for b in boxes],
            {} if dataset == "csv" else HIDDEN)


def field_dataset(name: str) -> str | None:
    """The dataset a field belongs to, None for fields of every dataset."""
    return next((d for prefix, d in DATASET_FIELDS.items() if name.startswith(prefix)), None)


@dash.callback(Output(ids.DATASET, "value"), Input(ids.PRESET, "value"),
              State(ids.EDIT_FROM, "data"))
def preset_dataset(preset: str | None, edit: dict[str, Any] | None) -> str:
    if not preset:
        raise PreventUpdate
    try:
        return str(form_values(preset, edit)["dataset"])
    except BackendError:
        raise PreventUpdate from None


def data_section(config: Mapping[str, Any] | None = None) -> html.Div:
    """Dataset choice; for csv a file of the backend's data dir or an upload, and optionally
    a reference graph (without one, SHD and F1 are not computed). `config`: an edited run's."""
    config = config or {}
    try:
        files = client.get().datasets()
        problem = None
    except BackendError as err:
        files, problem = [], f"Cannot list the data files: {err.message}."
    csv_options, reference_options = dataset_options(files)
    return html.Div([
        html.H5("Data"),
        dbc.RadioItems(
            id=ids.DATASET, inline=True, value=config.get("dataset") or "uci",
            options=[{"label": label, "value": v} for v, label in DATASETS.items()],
        ),
        html.Div(dbc.Row([
            dbc.Col([
                dbc.Label("CSV file (dataset csv)", html_for=ids.DATA_FILE, className="small"),
                dcc.Dropdown(id=ids.DATA_FILE, options=csv_options, value=config.get("data_file"),
                             placeholder="pick a file of the data dir or an upload"),
            ], md=4),
            dbc.Col([
                dbc.Label("Reference graph (optional)", html_for=ids.REFERENCE_FILE,
                          className="small"),
                dcc.Dropdown(id=ids.REFERENCE_FILE, options=reference_options,
                             value=config.get("reference_file"),
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
        ], className="mt-2"), id=ids.DATA_FILES,
            style={} if config.get("dataset") == "csv" else HIDDEN),
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
    State(ids.EDIT_FROM, "data"),
    State(ids.DATASET, "value"),
    State(ids.DATA_FILE, "value"),
    State(ids.REFERENCE_FILE, "value"),
    prevent_initial_call=True,
)
def start_run(
    _clicks: int | None, preset: str, name: str | None, values: list[Any],
    field_ids: list[dict[str, str]], edit: dict[str, Any] | None, *data_choice: str | None,
) -> tuple[Any, ...]:
    names = [f["name"] for f in field_ids]
    overrides = {n: parse_field(v) for n, v in zip(names, values, strict=True)}
    overrides.update(data_overrides(*data_choice))
    try:
        run = launch(preset, overrides, name, edit)
    except BackendError as err:
        bad = (err.field or "").removeprefix("overrides.")
        invalid = [n == bad for n in names]
        feedback = [err.message if n == bad else "" for n in names]
        where = f" (field {bad})" if bad in names else ""
        return dash.no_update, f"Not started{where}: {err.message}", True, invalid, feedback
    return f"/run/{run['id']}", "", False, [False] * len(names), [""] * len(names)


def launch(
    preset: str, overrides: dict[str, Any], name: str | None, edit: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A new run from the form; on an edit form, a restart of the edited run.

    An edit form restarts its run even when the user picked another preset: the child stays
    linked to its parent as the note says, and since the form sends every field, the child's
    config is exactly what the form showed; only its preset label stays the parent's (the
    restart endpoint keeps the parent's preset).
    """
    if edit:
        return client.get().restart(edit["run_id"], overrides=overrides, name=name)
    return client.get().create_run(preset, overrides, name)
