"""A run of kind sdk (the user's own training loop) on the run page, in a real browser: its
own metrics (`custom`) get a chart, a red flag's fix is a snippet to copy (no restart reaches
the user's loop), and a chart whose fields the loop does not log says so instead of drawing
empty axes."""

from __future__ import annotations

from typing import Any

from utils.backend_server import BackendServer
from utils.dashboard_browser import DashboardPage
from utils.sdk_feed import feed as _feed

CUSTOM_KEYS = [f"probe/{i}" for i in range(10)]  # more than one chart shows apart: a picker
SHOWN_AT_ONCE = 8


def _partial(run_id: str, epoch: int, **fields: Any) -> dict[str, Any]:
    """A record as a user's loop logs it: a few fields, and its own numbers."""
    return {"run_id": run_id, "epoch": epoch, "loss_total": 2.0 / epoch,
            "loss_recon": 1.5 / epoch, "clip_pct": 100.0, "grad_norm_mean": 40.0,
            "grad_norm_max": 90.0,
            "custom": {key: i + epoch / 10 for i, key in enumerate(CUSTOM_KEYS)}, **fields}


def _waiting(page: DashboardPage, graph: str) -> str:
    """The waiting line over a chart, '' while it is hidden."""
    return str(page.js(
        "const box = document.getElementById(arguments[0]).closest('.chart-box');"
        "const line = box.querySelector('.chart-waiting');"
        "return line.offsetParent === null ? '' : line.innerText;", graph))


def test_an_sdk_run_charts_its_own_metrics_and_offers_fixes_to_copy(
    page: DashboardPage, stack: BackendServer
) -> None:
    run_id = str(stack.create_sdk("standard", epochs=30)["id"])
    _feed(stack, run_id, [("epoch", {"record": _partial(run_id, e)}) for e in range(1, 4)])
    page.open(f"/run/{run_id}")

    # The custom chart: one line per key, the first eight drawn, a picker for the rest.
    def custom() -> dict[str, Any] | None:
        return page.js(  # type: ignore[no-any-return]
            "const gd = document.querySelector('#graph-custom .js-plotly-plot');"
            "if (!gd || !gd.data || !gd.data.length) return null;"
            "return {names: gd.data.map(t => t.name), shown: gd.data.map(t => t.visible),"
            "        xs: gd.data.map(t => Array.from(t.x)),"
            "        ys: gd.data.map(t => Array.from(t.y))};")
    # Below the window, like every chart there it is drawn once scrolled to.
    page.wait(lambda: page.js("return document.getElementById('custom-box').offsetParent"),
              20, "the custom chart's box shown")
    def scrolled_custom() -> dict[str, Any] | None:
        # Scrolled to on every try: on a loaded machine the box can still be laying out
        # when the first scroll lands, and the chart is drawn once it is in view.
        page.js("document.getElementById('graph-custom').scrollIntoView({block: 'center'})")
        return custom()

    got = page.wait(lambda: (c := scrolled_custom()) and len(c["xs"][0]) == 3 and c, 40,
                    "the custom chart with 3 epochs")
    assert got["names"] == CUSTOM_KEYS
    assert got["shown"] == [True] * SHOWN_AT_ONCE + ["legendonly"] * 2
    assert got["ys"][1] == [1.1, 1.2, 1.3]  # probe/1 as logged
    assert page.js("return document.getElementById('custom-picker').offsetParent !== null")
    # Picking keys shows those; the others stay in the legend, still kept up to date.
    page.js("window.dash_clientside.set_props('custom-picker', {value: ['probe/9']})")
    page.wait(lambda: (c := custom()) and c["shown"] == ["legendonly"] * 9 + [True], 10,
              "only the picked key drawn")

    # Fields the loop does not log: a line saying so, not empty axes; logged ones: none.
    assert "not logged by your training loop" in _waiting(page, "graph-edges")
    assert "edges_at_05" in _waiting(page, "graph-edges")
    assert _waiting(page, "graph-clip") == ""
    assert "ETA" not in page.text("#run-progress-text")  # the loop did not say

    # clip% at 100 past epoch 10: a red flag whose fix the user's loop has to take itself.
    _feed(stack, run_id, [("epoch", {"record": _partial(run_id, e)}) for e in range(4, 16)],
          first_seq=10)
    alerts = stack.client.get(f"/api/runs/{run_id}/alerts").json()
    fixed = [a for a in alerts if a.get("fix") or a["suggested_changes"]]
    assert fixed, alerts
    alert = fixed[0]
    fix = alert.get("fix") or alert["suggested_changes"]
    snippet = page.wait_text(f"#fix-snippet-{alert['id']}", bool, 20, "the fix as a snippet")
    assert snippet.splitlines() == [f"{k} = {v!r}" for k, v in fix.items()], snippet
    assert page.find_all(f"#alert-{alert['rule']} .fix-copy"), "a copy button beside it"
    restart = page.js("return Array.from(document.querySelectorAll('[id*=restart-with-fix]'))"
                      ".filter(e => e.offsetParent !== null).length")
    assert restart == 0, "no restart button: no restart reaches the user's loop"
    page.assert_clean()


def test_a_loop_on_its_own_config_offers_no_edit_and_restart(
    page: DashboardPage, stack: BackendServer
) -> None:
    resp = stack.client.post("/api/runs", json={"kind": "sdk", "config": {"lr": 0.01}})
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    page.open(f"/run/{run_id}")
    page.wait(lambda: page.js("return document.getElementById('run-edit-restart') !== null"),
              20, "the run page")
    shown = page.js("return document.getElementById('run-edit-restart').offsetParent !== null")
    assert shown is False, "no Edit and restart: the config is the user's own"
    stack.client.post(f"/api/runs/{run_id}/stop")
    page.assert_clean()
