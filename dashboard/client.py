"""The only code that talks to the backend: its public HTTP API, nothing else.

Every failure becomes a `BackendError` with a sentence fit for the page; callers never see
a raw response body or a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx


def _run_path(run_id: str) -> str:
    """A run's API path, its id one quoted segment: an id from a page's URL can name no
    other path, whatever it holds (the backend refuses what is not a run id)."""
    return f"/api/runs/{quote(run_id, safe='')}"


class BackendError(Exception):
    """Something the page can show: `message` is human, `field` names a bad input."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        field: str | None = None,
        existing_run_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.existing_run_id = existing_run_id  # a restart whose config already ran there


@dataclass(frozen=True)
class Endpoints:
    api_url: str  # how the dashboard server reaches the backend
    public_url: str  # how the browser reaches it (downloads, live websocket)
    token: str | None = None  # the backend's token, when it has one

    @property
    def public_ws(self) -> str:
        return self.public_url.replace("https://", "wss://").replace("http://", "ws://")


class BackendClient:
    def __init__(self, endpoints: Endpoints, timeout: float = 10.0) -> None:
        self.endpoints = endpoints
        # The backend refuses state-changing requests that are neither JSON nor marked as
        # ours: a cross-site form cannot set this header.
        headers = {"X-Causalwatch-Client": "dashboard"}
        if endpoints.token:
            headers["Authorization"] = f"Bearer {endpoints.token}"
        self._http = httpx.Client(base_url=endpoints.api_url, timeout=timeout, headers=headers)
        self._thresholds: dict[str, Any] | None = None
        self._record_fields: dict[str, list[str]] | None = None
        self._run_id: re.Pattern[str] | None = None

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError:
            raise BackendError(
                f"the causalwatch backend at {self.endpoints.api_url} is not reachable"
            ) from None
        if resp.status_code >= 400:
            raise _error_from(resp)
        return resp.json()

    # --- reads -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz")  # type: ignore[no-any-return]

    def presets(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/presets")  # type: ignore[no-any-return]

    def preset(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/api/presets/{name}")  # type: ignore[no-any-return]

    def thresholds(self) -> dict[str, Any]:
        """The scorecard levels and rule triggers; fixed for a backend's life, so kept."""
        if self._thresholds is None:
            self._thresholds = self._request("GET", "/api/thresholds")
        return self._thresholds

    def record_fields(self) -> dict[str, list[str]]:
        """The record's fields, its evaluation-only ones and the loss terms; fixed for a
        backend's life, so kept."""
        if self._record_fields is None:
            self._record_fields = self._request("GET", "/api/record-fields")
        return self._record_fields

    def is_run_id(self, text: str) -> bool:
        """Whether `text` is a run id by the backend's format (GET /api/run-id-format, fixed
        for a backend's life, so kept)."""
        if self._run_id is None:
            self._run_id = re.compile(self._request("GET", "/api/run-id-format")["pattern"])
        return self._run_id.fullmatch(text) is not None

    def config_schema(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/config-schema")  # type: ignore[no-any-return]

    def runs(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/runs")["runs"]  # type: ignore[no-any-return]

    def run(self, run_id: str) -> dict[str, Any]:
        return self._request("GET", _run_path(run_id))  # type: ignore[no-any-return]

    def metrics(self, run_id: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
        params = {"fields": ",".join(fields)} if fields else None
        return self._request(  # type: ignore[no-any-return]
            "GET", f"{_run_path(run_id)}/metrics", params=params
        )

    def alerts(self, run_id: str) -> list[dict[str, Any]]:
        return self._request("GET", f"{_run_path(run_id)}/alerts")  # type: ignore[no-any-return]

    def scorecard(self, run_id: str) -> dict[str, Any]:
        return self._request("GET", f"{_run_path(run_id)}/scorecard")  # type: ignore[no-any-return]

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        """`{id, members, best}`: the members are runs; best is the backend's pick or None."""
        return self._request(  # type: ignore[no-any-return]
            "GET", f"/api/sweeps/{quote(sweep_id, safe='')}"
        )

    def datasets(self) -> list[dict[str, Any]]:
        """Data files runs can name: the backend's --data-dir and uploaded ones."""
        return self._request("GET", "/api/datasets")  # type: ignore[no-any-return]

    def graph(self, run_id: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", f"{_run_path(run_id)}/graph")  # type: ignore[no-any-return]
        except BackendError as err:
            if err.status == 404:
                return None
            raise

    # --- writes ----------------------------------------------------------------------------

    def create_run(
        self, preset: str, overrides: dict[str, Any], name: str | None
    ) -> dict[str, Any]:
        body = {"preset": preset, "overrides": overrides, "name": name or None}
        return self._request("POST", "/api/runs", json=body)  # type: ignore[no-any-return]

    def upload_dataset(self, name: str, content: bytes) -> dict[str, Any]:
        """Store a CSV or reference JSON on the backend; returns how runs name it."""
        return self._request(  # type: ignore[no-any-return]
            "POST", "/api/datasets", params={"name": name}, content=content,
            headers={"content-type": "application/octet-stream"},
        )

    def stop(self, run_id: str) -> dict[str, Any]:
        return self._request("POST", f"{_run_path(run_id)}/stop")  # type: ignore[no-any-return]

    def restart(
        self, run_id: str, alert_id: int | None = None,
        overrides: dict[str, Any] | None = None, name: str | None = None,
    ) -> dict[str, Any]:
        """A child of `run_id`: its config + the alert's fix + `overrides` (the backend merges)."""
        body: dict[str, Any] = {}
        if alert_id is not None:
            body["alert_id"] = alert_id
        if overrides:
            body["overrides"] = overrides
        if name:
            body["name"] = name
        return self._request(  # type: ignore[no-any-return]
            "POST", f"{_run_path(run_id)}/restart", json=body
        )

    # --- links for the browser -------------------------------------------------------------

    def ticket(self) -> str | None:
        """A short-lived read-only token for the browser (GETs, live websockets); None when
        the backend has no token. The admin token itself never reaches a page."""
        if not self.endpoints.token:
            return None
        ticket = self._request("POST", "/api/tickets", json={}).get("token")
        return str(ticket) if ticket else None

    def download_url(self, run_id: str, what: str, ticket: str | None = None) -> str:
        """The backend's public URL of a run's metrics (csv, json) or log, for the browser;
        `ticket` rides along because a link cannot carry a header."""
        base = f"{self.endpoints.public_url}{_run_path(run_id)}"
        url = {
            "csv": f"{base}/metrics?format=csv",
            "json": f"{base}/metrics?format=json",
            "log": f"{base}/log",
        }[what]
        if ticket:
            url += ("&" if "?" in url else "?") + urlencode({"token": ticket})
        return url


def _error_from(resp: httpx.Response) -> BackendError:
    """The backend's `detail` as one sentence; the field it names, if any."""
    message, field = f"the backend answered {resp.status_code}", None
    existing = None
    try:
        detail = resp.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        message = str(first.get("msg", message))
        field = first.get("field")
        existing = first.get("existing_run_id")
        if field is None and isinstance(first.get("loc"), list):
            field = ".".join(str(p) for p in first["loc"][1:]) or None
    elif isinstance(detail, str):
        message = detail
    return BackendError(message, status=resp.status_code, field=field, existing_run_id=existing)


_client: BackendClient | None = None


def configure(endpoints: Endpoints) -> BackendClient:
    global _client  # noqa: PLW0603 - one client per dashboard process, set at start-up
    _client = BackendClient(endpoints)
    return _client


def get() -> BackendClient:
    if _client is None:
        raise RuntimeError("dashboard.client.configure() was not called")
    return _client
