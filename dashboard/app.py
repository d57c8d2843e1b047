"""The Dash app: pages, the shell (navigation, backend banner), and the API endpoints store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html

from dashboard import client, ids, links, security, sessions
from dashboard.client import BackendError, Endpoints
from dashboard.links import TICKET_PATH
from dashboard.security import LOOPBACK_HOSTS

HERE = Path(__file__).parent


def create_app(endpoints: Endpoints, *, allowed: frozenset[str] = LOOPBACK_HOSTS) -> Dash:
    """The dashboard, guarded: `allowed` host names only, a session when there is a token."""
    client.configure(endpoints)
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(HERE / "assets"),
        suppress_callback_exceptions=True,
        title="causalwatch",
        update_title=None,
    )
    app.layout = html.Div(
        [
            dcc.Location(id=ids.URL),
            # Addresses only: the browser gets tickets from TICKET_PATH, never the token.
            dcc.Store(id=ids.API, data={"http": endpoints.public_url, "ws": endpoints.public_ws,
                                        "ticket": TICKET_PATH}),
            dcc.Interval(id=ids.HEALTH_TICK, interval=2000),
            dcc.Store(id=ids.HEALTH),
            _navbar(),
            dbc.Container(
                [
                    dbc.Alert(id=ids.BANNER, color="danger", is_open=False, className="mt-3"),
                    dash.page_container,
                ],
                fluid=True,
                className="pb-5",
            ),
        ]
    )
    security.install(
        app.server, allowed=allowed,
        csp=lambda: security.content_security_policy(app.csp_hashes(), endpoints.public_url),
    )
    if endpoints.token:
        sessions.install(app.server, endpoints.token)
    links.install(app.server)
    return app


def _navbar() -> dbc.Navbar:
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand("causalwatch", href="/", className="fw-bold"),
                dbc.Nav(
                    [
                        dbc.NavItem(dbc.NavLink("Runs", href="/", active="exact")),
                        dbc.NavItem(dbc.NavLink("New run", href="/new", active="exact")),
                        dbc.NavItem(dbc.NavLink("Compare", href="/compare", active="exact")),
                        dbc.NavItem(dbc.NavLink("Sweeps", href="/sweeps", active="exact")),
                    ],
                    navbar=True,
                ),
            ],
            fluid=True,
        ),
        color="primary",
        dark=True,
    )


@dash.callback(
    Output(ids.BANNER, "children"),
    Output(ids.BANNER, "is_open"),
    Output(ids.HEALTH, "data"),
    Input(ids.HEALTH_TICK, "n_intervals"),
)
def backend_banner(_tick: int | None) -> tuple[str, bool, Any]:
    """A clear banner while the backend is down; it goes away by itself when it is back.

    The answer is kept in a store: a queued run's page says from it how many runs hold the
    trainer slots, with no read of its own."""
    try:
        health = client.get().health()
    except BackendError as err:
        return f"{err.message[0].upper()}{err.message[1:]}. Retrying every 2 s…", True, None
    return "", False, health
