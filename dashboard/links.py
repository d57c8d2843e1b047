"""The dashboard's own routes for what the browser fetches from the backend directly: a
ticket for the live websocket, and downloads.

Both hand the browser a fresh short-lived read-only ticket (from `POST /api/tickets`)
instead of the admin token, and only when asked, so no ticket sits in a rendered page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Flask, jsonify, redirect, request

from dashboard import client
from dashboard.client import BackendError

TICKET_PATH = "/_causalwatch/ticket"
DOWNLOADS = ("csv", "json", "log")
PLAIN = {"Content-Type": "text/plain; charset=utf-8"}
NO_STORE = {"Cache-Control": "no-store"}  # a ticket is a credential: never cached


def download_path(run_id: str, what: str) -> str:
    """The page's link for a download: this dashboard's route, which adds the ticket."""
    if what not in DOWNLOADS:
        raise ValueError(f"download {what!r}: expected one of {', '.join(DOWNLOADS)}")
    return f"/download/{quote(run_id, safe='')}/{what}"


def install(server: Flask) -> None:
    """Add the ticket and download routes; the session guard covers them like any route."""

    @server.get(TICKET_PATH)
    def _ticket() -> Any:
        # A same-site page on another port gets the session cookie sent along; it could not
        # read the answer (no CORS), but it has no business asking either.
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return "causalwatch: tickets are for this dashboard's own pages.\n", 403, PLAIN
        try:
            ticket = client.get().ticket()
        except BackendError as err:
            return jsonify(token=None, error=err.message), 502, NO_STORE
        return jsonify(token=ticket), 200, NO_STORE

    @server.get("/download/<run_id>/<what>")
    def _download(run_id: str, what: str) -> Any:
        if what not in DOWNLOADS:
            return (f"causalwatch: no download {what!r}; there are {', '.join(DOWNLOADS)}.\n",
                    404, PLAIN)
        api = client.get()
        try:
            # Anything but a run id never reaches the backend's URL.
            if not api.is_run_id(run_id):
                return f"causalwatch: {run_id!r} is not a run id.\n", 400, PLAIN
            ticket = api.ticket()
        except BackendError as err:
            return f"causalwatch: cannot download: {err.message}.\n", 502, PLAIN
        response = redirect(api.download_url(run_id, what, ticket), code=302)
        response.headers.update(NO_STORE)
        return response
