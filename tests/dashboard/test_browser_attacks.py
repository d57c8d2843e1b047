"""The dashboard as a hostile page or a rebound name would reach it: `python -m dashboard`
on a free loopback port, asked over HTTP with the headers a browser would send.

Without a token the backend may be absent (nothing here reaches it); token mode runs
against a real `causalwatch up --no-dashboard` with the same token.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from utils.backend_server import BackendServer, free_port
from utils.processes import stop_process, wait_until_answers
from websockets.sync.client import connect

from dashboard.client import BackendClient, Endpoints

TOKEN = "dashboard-admin-token-for-the-tests-0123456789"
COOKIE = "causalwatch_session"


@dataclass
class Dashboard:
    url: str
    port: int
    api: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]


def start_dashboard(
    log: Path, api: str, *, args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> Dashboard:
    port = free_port()
    out = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dashboard", "--port", str(port), "--api", api, *args],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**{k: v for k, v in os.environ.items()
                if k not in ("CAUSALWATCH_TOKEN", "CAUSALWATCH_ALLOWED_HOSTS")}, **(env or {})},
    )
    dashboard = Dashboard(f"http://127.0.0.1:{port}", port, api, process, log)
    try:  # any answer at all: the refusals are what the tests are about
        wait_until_answers(dashboard.url + "/_causalwatch/ticket", process, log.read_text,
                           statuses=range(100, 600), what="dashboard")
    except RuntimeError:
        stop_dashboard(dashboard)
        raise
    return dashboard


def stop_dashboard(dashboard: Dashboard) -> None:
    stop_process(dashboard.process, timeout=10)


@pytest.fixture(scope="module")
def open_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """No token, no backend behind it (its --api port is free): the guards need neither."""
    log = tmp_path_factory.mktemp("open-dashboard") / "dashboard.log"
    dashboard = start_dashboard(
        log, f"http://127.0.0.1:{free_port()}", args=("--allowed-host", "dash.example"),
        env={"CAUSALWATCH_ALLOWED_HOSTS": "env.example, other.example"},
    )
    try:
        yield dashboard
    finally:
        stop_dashboard(dashboard)


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path
) -> Iterator[tuple[BackendServer, Dashboard]]:
    """A backend and a dashboard sharing an admin token, as `causalwatch up` starts them."""
    root = tmp_path_factory.mktemp("secured-dashboard")
    with BackendServer(root, uci_csv_path, token=TOKEN, trainer="stream") as backend:
        dashboard = start_dashboard(root / "dashboard.log", backend.url,
                                    env={"CAUSALWATCH_TOKEN": TOKEN})
        try:
            yield backend, dashboard
        finally:
            stop_dashboard(dashboard)


@contextmanager
def session(dashboard: Dashboard) -> Iterator[httpx.Client]:
    """A browser that opened the dashboard's ?token= link, holding its session cookie."""
    with dashboard.client() as browser:
        resp = browser.get("/", params={"token": TOKEN})
        assert resp.status_code == 303, resp.text
        yield browser


def banner_callback(origin: str | None) -> tuple[dict[str, object], dict[str, str]]:
    """The shell's backend-banner callback, as the page posts it."""
    body = {
        "output": "..backend-banner.children...backend-banner.is_open...backend-health.data..",
        "outputs": [{"id": "backend-banner", "property": "children"},
                    {"id": "backend-banner", "property": "is_open"},
                    {"id": "backend-health", "property": "data"}],
        "inputs": [{"id": "health-tick", "property": "n_intervals", "value": 1}],
        "changedPropIds": ["health-tick.n_intervals"],
        "state": [],
    }
    return body, ({"Origin": origin} if origin else {})


# --- without a token -----------------------------------------------------------------------


def test_foreign_host_names_are_refused(open_dashboard: Dashboard) -> None:
    port = open_dashboard.port
    with open_dashboard.client() as http:
        refused = http.get("/", headers={"Host": f"evil.example:{port}"})
        assert refused.status_code == 400
        assert refused.headers["content-type"].startswith("text/plain")
        assert "evil.example" in refused.text and "--allowed-host" in refused.text
        for host in ("127.0.0.1.evil.example", "localhost.evil.example", "[::2]", "[junk]"):
            assert http.get("/", headers={"Host": host}).status_code == 400, host
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST",
                     f"dash.example:{port}", "env.example", "other.example"):
            assert http.get("/", headers={"Host": host}).status_code == 200, host
        # Every route, not just pages: a rebound page would read the layout and callbacks.
        assert http.get("/_dash-layout", headers={"Host": "evil.example"}).status_code == 400
        body, _ = banner_callback(None)
        assert http.post("/_dash-update-component", json=body,
                         headers={"Host": "evil.example"}).status_code == 400


