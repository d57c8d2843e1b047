"""The dashboard in a real browser: real backend, real trainers on UCI, headless chromium.

Each test walks one step of DESIGN.md's story (form → live charts → red flag → one-click
restart → comparison → downloads → stop), plus the banner shown while the backend is away.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from utils.backend_server import BackendServer, free_port
from utils.dashboard_browser import DashboardPage, DashboardProcess, css_id, dict_id
from utils.records import epoch_record
from utils.sdk_feed import feed_records

pytestmark = pytest.mark.long

# `make screenshots` sets this to docs/img; otherwise the pictures go to the test's temp
# dir, so the suite never writes into the source tree.
SCREENSHOTS_ENV = "CAUSALWATCH_SCREENSHOTS_DIR"
RUN_URL = re.compile(r"/run/([^/?#]+)$")
LIVE_EPOCHS = 30
COMPARE_URL = re.compile(r"/compare\?runs=([^,&]+),([^,&]+)$")
# Records each distinct (clip-chart points, progress text, status badge) the page shows.
SAMPLER = """
window.__marker = 1;
window.__samples = [];
const read = id => { const e = document.getElementById(id);
                     return e ? e.innerText.trim() : ''; };
window.__sampler = setInterval(() => {
  const gd = document.querySelector('#graph-clip .js-plotly-plot');
  const state = [gd && gd.data && gd.data[0] ? gd.data[0].x.length : 0,
                 read('run-progress-text'), read('run-status-badge').toLowerCase()];
  const last = window.__samples[window.__samples.length - 1];
  if (!last || last.some((v, i) => v !== state[i])) window.__samples.push(state);
}, 10);
"""


def run_count(stack: BackendServer) -> int:
    resp = stack.client.get("/api/runs")
    assert resp.status_code == 200, resp.text
    return int(resp.json()["count"])


def status_shown(page: DashboardPage) -> str:
    return page.text("#run-status-badge").strip().lower()


def test_bad_values_are_refused_with_the_field_named(page: DashboardPage, stack: BackendServer
                                                     ) -> None:
    before = run_count(stack)
    page.open("/new")
    page.field("learning_rate_max")

    page.set_field("learning_rate_max", "-1")
    page.click("#launch-start")
    message = page.wait_text(
        css_id(dict_id("cfg-feedback", "learning_rate_max")), bool, 15,
        "the message under learning_rate_max",
    )
    assert "learning_rate_max" in message and "allowed: number > 0" in message, message
    assert page.feedback("learning_rate_max").is_displayed()
    assert "is-invalid" in (page.field("learning_rate_max").get_attribute("class") or "")
    banner = page.text("#launch-error")
    assert "Not started (field learning_rate_max)" in banner, banner
    assert page.driver.current_url.endswith("/new")

    # Fix that one, break another: the message moves to the field now at fault.
    page.set_field("learning_rate_max", "0.0005")
    page.set_field("epochs", "abc")
    page.click("#launch-start")
    message = page.wait_text(css_id(dict_id("cfg-feedback", "epochs")), bool, 15,
                             "the message under epochs")
    assert "epochs" in message and "integer >= 1" in message and "'abc'" in message, message
    assert "is-invalid" in (page.field("epochs").get_attribute("class") or "")
    page.wait(lambda: "is-invalid" not in (page.field("learning_rate_max").get_attribute("class")
                                           or ""), 5, "learning_rate_max to be valid again")
    assert page.text(css_id(dict_id("cfg-feedback", "learning_rate_max"))) == ""

    assert run_count(stack) == before, "a refused form must not create a run"
    page.assert_clean()


def test_a_run_started_from_the_form_streams_live_to_completion(
    page: DashboardPage, stack: BackendServer
) -> None:
    page.open("/new")
    page.field("epochs")
    page.click("#_dbcprivate_radioitems_launch-preset_input_synthetic")
    # The preset picks the Data section's dataset (a radio, not a field of the grid).
    page.wait(lambda: page.find("#_dbcprivate_radioitems_launch-dataset_input_synthetic")
              .is_selected(), 15, "the synthetic preset's dataset in the form")
    # The stack's stand-in paces an epoch at 0.3 s: the run streams for 9 s, most of it after
    # the run page has loaded even on a busy machine (CI once saw 5 of 12 epochs at load and
    # the rest in one redraw).
    page.set_field("epochs", str(LIVE_EPOCHS))
    page.set_field("synthetic_samples", "20000")  # a field of the grid reaches the run
    page.set_field("patience", "0")
    page.click("#launch-start")

    # Creating the run is a POST through the dashboard to the backend: on a loaded machine
    # it can take longer than a click; a refusal would show in the launch error alert.
    run_id = page.wait(lambda: (m := RUN_URL.search(page.driver.current_url)) and m.group(1),
                       60, "the run page after Start (launch error: "
                       f"{page.text('#launch-error')!r})")
    page.wait_loaded()
    # Sample in the page itself, every 10 ms, from as soon as it has loaded: a WebDriver round
    # trip can take a second on a busy machine, long enough to miss every intermediate state
    # of a short run. The sampler and the marker live in `window`: a reload would wipe both.
    page.js(SAMPLER)

    def finished() -> bool:
        last = page.js("return window.__samples && window.__samples.slice(-1)[0];")
        return bool(last) and last[0] == LIVE_EPOCHS and last[2] == "completed"

    page.wait(finished, 90, f"{LIVE_EPOCHS} plotted epochs and status COMPLETED")
    samples = page.js("return window.__marker === 1 ? window.__samples : null;")
    assert samples is not None, "the page reloaded during the run"
    live_counts = {points for points, _, status in samples if points and status != "completed"}
    assert len(live_counts) >= 2, f"charts did not grow live: states seen {samples}"
    shown_epochs = set()
    # Before its first epoch the line says the trainer is starting; once ended, how it ended.
    final = f"completed · {LIVE_EPOCHS} of {LIVE_EPOCHS} epochs"
    ends = ("", "starting the trainer… (loading data)", final)
    for _, progress, _ in samples:
        if progress not in ends:
            match = re.match(rf"epoch (\d+) / {LIVE_EPOCHS}\b", progress)
            assert match, progress
            shown_epochs.add(int(match.group(1)))
    # The last epoch's live line may be replaced by the final one before a sample sees it.
    assert shown_epochs and min(shown_epochs) < LIVE_EPOCHS, sorted(shown_epochs)
    assert page.text("#run-progress-text") == final

    xs = page.trace_xs("#graph-clip")
    assert xs is not None and xs[0] == list(range(1, LIVE_EPOCHS + 1)), xs
    run = stack.run(run_id)
    assert run["status"] == "completed" and run["config"]["synthetic_samples"] == 20000
    assert [r["epoch"] for r in stack.metrics(run_id)] == list(range(1, LIVE_EPOCHS + 1))
    # The adjacency shows the run's latest evaluation, and the red flags panel every alert.
    last_graph = stack.client.get(f"/api/runs/{run_id}/graph").json()["epoch"]
    page.wait_text("#graph-adjacency", lambda t: f"epoch {last_graph}" in t, 10,
                   f"the adjacency of epoch {last_graph}")
    alerts = stack.client.get(f"/api/runs/{run_id}/alerts").json()
    page.wait(lambda: all(page.text(f"#alert-{a['rule']}") for a in alerts), 10,
              f"the {len(alerts)} red flag(s) of the run")
    page.assert_clean()


def screenshots_dir(tmp_path: Path) -> Path:
    return Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)


def test_a_red_flag_restarts_with_its_fix_and_compares(
    real_page: DashboardPage, real_stack: BackendServer, tmp_path: Path
) -> None:
    page, stack = real_page, real_stack
    # docs/presets.md: `standard` on raw UCI flags raw_variance at start, clip_high at epoch 11.
    # Long enough to still run when the fix is clicked; stopped once the child exists.
    parent = stack.create("standard", epochs=400, patience=0)["id"]
    page.open(f"/run/{parent}")

    card = "#alert-raw_variance"
    page.wait(lambda: "Restart with this fix" in page.text(card), 60,
              "the raw_variance red flag")
    diff = page.texts(f"{card} .config-diff td")
    assert diff == ["standardize", "false", "→", "true"], diff
    assert page.text(f"{card} .alert-message"), "the card explains the flag"

    # Docs asset: the failing run with its flags and charts, mid-run.
    page.wait(lambda: page.text("#alert-clip_high"), 60, "the clip_high red flag")
    page.wait(lambda: len((page.trace_xs("#graph-clip") or [[]])[0]) >= 11, 20,
              "11 epochs on the clip chart")
    page.screenshot(screenshots_dir(tmp_path) / "run-page.png")

    # Clicked while the parent still runs and live events keep arriving: the click must
    # survive the panels' refreshes (it once could be dropped when they re-rendered).
    assert stack.run(parent)["status"] == "running"
    page.wait_still(f"{card} button")
    page.click(f"{card} button")
    try:
        match = page.wait(lambda: COMPARE_URL.search(page.driver.current_url), 30,
                          "the comparison page after the restart")
    except AssertionError as err:
        children = stack.run(parent).get("children")
        raise AssertionError(
            f"{err}\nruns restarted from {parent}: {children} (one: the restart ran but the "
            "page's redirect to the comparison was lost)"
        ) from None
    assert match.group(1) == parent
    child_id = match.group(2)
    child = stack.run(child_id)
    assert child["parent_id"] == parent
    assert child["config"]["standardize"] is True
    assert stack.run(parent)["config"]["standardize"] is False

    page.wait_loaded()
    page.wait(lambda: len(page.trace_xs("#compare-graph") or []) == 2, 20,
              "parent and child overlaid")
    table = page.wait_text(".compare-table", lambda t: "standardize" in t, 20,
                           "the side-by-side config table")
    assert "parent" in table
    # The parent row links the parent by its lineage label (the id is in the link's title).
    assert page.find_all(f".compare-table a[href='/run/{parent}']"), "a link to the parent"

    # Docs asset: the failing run stopped by hand, then its fixed child after 25 epochs
    # (it inherits the parent's 400), overlaid.
    assert stack.client.post(f"/api/runs/{parent}/stop").status_code == 200
    assert stack.wait_finished(parent, timeout=60)["status"] == "stopped"
    stack.wait_for(child_id, lambda r: (r["last_epoch"] or 0) >= 25, timeout=90)
    assert stack.client.post(f"/api/runs/{child_id}/stop").status_code == 200
    assert stack.wait_finished(child_id, timeout=60)["status"] == "stopped"
    # Compare opens on the metric of the flag the restart fixed (the alert names it).
    alerts = stack.client.get(f"/api/runs/{parent}/alerts").json()
    metric = next(a for a in alerts if a["rule"] == "raw_variance")["metric"] or "f1"
    child_points = len([r for r in stack.metrics(child_id) if r.get(metric) is not None])
    page.wait(lambda: len((page.trace_xs("#compare-graph") or [[], []])[1]) == child_points,
              20, f"the child's {child_points} {metric} points")
    page.wait_text(".compare-table", lambda t: t.lower().count("stopped") == 2, 10,
                   "both runs STOPPED in the table")
    page.screenshot(screenshots_dir(tmp_path) / "compare.png")
    page.assert_clean()


@pytest.fixture
def completed_run(stack: BackendServer) -> str:
    """A completed run: one an earlier test finished (the suite stays fast), else a short one."""
    runs = stack.client.get("/api/runs", params={"status": "completed"}).json()["runs"]
    if runs:
        return str(runs[0]["id"])
    run_id = str(stack.create("synthetic", epochs=6, synthetic_samples=500)["id"])
    assert stack.wait_finished(run_id, timeout=90)["status"] == "completed"
    return run_id


def test_downloads_match_the_api_and_the_run_folder(
    page: DashboardPage, stack: BackendServer, completed_run: str
) -> None:
    run_id = completed_run
    page.open(f"/run/{run_id}")
    hrefs = {what: page.find(f"#download-{what}").get_attribute("href")
             for what in ("csv", "json", "log")}
    api = stack.metrics(run_id)
    assert api and [r["epoch"] for r in api] == list(range(1, len(api) + 1))

    # The links are the dashboard's; it redirects to the API (with a ticket in token mode).
    for what, href in hrefs.items():
        assert href == f"{page.base_url}/download/{run_id}/{what}", href
    with httpx.Client(timeout=30, follow_redirects=True) as http:
        got = {what: http.get(str(href)) for what, href in hrefs.items()}
    for what, resp in got.items():
        assert resp.status_code == 200, (what, hrefs[what], resp.text[:300])
        assert "attachment" in resp.headers.get("content-disposition", ""), what

    assert got["json"].json() == api
    rows = list(csv.DictReader(io.StringIO(got["csv"].text)))
    assert len(rows) == len(api)
    assert [int(row["epoch"]) for row in rows] == [r["epoch"] for r in api]
    for row, record in zip(rows, api, strict=True):
        for key, value in record.items():
            if isinstance(value, dict) or (key == "custom" and value is None):
                # A training loop's own keys (`custom`, SDK runs): how a CSV lays them out is
                # the API's choice; our trainer sends none.
                continue
            assert row[key] == ("" if value is None else str(value)), (record["epoch"], key)
    log = (stack.runs_dir / run_id / "train.log").read_text()
    assert log and got["log"].text == log
    page.assert_clean()


def test_the_stop_button_stops_the_run(page: DashboardPage, stack: BackendServer) -> None:
    # Small batches: ~2 epochs a second, a long run that does not flood the browser with
    # chart updates (at 10 epochs/s the page's redraws starve a loaded CPU).
    run_id = stack.create("synthetic", epochs=500, patience=0, batch_size=16)["id"]
    page.open(f"/run/{run_id}")
    page.wait(lambda: len((page.trace_xs("#graph-clip") or [[]])[0]) >= 1, 60,
              "the run's first epoch on the page")
    page.wait(lambda: status_shown(page) == "running", 10, "the status badge to show RUNNING")
    page.click("#run-stop")
    page.wait(lambda: status_shown(page) == "stopped", 40, "the status badge to show STOPPED")
    run = stack.run(run_id)
    assert run["status"] == "stopped"
    assert (run.get("last_epoch") or 0) < 500
    page.wait(lambda: page.js("return document.getElementById('run-stop').disabled"), 10,
              "the Stop button to be disabled")
    page.assert_clean()


def test_the_banner_shows_while_the_backend_is_away(
    browser: WebDriver, tmp_path: Path, uci_csv_path: Path
) -> None:
    api_port = free_port()  # nothing listens here yet
    dashboard = DashboardProcess(free_port(), f"http://127.0.0.1:{api_port}",
                                 tmp_path / "dashboard.log").start()
    backend: BackendServer | None = None
    try:
        page = DashboardPage(browser, dashboard.url)
        page.open("/")
        banner = page.wait_text("#backend-banner", bool, 15, "the backend-down banner")
        assert banner.startswith(f"The causalwatch backend at http://127.0.0.1:{api_port} "
                                 "is not reachable"), banner
        assert "Retrying" in banner and "{" not in banner
        page.assert_clean()

        backend = BackendServer(tmp_path, uci_csv_path, port=api_port).start()
        back_at = time.monotonic()
        page.wait(lambda: page.js("const e = document.getElementById('backend-banner');"
                                  "return !e || e.offsetParent === null;"),
                  10, "the banner to go away by itself")
        assert time.monotonic() - back_at < 10
        page.find("#runs-table")
        page.assert_clean()
    finally:
        dashboard.stop()
        if backend is not None:
            backend.stop()
            backend.client.close()


def _hand_fed_run(stack: BackendServer, epochs: int, **fields_at: dict[str, float]) -> str:
    """A run of kind sdk with `epochs` records sent by hand, then stopped."""
    run_id = str(stack.create_sdk("synthetic", epochs=epochs)["id"])
    feed_records(stack, run_id, [
        epoch_record(epoch, run_id, **{"clip_pct": 10.0 + epoch % 7,
                                       "logit_std": 0.5 + (epoch % 11) / 100,
                                       **fields_at.get(str(epoch), {})})
        for epoch in range(1, epochs + 1)
    ])
    assert stack.client.post(f"/api/runs/{run_id}/stop").status_code == 200
    return run_id


def test_a_long_run_is_drawn_from_a_reduced_set_that_keeps_its_spikes(
    page: DashboardPage, stack: BackendServer
) -> None:
    epochs = 1500
    run_id = _hand_fed_run(stack, epochs, **{"333": {"clip_pct": 95.0},
                                             "777": {"clip_pct": 0.0}})
    stored = stack.metrics(run_id)
    assert len(stored) == epochs  # the records themselves are never reduced

    page.open(f"/run/{run_id}")
    def last_epoch_shown() -> bool:
        xs = page.trace_xs("#graph-clip")
        return bool(xs and xs[0]) and xs[0][-1] == epochs

    page.wait(last_epoch_shown, 60, f"epoch {epochs} on the clip chart")
    xs = page.trace_xs("#graph-clip")[0]
    limit = page.js("return window.causalwatchLive.maxPoints")
    assert len(xs) <= limit < epochs, (len(xs), limit)
    assert xs == sorted(set(xs)), "epochs in order, each once"
    assert xs[-200:] == list(range(epochs - 199, epochs + 1)), "the last 200 epochs, all"
    assert {333, 777} <= set(xs), "the highest and the lowest clip% are kept"
    ys = page.js("return document.querySelector('#graph-clip .js-plotly-plot').data[0].y")
    by_epoch = {r["epoch"]: r["clip_pct"] for r in stored}
    assert all(by_epoch[x] == y for x, y in zip(xs, ys, strict=True)), "values as stored"
    page.assert_clean()


HEALTH_FIELDS = ("grad_norm_recon", "grad_norm_sparse", "grad_norm_acyclic", "grad_norm_disen",
                 "update_ratio")


def test_gradient_norms_update_ratio_and_the_two_f1s_are_shown(
    page: DashboardPage, stack: BackendServer
) -> None:
    """Records without the optional health fields (an older trainer's) leave the new charts
    empty there, not at zero; the header names F1 at the best checkpoint apart from the
    highest F1 seen, here a later epoch's."""
    fields: dict[str, dict[str, Any]] = {
        str(e): {f: (None if e < 3 else 1e-3 * e) for f in HEALTH_FIELDS} for e in range(1, 11)
    }
    fields["4"].update(is_best=True, f1=0.2, shd=12, val_recon=0.5)
    fields["8"].update(f1=0.6, shd=7, val_recon=0.7)  # the better graph, not the checkpoint
    run_id = _hand_fed_run(stack, 10, **fields)
    page.open(f"/run/{run_id}")

    page.wait_text("#run-f1-at-best", lambda t: t == "epoch 4: F1 0.20, SHD 12", 20,
                   "F1/SHD at the best checkpoint")
    assert page.text("#run-max-f1") == "0.60 (epoch 8)"
    page.js("document.getElementById('graph-update-ratio').scrollIntoView({block: 'center'})")
    measured = list(range(3, 11))
    page.wait(lambda: page.trace_xs("#graph-grad-terms") == [measured] * 4, 30,
              "four per-term gradient norm series from epoch 3")
    assert page.trace_xs("#graph-update-ratio") == [measured]
    clip = page.js("const gd = document.querySelector('#graph-grad-terms .js-plotly-plot');"
                   "return gd.layout.shapes.map(s => [s.y0, s.line.dash]);")
    assert clip == [[stack.run(run_id)["config"]["grad_clip_norm"], "dash"]]
    page.assert_clean()
