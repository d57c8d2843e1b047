"""The run page's live charts: each in a box with its own waiting line, and the chart of the
training loop's own metrics (`custom`), shown once a record carries some.

assets/live.js fills them: it extends every `LIVE_CHART` with new records, hides a box's
waiting line once a record has one of its fields, and adds one trace per custom key.
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.figures import custom_figure
from dashboard.run_state import SDK_KIND

GRAPH_CONFIG = {"displaylogo": False, "responsive": True}
FIELDS_NAMED = 3  # fields a waiting line names; the rest are "…"
# Over a chart whose fields no record has had yet, below its title.
CHART_WAITING_STYLE = {"position": "absolute", "top": "90px", "left": 0, "right": 0,
                       "textAlign": "center", "color": "#7b8a8b", "pointerEvents": "none",
                       "display": "none"}


def _fields(figure: dict[str, Any]) -> list[str]:
    return [t["meta"]["field"] for t in figure.get("data", [])
            if isinstance(t.get("meta"), dict) and "field" in t["meta"]]


def waiting_line(fields: list[str], kind: str | None) -> str:
    """What a chart without a value yet waits for: the user's own loop, for a run of kind
    sdk, logs any subset of the fields, so the line names them."""
    named = ", ".join(fields[:FIELDS_NAMED]) + (", …" if len(fields) > FIELDS_NAMED else "")
    if kind == SDK_KIND:
        return f"waiting for {named}: not logged by your training loop yet"
    return f"waiting for {named}"


def chart(name: str, figure: dict[str, Any], kind: str | None) -> html.Div:
    """A live chart and the line shown over it while no record has any of its fields."""
    fields = _fields(figure)
    return html.Div([
        dcc.Graph(id=ids.graph_id(name), figure=figure, config=GRAPH_CONFIG,
                  className=ids.LIVE_CHART),
        html.Div(waiting_line(fields, kind) if fields else "", className=ids.CHART_WAITING,
                 style=CHART_WAITING_STYLE),
    ], className=ids.CHART_BOX, style={"position": "relative"})


def custom_chart() -> html.Div:
    """The training loop's own metrics, one line per key; hidden until a record has one. A
    picker appears when there are more keys than one chart can show apart."""
    return html.Div([
        dcc.Dropdown(id=ids.CUSTOM_PICKER, multi=True, options=[], value=[],
                     placeholder="your metrics to show", className="mb-1",
                     style={"display": "none"}),
        dcc.Graph(id=ids.CUSTOM_GRAPH, figure=custom_figure(), config=GRAPH_CONFIG,
                  className=ids.LIVE_CHART),
    ], id=ids.CUSTOM_BOX, style={"display": "none"})


def chart_grid(figures: dict[str, dict[str, Any]], kind: str | None) -> list[Any]:
    """The charts two by two, most telling first, then the custom chart."""
    box = {name: chart(name, fig, kind) for name, fig in figures.items()}
    pairs = (("clip", "logit-std"), ("loss-shares", "loss-total"), ("edges", "accuracy"),
             ("grad-terms", "update-ratio"))
    rows = [dbc.Row([dbc.Col(box[a], lg=6), dbc.Col(box[b], lg=6)]) for a, b in pairs]
    rows.append(dbc.Row([dbc.Col(box["lr"], lg=6), dbc.Col(custom_chart(), lg=6)]))
    return rows
