"""Every sweep, newest first: what it varies, how many members, how many ended.

The backend lists runs, not sweeps: a sweep is its members, runs named `sweep <id>: ...`,
so the list is grouped from the runs the runs page reads anyway (dashboard/sweep_view.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import client, ids
from dashboard import format as fmt
from dashboard.client import BackendError
from dashboard.runs_feed import feed
from dashboard.sweep_view import MEMBER_PREFIX, sweeps_summary

dash.register_page(__name__, path="/sweeps", title="Sweeps · causalwatch", name="Sweeps")

REFRESH_MS = 3000  # the least time between two re-reads while sweeps change
HOW_TO = ("Start one with `causalwatch sweep --preset healthy --grid lambda_sparse=0.01,0.02 "
          "--seeds 0-2`, or POST /api/sweeps.")


def layout(**_query: Any) -> html.Div:
    return html.Div([
        html.H3("Sweeps", className="mt-3"),
        html.Div(_content(), id=ids.SWEEPS_TABLE),
        # Members' status changes only: the list counts them, it shows no epochs.
        feed(spacing_ms=REFRESH_MS, prefix=MEMBER_PREFIX, runs=[]),
    ])


def _content() -> Any:
    try:
        sweeps = sweeps_summary(client.get().runs())
    except BackendError as err:
        return dbc.Alert(f"Cannot list sweeps: {err.message}.", color="danger")
    if not sweeps:
        return dbc.Alert(["No sweeps yet. ", dcc.Markdown(HOW_TO, className="d-inline")],
                         color="info", id="sweeps-empty")
    head = html.Tr([html.Th(h) for h in ("sweep", "preset", "varies", "members", "ended",
                                         "running", "queued at")])
    body = [
        html.Tr([
            html.Td(dcc.Link(s["id"], href=f"/sweep/{quote(s['id'], safe='')}")),
            html.Td(s["preset"]),
            html.Td(", ".join(s["fields"]) or "—"),
            html.Td(fmt.count(s["members"])),
            html.Td(fmt.count(s["ended"])),
            html.Td(fmt.count(s["running"])),
            html.Td(s["created"][:19].replace("T", " ")),
        ], **{"data-sweep": s["id"]})
        for s in sweeps
    ]
    return html.Table([html.Thead(head), html.Tbody(body)],
                      className="table table-sm table-hover sweeps-list")


@dash.callback(
    Output(ids.SWEEPS_TABLE, "children"),
    Input(ids.RUNS_FEED, "data"),
    prevent_initial_call=True,
)
def refresh(_changed: dict[str, Any] | None) -> Any:
    content = _content()
    if isinstance(content, dbc.Alert) and content.color == "danger":
        raise PreventUpdate  # keep the last list; the shell's banner says the backend is down
    return content