def test_cross_site_posts_are_refused(open_dashboard: Dashboard) -> None:
    with open_dashboard.client() as http:
        for origin in ("http://evil.example", "null", f"http://localhost:{open_dashboard.port}",
                       f"https://127.0.0.1:{open_dashboard.port}", "http://127.0.0.1:1"):
            body, headers = banner_callback(origin)
            refused = http.post("/_dash-update-component", json=body, headers=headers)
            assert refused.status_code == 403, origin
            assert "origin" in refused.text and refused.headers["content-type"].startswith(
                "text/plain")
        for origin in (open_dashboard.url, None):  # its own pages; scripts send none
            body, headers = banner_callback(origin)
            ok = http.post("/_dash-update-component", json=body, headers=headers)
            assert ok.status_code == 200, (origin, ok.text[:300])
            assert "not reachable" in ok.text  # the callback ran: no backend behind it


def test_every_response_carries_the_security_headers(open_dashboard: Dashboard) -> None:
    with open_dashboard.client() as http:
        page = http.get("/")
        answers = [page, http.get("/_dash-layout"), http.get("/assets/live.js"),
                   http.get("/", headers={"Host": "evil.example"}),
                   http.get("/download/r1/csv")]
    for resp in answers:
        assert resp.headers["x-frame-options"] == "DENY", resp.url
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    csp = dict(part.split(" ", 1) for part in page.headers["content-security-policy"].split("; "))
    api = open_dashboard.api
    assert csp["connect-src"] == f"'self' {api} {api.replace('http://', 'ws://')}"
    assert csp["default-src"] == "'self'"
    # Every inline script the page runs is allowed by its hash, and nothing else inline is.
    allowed = set(csp["script-src"].split()) - {"'self'"}
    html = re.sub(r"<!--.*?-->", "", page.text, flags=re.S)  # IE's conditional comment
    inline = [m.group(2) for m in re.finditer(r"<script([^>]*)>(.*?)</script>", html, re.S)
              if "src=" not in m.group(1) and "application/json" not in m.group(1)]
    assert inline, "Dash's renderer is an inline script"
    assert {_sha256(script) for script in inline} == allowed


def _sha256(script: str) -> str:
    import base64
    import hashlib

    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def test_downloads_without_a_backend_say_so(open_dashboard: Dashboard) -> None:
    api = open_dashboard.api
    with open_dashboard.client() as http:
        assert http.get("/download/r1/exe").status_code == 404
        # What a run id is, the backend says (GET /api/run-id-format); none answers here.
        resp = http.get("/download/r.1-x/csv")
        assert resp.status_code == 502, resp.text
        assert "cannot download" in resp.text and "not reachable" in resp.text, resp.text
        layout = http.get("/_dash-layout").json()
    # The page learns where tickets come from, and the backend's addresses, nothing more.
    api_store = layout["props"]["children"][1]["props"]
    assert api_store["id"] == "api-config"
    assert api_store["data"] == {"http": api, "ws": api.replace("http://", "ws://"),
                                 "ticket": "/_causalwatch/ticket"}


def test_without_a_token_tickets_are_null(open_dashboard: Dashboard) -> None:
    with open_dashboard.client() as http:
        resp = http.get("/_causalwatch/ticket")
        assert resp.status_code == 200 and resp.json() == {"token": None}
        assert resp.headers["cache-control"] == "no-store"
        other_site = http.get("/_causalwatch/ticket", headers={"Sec-Fetch-Site": "same-site"})
        assert other_site.status_code == 403


def test_bad_allowed_hosts_fail_at_start_naming_the_option(tmp_path: Path) -> None:
    for args, env in [(("--allowed-host", "http://x.example"), {}),
                      ((), {"CAUSALWATCH_ALLOWED_HOSTS": "x.example:8050"})]:
        done = subprocess.run(
            [sys.executable, "-m", "dashboard", "--port", str(free_port()), *args],
            capture_output=True, text=True, timeout=60, env={**os.environ, **env}, check=False,
        )
        assert done.returncode == 2
        assert "without port or scheme" in done.stderr
        assert ("--allowed-host" if args else "CAUSALWATCH_ALLOWED_HOSTS") in done.stderr


# --- token mode ----------------------------------------------------------------------------


