"""Token mode in a real headless Chromium: the token leaves the address bar, pages never hold
it, live charts run on tickets, downloads work, and the CSP refuses nothing the pages need."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from utils.backend_server import BackendServer, free_port
from utils.dashboard_browser import DashboardPage, chromium
from utils.stream_trainer import EPOCH_SECONDS_ENV

TOKEN = "browser-admin-token-for-the-tests-0123456789"
EVIL_NAME = "x](https://evil.example) [x *b* `c`"
# Collects what the page's CSP refused, from before any script of the page runs.
CSP_PROBE = ("window.__cspRefused = [];"
             "document.addEventListener('securitypolicyviolation', function (e) {"
             "  window.__cspRefused.push(e.violatedDirective + ' ' + e.blockedURI); });")


class TokenStack(BackendServer):
    """`causalwatch up` with a token: its dashboard answers 401 until a browser opens it."""

    dashboard_ready = (401,)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path) -> Iterator[TokenStack]:
    # Stand-in trainers at a real epoch's pace: the page's live socket is the point.
    with TokenStack(tmp_path_factory.mktemp("token-stack"), uci_csv_path,
                    dashboard_port=free_port(), token=TOKEN, trainer="stream",
                    env={EPOCH_SECONDS_ENV: "0.3"}) as server:
        yield server


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path / "chromium-profile") as driver:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_PROBE})
        yield driver


def refused(page: DashboardPage) -> list[str]:
    return list(page.js("return window.__cspRefused || []"))


def test_a_token_session_in_chromium(browser: WebDriver, stack: TokenStack) -> None:
    assert stack.dashboard_url is not None
    page = DashboardPage(browser, stack.dashboard_url)
    named = stack.client.post("/api/runs", json={
        "preset": "synthetic", "name": EVIL_NAME,
        "overrides": {"epochs": 2, "synthetic_samples": 200},
    })
    assert named.status_code == 201, named.text
    live = stack.create("synthetic", epochs=40, synthetic_samples=500, batch_size=32,
                        patience=0)

    # The ?token= link printed by `causalwatch up`: the browser lands on the bare address.
    page.open(f"/?token={TOKEN}")
    assert "token" not in browser.current_url
    cookies = {c["name"]: c for c in browser.get_cookies()}
    session = cookies["causalwatch_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert session["value"] != TOKEN
    assert "causalwatch_session" not in page.js("return document.cookie")

    # A hostile name shows as text and still links its run.
    link = page.find(f"#runs-table a[href='/run/{named.json()['id']}']", timeout=30)
    page.wait(lambda: link.text == EVIL_NAME, 10, "the run's name as plain text")
    assert not page.find_all("#runs-table a[href^='https://evil.example']")
    # The list follows WS /ws/runs on a ticket too.
    page.wait(lambda: page.js("return window.causalwatchRunsFeed.state.connected"), 15,
              "the runs feed's socket, opened with a ticket")

    # Live charts: the websocket opens with a ticket the page asked its server for.
    page.open(f"/run/{live['id']}")
    page.wait(lambda: len((page.trace_xs("#graph-clip") or [[]])[0]) >= 5, 90,
              "live epochs on the clip chart")
    assert TOKEN not in browser.page_source
    assert TOKEN not in str(page.js("return JSON.stringify(window.causalwatchLive.state)"))

    # Downloads go through the dashboard, which redirects with a fresh ticket.
    href = page.find("#download-csv").get_attribute("href")
    assert href == f"{stack.dashboard_url}/download/{live['id']}/csv"
    with httpx.Client(timeout=30, follow_redirects=True,
                      cookies={"causalwatch_session": session["value"]}) as http:
        got = http.get(href)
    assert got.status_code == 200, got.text[:300]
    assert "epoch" in got.text.splitlines()[0].split(",")
    assert "token=" in str(got.url) and TOKEN not in str(got.url)

    for path in ("/", "/new", f"/compare?runs={live['id']}"):
        page.open(path)
        assert refused(page) == [], path
    page.assert_clean()
