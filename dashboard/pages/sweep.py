"""One sweep: its members' grid values, progress, F1, best val_recon and scorecard level; a
parallel-coordinates plot of grid fields → result; the best member marked in both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import client, ids
from dashboard.client import BackendClient, BackendError
from dashboard.components import status_badge
from dashboard.runs_feed import feed
from dashboard.sweep_view import (
    BEST_ROW,
    REFRESH_MS,
    grid_fields,
    level_text,
    member_prefix,
    member_rows,
    parallel_figure,
    plotted_members,
)

dash.register_page(__name__, path_template="/sweep/<sweep_id>", title="Sweep · causalwatch")

HIDDEN = {"display": "none"}
SHOWN: dict[str, str] = {}
GRAPH_CONFIG = {"displaylogo": False}
# Levels per member, kept between re-reads: {run id: [status, last epoch, level text]}.
Levels = dict[str, list[Any]]


def layout(sweep_id: str | None = None, **_query: Any) -> html.Div | dbc.Alert:
    if not sweep_id:
        return dbc.Alert("No sweep given.", color="warning", className="mt-3")
    api = client.get()
    try:
        sweep = api.sweep(sweep_id)
    except BackendError as err:
        text = (f"No sweep {sweep_id}." if err.status == 404
                else f"Cannot show sweep {sweep_id}: {err.message}.")
        return dbc.Alert([text, " See ", dcc.Link("all sweeps", href="/sweeps"), "."],
                         color="danger", className="mt-3")
    levels = _levels(api, sweep, {})
    table, figure, style, note = _render(sweep, levels)
    return html.Div([
        dcc.Store(id=ids.SWEEP_ID, data=sweep_id),
        dcc.Store(id=ids.SWEEP_LEVELS, data=levels),
        dcc.Store(id=ids.SWEEP_SHOWN, data=_signature(sweep)),
        html.H3(f"Sweep {sweep_id}", className="mt-3"),
        html.Div(_summary(sweep), id=ids.SWEEP_SUMMARY, className="text-muted small mb-2"),
        html.Div(table, id=ids.SWEEP_TABLE),
        html.Div(note, id=ids.SWEEP_PLOT_NOTE, className="text-muted small mt-3"),
        dcc.Graph(id=ids.SWEEP_PLOT, figure=figure, style=style, config=GRAPH_CONFIG),
        # Its members' changes only: a sweep whose members all ended reads nothing more.
        feed(spacing_ms=REFRESH_MS, prefix=member_prefix(sweep_id)),
    ])


def _levels(api: BackendClient, sweep: Mapping[str, Any], kept: Levels) -> Levels:
    """Each member's scorecard level, read again only when its status or epoch moved: a
    finished sweep of 60 members costs no scorecard reads per re-read."""
    levels: Levels = {}
    for run in sweep["members"]:
        key = [run["status"], run.get("last_epoch")]
        old = kept.get(run["id"])
        if old is not None and old[:2] == key:
            levels[run["id"]] = old
            continue
        if run["status"] == "queued":
            levels[run["id"]] = [*key, "—"]
            continue
        try:
            levels[run["id"]] = [*key, level_text(api.scorecard(run["id"]))]
        except BackendError:
            levels[run["id"]] = [*key, "—"]
    return levels


def _signature(sweep: Mapping[str, Any]) -> list[Any]:
    return [sweep.get("best"), [[m["id"], m["status"], m.get("last_epoch"), m.get("summary")]
                                for m in sweep["members"]]]


def _summary(sweep: Mapping[str, Any]) -> str:
    members = sweep["members"]
    ended = sum(m["status"] in ("completed", "stopped", "failed") for m in members)
    fields = grid_fields(members)
    preset = members[0]["preset"] if members else "—"
    return (f"{len(members)} members · {ended} ended · preset {preset} · varies "
            f"{', '.join(fields) or 'nothing'} · best: the completed member with the lowest "
            "best val_recon (chosen without the reference graph)")


def _render(
    sweep: Mapping[str, Any], levels: Levels
) -> tuple[html.Table, Any, dict[str, str], str]:
    """The table, the figure (empty and hidden until a member has a result), its note."""
    rows = member_rows(sweep, {rid: lv[2] for rid, lv in levels.items()})
    fields = grid_fields(sweep["members"])
    plotted = len(plotted_members(sweep))
    total = len(sweep["members"])
    if plotted == 0:
        return _table(rows, fields), {}, HIDDEN, (
            "The plot draws each member once it has finished with a best val_recon; "
            "none has yet.")
    note = (f"{plotted} of {total} members plotted (those with a best val_recon); "
            "the best member's line is red. Hover a line for its member.")
    return _table(rows, fields), parallel_figure(sweep), SHOWN, note


def _table(rows: list[dict[str, Any]], fields: list[str]) -> html.Table:
    head = html.Tr([
        html.Th("member"),
        *[html.Th(html.Code(f)) for f in fields],
        html.Th("status"), html.Th("epoch"),
        html.Th("best val_recon", title="the lowest validation reconstruction loss; the "
                "sweep's best is the completed member where it is lowest"),
        html.Th("F1 at best ckpt", title="F1 at the label-free best checkpoint (lowest "
                "val_recon): a result a user without the reference could have picked"),
        html.Th("max F1 seen (ref-picked)", title="the highest F1 of any evaluation, found by "
                "looking at the reference graph: a ceiling, not a selectable result"),
        html.Th("scorecard level"),
        html.Th(""),
    ])
    body = []
    for r in rows:
        # On the cells: Bootstrap paints a table's cells, over any row background.
        cell = {"style": BEST_ROW} if r["best"] else {}
        body.append(html.Tr([
            html.Td(dcc.Link(r["changes"], href=f"/run/{quote(r['id'], safe='')}",
                             title=r["id"]), **cell),
            *[html.Td(r["fields"][f], className="sweep-field", **cell) for f in fields],
            html.Td(status_badge(r["status"]), **cell),
            html.Td(r["progress"], **cell),
            html.Td(r["best_val_recon"], **cell),
            html.Td(r["f1_at_best"], **cell),
            html.Td(r["max_f1_seen"], **cell),
            html.Td(r["level"], className="sweep-level", **cell),
            html.Td(dbc.Badge("best", color="danger") if r["best"] else "", **cell),
        ], className="sweep-best" if r["best"] else None, **{"data-run": r["id"]}))
    return html.Table([html.Thead(head), html.Tbody(body)],
                      className="table table-sm table-hover sweep-members")


@dash.callback(
    Output(ids.SWEEP_TABLE, "children"),
    Output(ids.SWEEP_PLOT, "figure"),
    Output(ids.SWEEP_PLOT, "style"),
    Output(ids.SWEEP_PLOT_NOTE, "children"),
    Output(ids.SWEEP_SUMMARY, "children"),
    Output(ids.SWEEP_LEVELS, "data"),
    Output(ids.SWEEP_SHOWN, "data"),
    Input(ids.RUNS_FEED, "data"),
    State(ids.SWEEP_ID, "data"),
    State(ids.SWEEP_LEVELS, "data"),
    State(ids.SWEEP_SHOWN, "data"),
    prevent_initial_call=True,
)
def refresh(
    _changed: dict[str, Any] | None, sweep_id: str, kept: Levels | None, shown: list[Any] | None
) -> tuple[Any, ...]:
    api = client.get()
    try:
        sweep = api.sweep(sweep_id)
    except BackendError as err:
        raise PreventUpdate from err
    signature = _signature(sweep)
    if signature == shown:
        raise PreventUpdate
    levels = _levels(api, sweep, kept or {})
    table, figure, style, note = _render(sweep, levels)
    return table, figure, style, note, _summary(sweep), levels, signature
