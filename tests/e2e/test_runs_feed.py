"""The runs list and Compare follow the backend's WS /ws/runs in a real browser: a new run
or a new record shows up because the backend pushed it, an idle page sends no request, and
only a page whose socket cannot connect falls back to a slow poll."""

from __future__ import annotations

import time
from typing import Any

from utils.backend_server import BackendServer
from utils.dashboard_browser import DashboardPage
from utils.records import epoch_record
from utils.sdk_feed import feed

ACTIVE = ("queued", "running")
# Counts the page's own callback requests (Dash posts each with its inputs' ids); the shell's
# backend banner (health-tick) is the shell's, not the page's.
COUNT_READS = """
window.__reads = 0;
const send = window.fetch;
window.fetch = function (url, options) {
  const body = String((options && options.body) || '');
  if (String(url).includes('_dash-update-component') && !body.includes('health-tick')) {
    window.__reads++;
  }
  return send.apply(this, arguments);
};
"""
# Run before the page's own scripts: a browser whose websockets never connect (a proxy that
# refuses them).
NO_WEBSOCKETS = """
window.WebSocket = function () {
  const ws = {readyState: 0, close: function () {}};
  setTimeout(function () { ws.readyState = 3; if (ws.onclose) ws.onclose({code: 1006}); }, 10);
  return ws;
};
"""


def _settle(stack: BackendServer) -> None:
    """No run of the session's stack trains any more: the backend has nothing to push."""
    for run in stack.client.get("/api/runs").json()["runs"]:
        if run["status"] in ACTIVE and run["kind"] != "sdk":
            stack.wait_finished(run["id"], timeout=120)


def _connected(page: DashboardPage) -> bool:
    return bool(page.js("const f = window.causalwatchRunsFeed;"
                        "return !!f && f.state.connected;"))


def _reads_while_idle(page: DashboardPage) -> int:
    """The page's requests over longer than the slow fallback's period, nothing happening."""
    time.sleep(2)  # a re-read of what happened before may still be due
    page.js("window.__reads = 0;")
    time.sleep(page.js("return window.causalwatchRunsFeed.fallbackMs") / 1000 + 1)
    return int(page.js("return window.__reads"))


def _row(run_id: str) -> str:
    return f"#runs-table td[data-dash-column='run'] a[href='/run/{run_id}']"


def _cell(run_id: str, column: str) -> str:
    return (f"#runs-table tr:has(td[data-dash-column='run'] a[href='/run/{run_id}']) "
            f"td[data-dash-column='{column}']")


def test_a_new_run_is_pushed_into_the_list_and_an_idle_list_reads_nothing(
    page: DashboardPage, stack: BackendServer
) -> None:
    _settle(stack)
    page.open("/")
    page.wait(lambda: _connected(page), 15, "the runs feed's socket open")
    page.js(COUNT_READS)
    assert _reads_while_idle(page) == 0, "the idle runs list sent requests"

    run = stack.create_sdk("synthetic", epochs=3)
    try:
        page.wait(lambda: page.text(_row(run["id"])), 5, "the new run's row, pushed")
        assert 1 <= page.js("return window.__reads") <= 2
        # Its first record moves its row on: the epoch column, pushed too.
        feed(stack, run["id"], [("epoch", {"record": epoch_record(1, run["id"])})])
        page.wait_text(_cell(run["id"], "progress"),
                       lambda t: t.startswith("1"), 5, "the run's epoch 1 in its row")
    finally:
        stack.client.post(f"/api/runs/{run['id']}/stop")
    page.wait_text(_cell(run["id"], "status"),
                   lambda t: t == "stopped", 5, "the stopped status, pushed")
    page.assert_clean()


def test_compare_redraws_when_a_compared_run_gets_a_record(
    page: DashboardPage, stack: BackendServer
) -> None:
    _settle(stack)
    run = stack.create_sdk("synthetic", epochs=5)
    try:
        feed(stack, run["id"], [("epoch", {"record": epoch_record(1, run["id"])})])
        page.open(f"/compare?runs={run['id']}&metric=loss_total")
        page.wait(lambda: _connected(page), 15, "the runs feed's socket open")

        def xs() -> list[Any] | None:
            shown = page.trace_xs("#compare-graph")
            return shown[0] if shown else None

        assert page.wait(xs, 20, "the compared run drawn") == [1]
        page.js(COUNT_READS)
        feed(stack, run["id"], [("epoch", {"record": epoch_record(2, run["id"])})], first_seq=2)
        page.wait(lambda: xs() == [1, 2], 5, "epoch 2 drawn, pushed")
        assert _reads_while_idle(page) == 0, "the idle Compare page sent requests"
    finally:
        stack.client.post(f"/api/runs/{run['id']}/stop")
    page.assert_clean()


def test_without_websockets_the_list_falls_back_to_a_slow_poll(
    page: DashboardPage, stack: BackendServer
) -> None:
    page.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                {"source": NO_WEBSOCKETS})
    page.open("/")
    page.js(COUNT_READS)
    fallback_s = page.js("return window.causalwatchRunsFeed.fallbackMs") / 1000
    run = stack.create_sdk("synthetic", epochs=3)
    try:
        page.wait(lambda: page.text(_row(run["id"])), fallback_s + 5,
                  "the new run's row, by the fallback poll")
        assert not _connected(page)
        page.js("window.__reads = 0;")
        time.sleep(fallback_s + 0.5)
        # Slow: one read per period, not a read every second or two.
        assert 1 <= page.js("return window.__reads") <= 2
    finally:
        stack.client.post(f"/api/runs/{run['id']}/stop")
    page.assert_clean()
