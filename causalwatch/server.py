"""The SDK's calls to the backend's REST API: create an sdk run, read a run and its records."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8000"
# A run's creation is the only call the training loop waits for: it must give up quickly
# when no server is there, and the run goes on offline.
CREATE_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
READ_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class ServerError(RuntimeError):
    """The server answered with a refusal (not a network failure): `status` and its detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


def server_url(given: str | None) -> str:
    """`server=`, else $CAUSALWATCH_SERVER, else the local default; without a trailing /.

    Raises ValueError naming where a malformed URL came from.
    """
    source = "server" if given else "CAUSALWATCH_SERVER"
    url = (given or os.environ.get("CAUSALWATCH_SERVER") or DEFAULT_SERVER).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{source}: must look like http://host:port, got {url!r}")
    return url


# Where `causalwatch up` writes the token it generates (backend/cli.py, TOKEN_FILE).
TOKEN_FILE = ".causalwatch-token"


def admin_token(given: str | None = None) -> str | None:
    """`token=`, else $CAUSALWATCH_TOKEN, else the token file of a server started from here.

    `causalwatch up` on a non-loopback host generates a token into
    `<runs-dir>/.causalwatch-token` (readable by its owner only); a script run from the same
    project folder finds it there ($CAUSALWATCH_RUNS_DIR, else ./runs) without copying it.
    """
    if given or os.environ.get("CAUSALWATCH_TOKEN"):
        return given or os.environ.get("CAUSALWATCH_TOKEN")
    path = Path(os.environ.get("CAUSALWATCH_RUNS_DIR") or "runs") / TOKEN_FILE
    try:
        return path.read_text("utf-8").strip() or None
    except OSError:  # no such file, or not ours to read: no token
        return None


def _headers(token: str | None) -> dict[str, str]:
    # Non-browser clients name themselves (backend/origins.py: "not a cross-site form").
    headers = {"X-Causalwatch-Client": "sdk"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    detail = body.get("detail") if isinstance(body, dict) else body
    return str(detail)[:500]


def create_run(
    server: str,
    *,
    name: str | None,
    config: dict[str, Any],
    epochs: int | None,
    token: str | None,
    timeout: httpx.Timeout = CREATE_TIMEOUT,
) -> tuple[str, str]:
    """POST /api/runs with kind sdk → (run id, ingest token).

    Raises httpx.TransportError when the server is not reachable, ServerError on a refusal.
    """
    body = {"kind": "sdk", "name": name, "config": config, "epochs": epochs}
    resp = httpx.post(
        f"{server}/api/runs", json=body, headers=_headers(token), timeout=timeout
    )
    if resp.status_code != 201:
        raise ServerError(resp.status_code, _detail(resp))
    run = resp.json()
    return str(run["id"]), str(run["ingest_token"])


def get_run(server: str, run_id: str, *, token: str | None) -> dict[str, Any] | None:
    """GET /api/runs/{id}; None when the server does not know the run."""
    resp = httpx.get(f"{server}/api/runs/{run_id}", headers=_headers(token), timeout=READ_TIMEOUT)
    if resp.status_code == 404:
        return None
    if resp.status_code != 200:
        raise ServerError(resp.status_code, _detail(resp))
    return resp.json()  # type: ignore[no-any-return]


def get_metrics(server: str, run_id: str, *, token: str | None) -> list[dict[str, Any]]:
    resp = httpx.get(
        f"{server}/api/runs/{run_id}/metrics", headers=_headers(token), timeout=READ_TIMEOUT
    )
    if resp.status_code != 200:
        raise ServerError(resp.status_code, _detail(resp))
    return resp.json()  # type: ignore[no-any-return]
