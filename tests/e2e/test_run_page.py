"""The run page's frame in a real browser: the adjacency's height, a finished run's final
line, the waiting states of a queued or starting run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from selenium.webdriver.chrome.webdriver import WebDriver
from utils.backend_server import BackendServer, free_port
from utils.dashboard_browser import DashboardPage
from utils.records import epoch_record
from utils.sdk_feed import feed as _feed

# The run page's bound for the adjacency: a few hundred pixels, never the red-flag column's.
MAX_HEATMAP_PX = 700
VARIABLES = [f"X{i}" for i in range(13)]
# A collapsed, clipped epoch: several red flags at once.
BROKEN = {"clip_pct": 100.0, "logit_std": 0.01, "edges_at_05": 0, "edges_tuned": 0,
          "share_recon": 100.0, "share_sparse": 0.0, "share_acyclic": 0.0, "share_disen": 0.0}
FINISHED_LOOK = """
const bar = document.querySelector('#run-progress .progress-bar');
const stop = document.getElementById('run-stop');
const banner = document.getElementById('run-stopping');
return {text: document.getElementById('run-progress-text').innerText,
        striped: !!bar && bar.className,
        stopShown: !!stop && stop.offsetParent !== null,
        stopDisabled: !!stop && stop.disabled,
        stopping: !!banner && banner.offsetParent !== null};
"""


def stop_from_the_page(page: DashboardPage, is_final: Callable[[str], bool],
                       timeout: float) -> None:
    """Stop with the page's button: the final line, and nothing left that says it runs."""
    page.click("#run-stop")
    page.wait(lambda: is_final(page.js(FINISHED_LOOK)["text"]), timeout,
              "the stopped run's final line")
    page.wait(lambda: not page.js(FINISHED_LOOK)["stopping"], 5, "no more 'Stopping…'")
    look = page.js(FINISHED_LOOK)
    assert "ETA" not in look["text"], look
    assert "striped" not in look["striped"] and "animated" not in look["striped"], look
    assert not look["stopShown"] and not look["stopping"], look


def _heatmap_px(page: DashboardPage) -> float:
    return float(page.js(
        "return document.getElementById('graph-adjacency').getBoundingClientRect().height"
    ))


def test_the_adjacency_keeps_its_height_as_red_flags_arrive(
    page: DashboardPage, stack: BackendServer
) -> None:
    run_id = str(stack.create_sdk("synthetic", epochs=40)["id"])
    edges = [[VARIABLES[i], VARIABLES[i + 1]] for i in range(12)]
    probabilities = [[0.1] * 13 for _ in range(13)]
    _feed(stack, run_id, [
        ("started", {"config": {}, "data": {"variables": VARIABLES, "reference_edges": edges,
                                            "reference_kind": "ground truth"}}),
        ("epoch", {"record": epoch_record(1, run_id)}),
        ("epoch", {"record": epoch_record(2, run_id)}),
        ("graph", {"epoch": 2, "probabilities": probabilities}),  # evaluated every 2 epochs
    ])
    page.open(f"/run/{run_id}")
    page.wait_text("#graph-adjacency", lambda t: "epoch 2" in t, 20, "the adjacency of epoch 2")
    page.find("#graph-adjacency .js-plotly-plot")
    before = _heatmap_px(page)
    assert 300 <= before <= MAX_HEATMAP_PX, before

    # A collapsed, clipped run: several red flags, a tall column beside the charts.
    _feed(stack, run_id, [
        ("epoch", {"record": epoch_record(e, run_id, **BROKEN)})
        for e in range(3, 16)
    ], first_seq=10)
    page.wait(lambda: len(page.find_all(".alert-card")) >= 3, 30, "three red flags")
    page.wait(lambda: page.js("return document.getElementById('run-alerts')"
                              ".getBoundingClientRect().height") > before, 10,
              "a red-flag column taller than the adjacency")
    assert _heatmap_px(page) == before
    page.assert_clean()


def test_a_finished_run_shows_how_it_ended_and_nothing_that_moves(
    page: DashboardPage, stack: BackendServer
) -> None:
    run_id = str(stack.create_sdk("synthetic", epochs=20)["id"])
    summary = {"status": "early_stopped", "reason": "no val_recon improvement", "epochs_run": 5}
    _feed(stack, run_id, [*(("epoch", {"record": epoch_record(e, run_id)}) for e in range(1, 6)),
                          ("finished", {"summary": summary})])
    assert stack.wait_finished(run_id)["status"] == "completed"

    page.open(f"/run/{run_id}")
    page.wait(lambda: len((page.trace_xs("#graph-clip") or [[]])[0]) == 5, 20, "5 epochs drawn")
    look = page.js(FINISHED_LOOK)
    assert look["text"] == "completed · 5 of 20 epochs (early stop)", look
    assert "striped" not in look["striped"] and "animated" not in look["striped"], look
    assert not look["stopShown"] and look["stopDisabled"] and not look["stopping"], look
    assert not page.js("return document.getElementById('run-waiting').offsetParent")
    page.assert_clean()


def test_a_stopped_run_loses_its_eta_and_stripes_live(
    page: DashboardPage, stack: BackendServer
) -> None:
    run_id = str(stack.create_sdk("synthetic", epochs=20)["id"])
    page.open(f"/run/{run_id}")
    # No epoch yet: the charts say what they wait for, not empty axes.
    waiting = page.wait_text("#run-waiting", bool, 10, "the charts' placeholder")
    assert waiting == "waiting for the first epoch from your training process", waiting
    assert page.text("#run-progress-text") == waiting

    _feed(stack, run_id, [("epoch", {"record": epoch_record(e, run_id)}) for e in range(1, 4)])
    page.wait_text("#run-progress-text", lambda t: t.startswith("epoch 3 / 20 · ETA"), 20,
                   "the live line")
    assert not page.js("return document.getElementById('run-waiting').offsetParent")
    stop_from_the_page(page, lambda t: t == "stopped · 3 of 20 epochs", 20)
    page.assert_clean()