def test_the_token_opens_a_session_and_leaves_the_address(
    secured: tuple[BackendServer, Dashboard],
) -> None:
    _, dashboard = secured
    with dashboard.client() as anonymous:
        refused = anonymous.get("/")
        assert refused.status_code == 401 and "?token=" in refused.text
        assert anonymous.get("/_dash-layout").status_code == 401
        assert anonymous.get("/_causalwatch/ticket").status_code == 401
        assert anonymous.get("/download/r1/csv").status_code == 401
        assert anonymous.get("/", params={"token": "wrong"}).status_code == 401
    for forged in (TOKEN, "forged"):
        with dashboard.client(cookies={COOKIE: forged}) as impostor:
            assert impostor.get("/").status_code == 401

    with dashboard.client() as browser:
        opened = browser.get("/run/abc", params={"token": TOKEN, "tab": "x y"})
        assert opened.status_code == 303
        assert opened.headers["location"] == "/run/abc?tab=x+y"
        cookie = opened.headers["set-cookie"]
        assert TOKEN not in cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        session_id = browser.cookies[COOKIE]
        assert session_id and session_id != TOKEN
        # The cookie alone opens every route; no response carries the admin token.
        page = browser.get("/run/abc?tab=x+y")
        layout = browser.get("/_dash-layout")
        assert page.status_code == layout.status_code == 200
        assert TOKEN not in page.text and TOKEN not in layout.text
        body, headers = banner_callback(dashboard.url)
        banner = browser.post("/_dash-update-component", json=body, headers=headers)
        assert banner.status_code == 200 and TOKEN not in banner.text
        # A wrong token with a good session is still a wrong token.
        assert browser.get("/", params={"token": "wrong"}).status_code == 401

    with dashboard.client() as other:
        other.get("/", params={"token": TOKEN})
        assert other.cookies[COOKIE] != session_id  # a session per browser


def test_pages_get_read_only_tickets_never_the_token(
    secured: tuple[BackendServer, Dashboard],
) -> None:
    backend, dashboard = secured
    with session(dashboard) as browser:
        resp = browser.get("/_causalwatch/ticket")
        assert resp.status_code == 200 and resp.headers["cache-control"] == "no-store"
        ticket = resp.json()["token"]
        assert ticket and TOKEN not in ticket
    with connect(f"{backend.ws_url}/ws/runs?token={ticket}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
    anonymous = httpx.Client(base_url=backend.url, timeout=10)
    assert anonymous.get("/api/runs", params={"token": ticket}).status_code == 200
    assert anonymous.post("/api/runs", params={"token": ticket},
                          json={"preset": "uci"}).status_code == 401  # read-only


def test_downloads_carry_a_fresh_ticket(secured: tuple[BackendServer, Dashboard]) -> None:
    backend, dashboard = secured
    run = backend.create("synthetic", epochs=2, synthetic_samples=200)
    assert backend.wait_finished(run["id"])["status"] == "completed"
    with session(dashboard) as browser:
        for what in ("csv", "json", "log"):
            resp = browser.get(f"/download/{run['id']}/{what}")
            assert resp.status_code == 302 and resp.headers["cache-control"] == "no-store"
            location = resp.headers["location"]
            assert location.startswith(f"{backend.url}/api/runs/{run['id']}/")
            assert "token=" in location and TOKEN not in location
            got = httpx.get(location, timeout=30)
            assert got.status_code == 200, (what, got.text[:200])
            assert "attachment" in got.headers.get("content-disposition", "")
        # Refused by the backend's run-id format before any URL is built from them.
        for bad in ("-r1", "." + "x", "x" * 81, "r%201", "r1%3Fx"):
            resp = browser.get(f"/download/{bad}/csv")
            assert resp.status_code == 400 and "is not a run id" in resp.text, (bad, resp.text)


def test_the_client_marks_its_requests_as_the_dashboards(
    secured: tuple[BackendServer, Dashboard],
) -> None:
    backend, _ = secured
    api = BackendClient(Endpoints(api_url=backend.url, public_url=backend.url, token=TOKEN))
    run = api.create_run("synthetic", {"epochs": 200, "patience": 0}, "stopped by the client")
    # A body-less POST: the backend takes it from scripts that say who they are.
    assert api.stop(run["id"])["id"] == run["id"]
    assert backend.wait_finished(run["id"])["status"] == "stopped"
    ticket = api.ticket()
    assert ticket and ticket != TOKEN
    assert api.download_url(run["id"], "log", ticket) == (
        f"{backend.url}/api/runs/{run['id']}/log?token={ticket}"
    )
