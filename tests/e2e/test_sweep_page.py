"""The sweep page in a real browser: a real two-member sweep of tiny synthetic runs, its
table filling in as they finish, the best member marked in the table and the plot."""

from __future__ import annotations

import time
from typing import Any

from utils.backend_server import BackendServer
from utils.dashboard_browser import DashboardPage

from dashboard.sweep_view import BEST_COLOR, REFRESH_MS

TINY = {"epochs": 2, "synthetic_samples": 200}
ROWS = """
return Array.from(document.querySelectorAll('#sweep-table tbody tr')).map(tr => ({
  run: tr.getAttribute('data-run'), best: tr.classList.contains('sweep-best'),
  bg: getComputedStyle(tr.cells[1]).backgroundColor,
  cells: Array.from(tr.cells).map(td => td.innerText.trim())}));
"""
# Counts the page's re-reads: Dash posts each callback with its inputs' ids, and the page
# re-reads when its runs feed (WS /ws/runs) is bumped.
COUNT_POLLS = """
window.__sweepPolls = 0;
const send = window.fetch;
window.fetch = function (url, options) {
  if (options && String(options.body || '').includes('runs-feed')) window.__sweepPolls++;
  return send.apply(this, arguments);
};
"""
PARALLEL = """
const gd = document.querySelector('#sweep-plot .js-plotly-plot');
if (!gd || !gd.data || !gd.data.length) return null;
return {axes: gd.layout.meta.axes, members: gd.layout.meta.members,
        lines: gd.data.map(t => ({run: t.meta.run, color: t.line.color})),
        drawn: gd.querySelectorAll('.scatterlayer .trace path.js-line').length,
        text: gd.innerText || ''};
"""

def _sweep(stack: BackendServer) -> dict[str, Any]:
    resp = stack.client.post("/api/sweeps", json={
        "preset": "synthetic", "grid": {"lambda_sparse": [0.01, 0.05]}, "seeds": [0],
        "overrides": TINY,
    })
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_the_sweep_page_fills_in_and_marks_the_best_member(
    page: DashboardPage, stack: BackendServer
) -> None:
    sweep = _sweep(stack)
    members = [m["id"] for m in sweep["members"]]
    # Opened at once: the members are queued or running, so the page has to follow them.
    page.open(f"/sweep/{sweep['id']}")
    page.js(COUNT_POLLS)
    rows = page.wait(lambda: page.js(ROWS), 20, "the member rows")
    assert [r["run"] for r in rows] == members
    header = page.texts("#sweep-table thead th")
    assert header[:3] == ["member", "lambda_sparse", "seed"]
    assert "max F1 seen (ref-picked)" in header and "F1 at best ckpt" in header
    assert [r["cells"][1:3] for r in rows] == [["0.01", "0"], ["0.05", "0"]]

    for run_id in members:
        assert stack.wait_finished(run_id, timeout=120)["status"] == "completed"
    best = stack.client.get(f"/api/sweeps/{sweep['id']}").json()["best"]
    assert best in members

    # The best so far can move while members finish: wait for the page's last poll.
    def marked() -> list[dict[str, Any]] | None:
        now = page.js(ROWS)
        done = all("completed" in r["cells"][3].lower() for r in now)
        return now if done and [r["run"] for r in now if r["best"]] == [best] else None

    rows = page.wait(marked, 30, f"the best member {best} marked, every member completed")
    best_row = next(r for r in rows if r["best"])
    assert best_row["cells"][-1] == "best"
    # Marked so a reader sees it: the best row's cells are shaded, the others are not.
    assert {r["bg"] for r in rows if not r["best"]} != {best_row["bg"]}, rows
    assert all("completed" in r["cells"][3].lower() for r in rows)
    # best val_recon, F1 at best, level: numbers by format.py, never "None".
    for r in rows:
        assert r["cells"][5] != "—" and "None" not in " ".join(r["cells"])
        assert r["cells"][8] == "none"  # two epochs: every level's epoch is missed

    plot = page.wait(lambda: page.js(PARALLEL), 20, "the parallel-coordinates figure")
    assert plot["axes"][:3] == ["lambda_sparse", "seed", "best val_recon"]
    assert plot["members"] == members
    # Drawn, not only sent: one SVG line per member, the best one red and last (on top).
    assert plot["drawn"] == 2, plot
    assert plot["lines"][-1] == {"run": best, "color": BEST_COLOR}
    assert plot["lines"][0]["color"] != BEST_COLOR
    assert "2 of 2 members plotted" in page.text("#sweep-plot-note")

    # It re-read while members ran, pushed over the feed, and reads nothing once every
    # member has ended: no poll, and no slow fallback either (the socket is up).
    assert page.js("return window.__sweepPolls") > 0
    assert page.js("return window.causalwatchRunsFeed.state.connected") is True
    time.sleep(REFRESH_MS / 1000 + 0.5)  # a trailing re-read may still be due
    page.js("window.__sweepPolls = 0;")
    time.sleep(max(3 * REFRESH_MS, page.js("return window.causalwatchRunsFeed.fallbackMs")
                   + 1000) / 1000)
    assert page.js("return window.__sweepPolls") == 0
    page.assert_clean()


def test_a_sweep_is_reached_from_the_sweeps_list_and_from_a_member_run(
    page: DashboardPage, stack: BackendServer
) -> None:
    sweep = _sweep(stack)
    page.open("/")
    page.click("a.nav-link[href='/sweeps']")
    row = f"#sweeps-table tr[data-sweep='{sweep['id']}']"
    page.wait_text(row, lambda t: "lambda_sparse, seed" in t and "synthetic" in t, 20,
                   "the sweep's row in the list")
    page.click(f"{row} a")
    page.wait(lambda: page.driver.current_url.endswith(f"/sweep/{sweep['id']}"), 20,
              "the sweep page from the list")
    page.wait(lambda: len(page.js(ROWS)) == 2, 20, "the sweep's two members")

    member = sweep["members"][1]["id"]
    page.click(f"#sweep-table tr[data-run='{member}'] a")
    page.wait(lambda: page.driver.current_url.endswith(f"/run/{member}"), 20, "the member run")
    page.wait_text("#run-sweep", lambda t: t == f"sweep {sweep['id']}", 20, "the sweep link")
    page.click("#run-sweep")
    page.wait(lambda: page.driver.current_url.endswith(f"/sweep/{sweep['id']}"), 20,
              "back on the sweep page from the member")
    page.wait(lambda: len(page.js(ROWS)) == 2, 20, "the sweep's two members again")
    page.assert_clean()
    for run_id in (m["id"] for m in sweep["members"]):  # leave the slots free for later tests
        stack.wait_finished(run_id, timeout=120)


def test_an_unknown_sweep_says_so(page: DashboardPage) -> None:
    page.open("/sweep/feedf00d")
    page.wait_text("#_pages_content", lambda t: "No sweep feedf00d" in t, 20, "the 404 line")
    page.assert_clean()