def test_a_queued_run_says_it_waits_for_a_slot_then_that_it_starts(
    browser: WebDriver, tmp_path: Path, uci_csv_path: Path
) -> None:
    one_slot = BackendServer(tmp_path, uci_csv_path, max_runs=1,
                             dashboard_port=free_port(), trainer="stream").start()
    try:
        assert one_slot.dashboard_url is not None
        page = DashboardPage(browser, one_slot.dashboard_url)
        busy = one_slot.create("synthetic", epochs=500, patience=0, batch_size=16)["id"]
        queued = one_slot.create("synthetic", epochs=500, patience=0, batch_size=16)["id"]
        assert one_slot.run(queued)["status"] == "queued"

        page.open(f"/run/{queued}")
        text = "waiting for a free trainer slot (1 running, max set by --max-runs)"
        assert page.wait_text("#run-progress-text", bool, 10) == text
        assert page.text("#run-waiting") == text
        # The count follows the shell's /healthz reads, not only this run's own events: an
        # answer saying 7 shows, and the next real read (every 2 s) puts 1 back. The reads
        # pause meanwhile, or one could overtake the answer of 7 before it is drawn.
        set_props = "window.dash_clientside.set_props(arguments[0], arguments[1]);"
        page.js(set_props, "health-tick", {"disabled": True})
        page.js(set_props, "backend-health",
                {"data": {**one_slot.client.get("/healthz").json(), "runs_active": 7}})
        page.wait_text("#run-progress-text", lambda t: "(7 running" in t, 10, "the count of 7")
        page.js(set_props, "health-tick", {"disabled": False})
        page.wait_text("#run-progress-text", lambda t: t == text, 10, "the real count again")

        assert one_slot.client.post(f"/api/runs/{busy}/stop").status_code == 200
        # The trainer imports torch and loads its data before its first epoch: seconds.
        page.wait_text("#run-progress-text",
                       lambda t: t == "starting the trainer… (loading data)", 30,
                       "the starting trainer's line")
        stop_from_the_page(page, lambda t: t.startswith("stopped · "), 40)
        page.assert_clean()
    finally:
        one_slot.close()


LIVE_HOOK = """
window.__callbacks = [];
const origFetch = window.fetch;
window.fetch = function (input, init) {
  const url = typeof input === "string" ? input : (input && input.url) || "";
  if (url.indexOf("_dash-update-component") >= 0) {
    try {
      const body = JSON.parse(init.body);
      window.__callbacks.push({output: body.output, inputs: body.inputs});
    } catch (e) {}
  }
  return origFetch.apply(this, arguments);
};
"""


def test_live_events_reach_the_panels_as_pushed_without_a_read_per_record(
    page: DashboardPage, stack: BackendServer
) -> None:
    """Records are drawn in the browser with no Dash callback; alerts and graphs reach the
    panels' callback as the websocket pushed them; nothing is re-read without an evaluation."""
    run_id = str(stack.create_sdk("synthetic", epochs=40)["id"])
    edges = [[VARIABLES[i], VARIABLES[i + 1]] for i in range(12)]
    _feed(stack, run_id, [
        ("started", {"config": {}, "data": {"variables": VARIABLES, "reference_edges": edges,
                                            "reference_kind": "ground truth"}}),
        ("epoch", {"record": epoch_record(1, run_id)}),
    ])
    page.open(f"/run/{run_id}")
    page.wait(lambda: len((page.trace_xs("#graph-clip") or [[]])[0]) == 1, 20, "epoch 1 drawn")
    page.wait_still("#run-header", quiet=1.0)
    page.js(LIVE_HOOK)

    _feed(stack, run_id, [
        *(("epoch", {"record": epoch_record(e, run_id)}) for e in range(2, 9)),
        ("epoch", {"record": epoch_record(9, run_id, **BROKEN)}),
        ("graph", {"epoch": 8, "probabilities": [[0.25] * 13 for _ in range(13)]}),
    ], first_seq=10)
    page.wait(lambda: page.trace_xs("#graph-clip") == [list(range(1, 10))], 20, "9 epochs drawn")
    page.wait_text("#graph-adjacency", lambda t: "epoch 8" in t, 20, "the adjacency of epoch 8")
    pushed = stack.client.get(f"/api/runs/{run_id}/alerts").json()
    assert pushed, "the collapsed record raised no red flag"
    page.wait(lambda: len(page.find_all(".alert-card")) == len(pushed), 20, "the red flags")

    calls = page.js("return window.__callbacks")
    panels = [c for c in calls if "run-alerts.children" in c["output"]]
    assert panels, calls
    assert len(panels) <= 3, f"one panels update per burst of events, got {len(panels)}"
    last = next(i["value"] for i in panels[-1]["inputs"] if i["id"] == "live-panels")
    assert [a["id"] for a in last["alerts"]] == [a["id"] for a in pushed]
    assert last["graph"]["epoch"] == 8
    # No evaluation in these records, no status change: nothing was re-read from the API.
    assert not [c for c in calls if "run-fetched" in c["output"]], calls
    # The records themselves made no server callback: charts and progress line are drawn in
    # the browser (the shell's backend banner polls on its own).
    others = [c["output"] for c in calls
              if "run-alerts.children" not in c["output"] and "backend-banner" not in c["output"]]
    assert not others, others
    page.assert_clean()
