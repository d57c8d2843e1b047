"""The runs feed: a page that lists runs follows the backend's WS /ws/runs in the browser
(assets/runs_feed.js) and re-reads what it shows when a run in it changed, instead of polling.

A page puts `feed(...)` in its layout and takes `Input(ids.RUNS_FEED, "data")` in the
callback that reads the backend: that input changes when the backend pushed a change the page
shows, at most once per `spacing_ms`, and every few seconds only while the socket is down.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import ClientsideFunction, Input, Output, State, dcc, html

from dashboard import ids

Scope = dict[str, Any]


def scope(*, spacing_ms: int, prefix: str | None = None, runs: list[str] | None = None) -> Scope:
    """Which pushed events bump the feed: those of runs named `prefix…` (any run when None);
    of those, every status change, and records and alerts of `runs` only (all when None)."""
    return {"feed": ids.RUNS_FEED, "box": ids.RUNS_FEED_BOX, "prefix": prefix, "runs": runs,
            "spacing_ms": spacing_ms}


def feed(*, spacing_ms: int, prefix: str | None = None, runs: list[str] | None = None
         ) -> html.Div:
    """The page's feed: the store its callback listens to, and the scope the browser follows.

    `spacing_ms`: the least time between two re-reads, however busy the runs are."""
    return html.Div([
        dcc.Store(id=ids.RUNS_FEED),
        dcc.Store(id=ids.RUNS_FEED_SCOPE,
                  data=scope(spacing_ms=spacing_ms, prefix=prefix, runs=runs)),
    ], id=ids.RUNS_FEED_BOX, hidden=True)


# Subscribe the page to WS /ws/runs when it appears, and follow a change of its scope.
dash.clientside_callback(
    ClientsideFunction(namespace="causalwatchFeed", function_name="watch"),
    Output(ids.RUNS_FEED_BOX, "id"),
    Input(ids.RUNS_FEED_SCOPE, "data"),
    State(ids.API, "data"),
)
