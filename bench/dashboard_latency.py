"""Dashboard latency in a real browser: ingest → chart, and time to interactive.

Starts `causalwatch up` (backend + dashboard, `python -m backend.cli up`) on free loopback
ports with a fresh runs dir, and drives headless Chromium through Selenium. Runs are
of kind sdk (`running` at once, no trainer process); the bench feeds them epoch records by
hand over `WS /ws/ingest/{run_id}` with each run's ingest token, exactly as a trainer
would.

1. ingest → figure: a run page is open; the bench sends `--epochs` records one at a time
   every `--interval` s (waiting for each ack, like a trainer) and notes `time.time()` just
   before each send. In the page a MutationObserver + requestAnimationFrame + 4 ms interval
   probe notes `Date.now()` when `#graph-clip`'s first trace first holds that epoch, and a
   listener on the page's live websocket notes when the `metric` event was handled. Same
   machine, same wall clock: p50/p95/max of (seen − sent), split into ingest ack, delivery
   to a websocket subscriber in the bench process (no chart drawing on its thread), to the
   page's websocket handler, and page handler → chart; plus the page's long tasks and
   main-thread time in `Plotly.extendTraces` meanwhile. Repeated on a run that already holds
   `--history` epochs, and, unless `--no-trainer`, for a real synthetic trainer run (seen −
   the record's own `time`, stamped by the trainer before its evaluation of that epoch).
2. time to interactive: `--runs` runs × `--compare-epochs` records (pipelined ingest, then a
   `finished` message: the runs are completed), then `/compare?runs=<all>&metric=f1` and
   `metric=loss_total`: from navigation start (`performance.timeOrigin`) to the first
   animation frame in which the compare figure holds every trace with every point (an
   in-page probe installed before the page's own scripts run). `--repeats` navigations each,
   median reported; one more first visit with an empty browser cache. Same for the run page
   of one of those runs (every live chart on screen complete; `live.js` draws none below
   it). With each load: the largest Dash callback (request → response headers, size) and
   main-thread time in Plotly calls. Responsiveness: long tasks (PerformanceObserver
   `longtask`) during load and during `--idle` s after it, the Dash callbacks the open page
   keeps making, backend and dashboard CPU meanwhile, and `Plotly.relayout` zooms on the
   compare figure. Chromium runs with `--disable-gpu`: WebGL (`scattergl`, which
   `--chart-costs` times against SVG on each run-page chart) is rendered by SwiftShader on
   the CPU.

    .venv/bin/python bench/dashboard_latency.py [--epochs 60] [--interval 0.2]
        [--runs 10] [--compare-epochs 500] [--repeats 3] [--history 2000] [--idle 10]
        [--no-trainer] [--trainer-epochs 60] [--quick] [--chart-costs] [--data PATH]
        [--table FILE] [--json FILE] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common
import psutil
from _common import (
    DEFAULT_DATA,
    Backend,
    cpu_seconds,
    create_sdk_run,
    ingest_headers,
    pct,
    run_status,
)
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from websockets.asyncio.client import connect as aconnect
from websockets.sync.client import connect

from dashboard.ids import LIVE_GRAPHS
from trainer.protocol import EpochRecord, make_message

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TARGET_P95_MS = 1000.0  # ingest → figure
TARGET_TTI_MS = 2000.0  # time to interactive
PAGE_TIMEOUT = 90.0  # seconds for a page to become complete before giving up


# --- the stack -----------------------------------------------------------------------------


class Stack(Backend):
    """`causalwatch up` with its dashboard child on free ports (`_common.Backend`).

    The trainer slot count stays at the CLI's default, as a user gets it; the runs this bench
    feeds by hand are of kind sdk (`sdk_runs` below), which take no slot.
    """

    def __init__(self, root: Path, data: Path | None) -> None:
        super().__init__(root, data, max_runs=None, dashboard=True)
        self.ingest_tokens: dict[str, str] = {}  # run id -> its ingest token (kind sdk)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the backend and of the dashboard process (if it is there)."""
        procs = {"backend": self.ps, "dashboard": self.dashboard_process()}
        return {name: cpu_seconds([proc]) for name, proc in procs.items() if proc is not None}

    # --- runs ------------------------------------------------------------------------------

    def sdk_runs(self, epochs: Sequence[int]) -> list[str]:
        """Runs of kind sdk, so no trainer ever runs for them; their tokens kept here.

        Unlike `_common.sdk_runs` each run gets its own epoch count (the page shows progress
        against it) and is evaluated every epoch.
        """
        made: list[str] = []
        for i, n in enumerate(epochs):
            run_id, token = create_sdk_run(self, f"bench-{i}", epochs=n, eval_every=1)
            self.ingest_tokens[run_id] = token
            made.append(run_id)
        return made

    def ingest_headers(self, run_id: str) -> dict[str, str]:
        """Handshake headers of `WS /ws/ingest/{run_id}` for a run made by `sdk_runs`."""
        return ingest_headers(self.ingest_tokens[run_id])

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        resp = self.client.get(f"/api/runs/{run_id}/metrics")
        resp.raise_for_status()
        return resp.json()  # type: ignore[no-any-return]


# --- records -------------------------------------------------------------------------------


class RecordMaker(_common.RecordMaker):
    """`_common.RecordMaker` records, evaluated every epoch, with a noisy rising F1.

    Every epoch, as the runs' config says (`eval_every: 1`), so every live chart (accuracy
    too) gets a point per record sent. Noisy, so the F1 traces vary like a real run's instead
    of lying flat from epoch 50 on: a flat line is cheaper to draw (Plotly drops points that
    do not bend an SVG line), which would flatter the figures.
    """

    def __init__(self, run_id: str, seed: int) -> None:
        super().__init__(run_id, seed, eval_every=1)

    def f1(self, epoch: int) -> float:
        return min(0.7, 0.2 + epoch / 200) + 0.05 * self.rng.random()


def expected_points(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Per record field, how many points a trace of that field shows for these records."""
    return {name: sum(1 for r in records if r.get(name) is not None)
            for name in EpochRecord.model_fields}


async def _pipeline_one(
    stack: Stack, run_id: str, epochs: range, seed: int, *, finish: bool
) -> float:
    maker = RecordMaker(run_id, seed)
    t0 = time.perf_counter()
    async with aconnect(f"{stack.ws_url}/ws/ingest/{run_id}", open_timeout=30, max_size=2**22,
                        additional_headers=stack.ingest_headers(run_id)) as ws:
        for seq, epoch in enumerate(epochs):
            await ws.send(maker.message(seq, epoch))
        for _ in epochs:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if reply.get("type") != "ack":
                raise SystemExit(f"ingest of {run_id} refused a record: {reply}")
        if finish:  # a run of kind sdk ends on its feeder's word: completed
            summary = {"status": "completed", "reason": "bench: every epoch sent"}
            await ws.send(json.dumps(make_message("finished", run_id, len(epochs),
                                                  summary=summary)))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if reply.get("type") != "ack":
                raise SystemExit(f"ingest of {run_id} refused `finished`: {reply}")
    return time.perf_counter() - t0


def ingest_pipelined(
    stack: Stack, run_ids: Sequence[str], epochs: range, *, finish: bool = False
) -> float:
    """Every run gets `epochs`, all runs at once, every message sent before reading acks;
    with `finish`, then a `finished` message (the runs are completed)."""

    async def go() -> list[float]:
        return await asyncio.gather(*[
            _pipeline_one(stack, rid, epochs, seed, finish=finish)
            for seed, rid in enumerate(run_ids)
        ])

    t0 = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - t0


# --- the browser ---------------------------------------------------------------------------

# Installed with Page.addScriptToEvaluateOnNewDocument: runs before the page's own scripts.
INIT_JS = r"""
(function () {
  const b = window.__bench = {longtasks: [], fetches: [], ready: null, expect: null,
                              longtaskSupported: false};
  try { performance.setResourceTimingBufferSize(100000); } catch (e) {}
  try {
    new PerformanceObserver(function (list) {
      list.getEntries().forEach(function (e) { b.longtasks.push([e.startTime, e.duration]); });
    }).observe({type: "longtask", buffered: true});
    b.longtaskSupported = true;
  } catch (e) {}
  const origFetch = window.fetch;
  window.fetch = function (input, init) {
    const url = typeof input === "string" ? input : (input && input.url) || "";
    if (url.indexOf("_dash-update-component") < 0) return origFetch.apply(this, arguments);
    const rec = {start: performance.now(), output: null, reqBytes: 0};
    try {
      rec.reqBytes = init.body.length;
      rec.output = JSON.parse(init.body).output;
    } catch (e) {}
    b.fetches.push(rec);
    const p = origFetch.apply(this, arguments);
    p.then(function (res) {
      rec.headers = performance.now();
      rec.status = res.status;
      res.clone().text().then(function (t) { rec.end = performance.now(); rec.bytes = t.length; });
    }, function () { rec.failed = true; });
    return p;
  };
  // Main-thread time of each Plotly call the page makes (dcc.Graph calls window.Plotly).
  b.plotly = [];
  let P;
  Object.defineProperty(window, "Plotly", {configurable: true, get: function () { return P; },
    set: function (v) {
      P = v;
      ["react", "newPlot", "extendTraces", "relayout", "restyle"].forEach(function (name) {
        const f = v[name];
        if (typeof f !== "function") return;
        v[name] = function (gd) {
          const t0 = performance.now();
          const r = f.apply(this, arguments);
          const host = gd && gd.closest ? gd.closest("[id]") : null;
          b.plotly.push([name, host ? host.id : "", t0, performance.now() - t0]);
          return r;
        };
      });
    }});
  let spec = null;
  try { spec = JSON.parse(localStorage.getItem("bench-expect") || "null"); } catch (e) {}
  if (!spec || location.pathname !== spec.path) return;
  b.expect = spec;
  b.offScreen = [];
  function complete(g) {
    // live.js draws no chart more than 200 px below the viewport (its IntersectionObserver
    // margin) until it scrolls into view: such a chart is not waited for.
    const outer = document.getElementById(g.id);
    if (outer && outer.getBoundingClientRect().top > window.innerHeight + 200) {
      if (b.offScreen.indexOf(g.id) < 0) b.offScreen.push(g.id);
      return true;
    }
    const gd = document.querySelector("#" + g.id + " .js-plotly-plot");
    if (!gd || !gd.data || !gd._fullLayout) return false;
    let n = 0;
    for (const t of gd.data) {
      const f = t.meta && t.meta.field;
      if (!f || !(f in g.fields)) continue;
      if (!t.x || t.x.length !== g.fields[f]) return false;
      n += 1;
    }
    return n >= g.minTraces;
  }
  function loop() {
    if (spec.graphs.every(complete)) { b.ready = performance.now(); return; }
    requestAnimationFrame(loop);
  }
  requestAnimationFrame(loop);
})();
"""

# The ingest → figure probe, installed with execute_script on an open run page.
PROBE_JS = r"""
const b = window.__bench;
b.seen = {}; b.recv = {}; b.seenCount = 0;
let lastLen = 0;
function check() {
  const gd = document.querySelector("#graph-clip .js-plotly-plot");
  if (!gd || !gd.data || !gd.data[0] || !gd.data[0].x) return;
  const x = gd.data[0].x;
  if (x.length < lastLen) lastLen = 0;
  const now = Date.now();
  for (let i = lastLen; i < x.length; i++) {
    if (!(x[i] in b.seen)) { b.seen[x[i]] = now; b.seenCount += 1; }
  }
  lastLen = x.length;
}
check();
new MutationObserver(check).observe(document.getElementById("graph-clip"),
                                    {subtree: true, childList: true, attributes: true});
(function frame() { check(); requestAnimationFrame(frame); })();
setInterval(check, 4);
let hooked = null;
function hook() {
  const ws = window.causalwatchLive && window.causalwatchLive.state.ws;
  if (ws && ws !== hooked) {
    hooked = ws;
    ws.addEventListener("message", function (ev) {
      const now = Date.now();
      const msg = JSON.parse(ev.data);
      if (msg.type === "metric" && !(msg.record.epoch in b.recv)) b.recv[msg.record.epoch] = now;
    });
  }
}
hook();
setInterval(hook, 50);
return true;
"""

RUN_PAGE_READY_JS = r"""
const live = window.causalwatchLive && window.causalwatchLive.state;
const ids = arguments[0];
const plots = ids.every(function (id) {
  const gd = document.querySelector("#graph-" + id + " .js-plotly-plot");
  return gd && gd.data;
});
return !!(plots && live && live.ws && live.ws.readyState === 1 && live.seq >= 1
          && live.runId === arguments[1]);
"""


def make_driver(profile: Path) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync",
                "--window-size=1600,1200", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    driver.set_script_timeout(PAGE_TIMEOUT)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": INIT_JS})
    return driver


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


# --- statistics ----------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    """n, p50, p95, max; NaN figures (shown as n/a) for no values."""
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95),
            "max": max(values, default=math.nan)}


def fmt_ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


# --- (1) ingest → figure -------------------------------------------------------------------


@dataclass
class LatencyResult:
    label: str
    sent: int
    seen: int
    total: dict[str, float]  # seen − sent
    to_browser: dict[str, float]  # ws received in page − sent
    to_subscriber: dict[str, float]  # ws received by the bench's own subscriber − sent
    in_browser: dict[str, float]  # seen − ws received
    ack: dict[str, float]  # ack − sent
    page: dict[str, float] = field(default_factory=dict)  # main thread while sending
    notes: list[str] = field(default_factory=list)


def browser_cpu(driver: webdriver.Chrome) -> float:
    """CPU seconds so far of every Chromium process under this chromedriver."""
    try:
        procs = psutil.Process(driver.service.process.pid).children(recursive=True)
    except (psutil.Error, AttributeError):
        return math.nan
    return cpu_seconds(procs)


WINDOW_JS = r"""
const t0 = arguments[0], b = window.__bench;
const lt = b.longtasks.filter(function (t) { return t[0] >= t0; });
const ext = b.plotly.filter(function (c) { return c[2] >= t0 && c[0] === "extendTraces"; });
return {now: performance.now(), ltN: lt.length,
        ltMs: lt.reduce(function (s, t) { return s + t[1]; }, 0), extN: ext.length,
        extMs: ext.reduce(function (s, c) { return s + c[3]; }, 0),
        extMax: ext.reduce(function (s, c) { return Math.max(s, c[3]); }, 0)};
"""


def page_activity(
    driver: webdriver.Chrome, since: float, cpu0: float, wall0: float, records: int
) -> dict[str, float]:
    """The page's main thread since `since` (performance.now()): long tasks, Plotly extends."""
    got = driver.execute_script(WINDOW_JS, since)
    wall = time.monotonic() - wall0
    charts = len(LIVE_GRAPHS)
    return {
        "window_s": wall,
        "longtask_count": got["ltN"], "longtask_ms": got["ltMs"],
        "busy_pct": 100 * got["ltMs"] / (got["now"] - since) if got["now"] > since else math.nan,
        "extend_calls": got["extN"], "extend_ms": got["extMs"], "extend_max_ms": got["extMax"],
        "extend_ms_per_record": got["extMs"] / records if records else math.nan,
        "flushes": got["extN"] / charts,
        "browser_cpu_pct": 100 * (browser_cpu(driver) - cpu0) / wall,
    }


class Subscriber(threading.Thread):
    """A browser-like client of `WS /ws/runs/{id}` in the bench: when each metric arrives.

    It shares no main thread with chart drawing, so it shows what the backend delivers.
    """

    def __init__(self, ws_url: str, run_id: str, last_epoch: int) -> None:
        super().__init__(daemon=True)
        self.url = f"{ws_url}/ws/runs/{run_id}"
        self.last_epoch = last_epoch
        self.received: dict[int, float] = {}
        self.ready = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            with connect(self.url, open_timeout=30, max_size=2**26) as ws:
                json.loads(ws.recv(timeout=30))  # the snapshot
                self.ready.set()
                deadline = time.monotonic() + 600
                while self.last_epoch not in self.received and time.monotonic() < deadline:
                    event = json.loads(ws.recv(timeout=60))
                    if event.get("type") == "metric":
                        self.received.setdefault(int(event["record"]["epoch"]), time.time())
        except Exception as err:  # reported, never fatal: the page is what is measured
            self.error = f"{type(err).__name__}: {err}"
            self.ready.set()


def open_run_page(driver: webdriver.Chrome, stack: Stack, run_id: str) -> None:
    driver.get(f"{stack.dash_url}/run/{run_id}")
    wait_for(lambda: driver.execute_script(RUN_PAGE_READY_JS, list(LIVE_GRAPHS), run_id),
             PAGE_TIMEOUT,
             f"the run page of {run_id} ({len(LIVE_GRAPHS)} charts, live websocket, snapshot)")


def probe_times(driver: webdriver.Chrome) -> tuple[dict[int, float], dict[int, float]]:
    """Per epoch: when the chart first showed it, when the page's websocket received it."""
    got = driver.execute_script("return [window.__bench.seen, window.__bench.recv]")
    return ({int(k): float(v) for k, v in got[0].items()},
            {int(k): float(v) for k, v in got[1].items()})


def live_latency(
    driver: webdriver.Chrome, stack: Stack, run_id: str, epochs: range, *, interval: float,
    label: str,
) -> LatencyResult:
    open_run_page(driver, stack, run_id)
    driver.execute_script(PROBE_JS)
    time.sleep(0.5)  # let the probe see the snapshot's points first
    maker = RecordMaker(run_id, 7)
    sub = Subscriber(stack.ws_url, run_id, epochs[-1])
    sub.start()
    sub.ready.wait(30)
    since = driver.execute_script("return performance.now()")
    cpu0, wall0 = browser_cpu(driver), time.monotonic()
    sent: dict[int, float] = {}
    acked: dict[int, float] = {}
    with connect(f"{stack.ws_url}/ws/ingest/{run_id}", open_timeout=30,
                 additional_headers=stack.ingest_headers(run_id)) as ws:
        start = time.monotonic()
        for i, epoch in enumerate(epochs):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            message = maker.message(i, epoch)
            sent[epoch] = time.time()
            ws.send(message)
            reply = json.loads(ws.recv(timeout=30))
            acked[epoch] = time.time()
            if reply.get("type") != "ack":
                raise SystemExit(f"ingest refused epoch {epoch}: {reply}")
    last = epochs[-1]
    try:
        wait_for(lambda: driver.execute_script(f"return {last} in window.__bench.seen"),
                 30, f"epoch {last} on the chart")
    except SystemExit as err:
        print(f"  warning: {err}")
    activity = page_activity(driver, since, cpu0, wall0, len(epochs))
    sub.join(10)
    seen, recv = probe_times(driver)
    total = [seen[e] - sent[e] * 1000 for e in epochs if e in seen]
    to_sub = [(sub.received[e] - sent[e]) * 1000 for e in epochs if e in sub.received]
    to_browser = [recv[e] - sent[e] * 1000 for e in epochs if e in recv]
    in_browser = [seen[e] - recv[e] for e in epochs if e in seen and e in recv]
    ack = [(acked[e] - sent[e]) * 1000 for e in epochs]
    result = LatencyResult(label, len(epochs), sum(1 for e in epochs if e in seen),
                           summary(total), summary(to_browser), summary(to_sub),
                           summary(in_browser), summary(ack), activity)
    if sub.error:
        result.notes.append(f"bench subscriber: {sub.error}")
    if result.seen < result.sent:
        result.notes.append(f"{result.sent - result.seen} epoch(s) never reached the chart")
    return result


def trainer_latency(
    driver: webdriver.Chrome, stack: Stack, epochs: int
) -> LatencyResult | None:
    """A real synthetic run: (seen in the chart) − (the record's `time`, set by the trainer)."""
    resp = stack.client.post("/api/runs", json={
        "preset": "synthetic", "name": "bench-trainer",
        "overrides": {"epochs": epochs, "patience": 0, "eval_every": 2},
    })
    if resp.status_code != 201:
        print(f"  trainer run not created: {resp.status_code} {resp.text[:300]}")
        return None
    run_id = resp.json()["id"]
    open_run_page(driver, stack, run_id)
    driver.execute_script(PROBE_JS)
    since = driver.execute_script("return performance.now()")
    cpu0, wall0 = browser_cpu(driver), time.monotonic()
    deadline = time.monotonic() + 600
    status = ""
    while time.monotonic() < deadline:
        status = run_status(stack, run_id)
        if status in ("completed", "stopped", "failed"):
            break
        time.sleep(0.5)
    time.sleep(1.0)
    records = stack.metrics(run_id)
    activity = page_activity(driver, since, cpu0, wall0, len(records))
    seen, recv = probe_times(driver)
    made = {r["epoch"]: r["time"] * 1000 for r in records}
    live = [e for e in made if e in recv]  # arrived as live events, not in the snapshot
    total = [seen[e] - made[e] for e in live if e in seen]
    result = LatencyResult(
        f"real trainer run ({status}, {len(records)} epochs; from each record's `time`)",
        len(live),
        sum(1 for e in live if e in seen), summary(total),
        summary([recv[e] - made[e] for e in live]), summary([]),
        summary([seen[e] - recv[e] for e in live if e in seen]), summary([]), activity,
    )
    if len(live) < len(records):
        result.notes.append(f"{len(records) - len(live)} epoch(s) came in the snapshot")
    return result


# --- (2) time to interactive ---------------------------------------------------------------


@dataclass
class PageLoad:
    url: str
    tti_ms: float
    nav: dict[str, float]
    longtask_ms_load: float
    longtask_count_load: int
    fetches: list[dict[str, Any]]
    longtasks: list[list[float]]
    plotly_ms: float  # main-thread time in Plotly calls until interactive
    data_callback: dict[str, Any]  # the largest Dash callback response until interactive
    off_screen: list[str] = field(default_factory=list)  # graphs not waited for (below view)


def load_page(
    driver: webdriver.Chrome, stack: Stack, path_and_query: str, graphs: list[dict[str, Any]]
) -> PageLoad:
    spec = {"path": path_and_query.split("?", maxsplit=1)[0], "graphs": graphs}
    driver.execute_script("localStorage.setItem('bench-expect', arguments[0])", json.dumps(spec))
    url = f"{stack.dash_url}{path_and_query}"
    driver.get(url)
    wait_for(lambda: driver.execute_script("return window.__bench && window.__bench.ready"),
             PAGE_TIMEOUT, f"{path_and_query} complete")
    data = driver.execute_script(r"""
      const b = window.__bench;
      const n = performance.getEntriesByType("navigation")[0];
      const lt = b.longtasks.filter(function (t) { return t[0] <= b.ready; });
      return {ready: b.ready,
              nav: n ? {responseEnd: n.responseEnd, domContentLoaded: n.domContentLoadedEventEnd,
                        load: n.loadEventEnd} : {},
              ltMs: lt.reduce(function (s, t) { return s + t[1]; }, 0), ltN: lt.length,
              fetches: b.fetches, longtasks: b.longtasks, offScreen: b.offScreen,
              plotlyMs: b.plotly.filter(function (c) { return c[2] <= b.ready; })
                               .reduce(function (s, c) { return s + c[3]; }, 0)};
    """)
    ready = float(data["ready"])
    done = [f for f in data["fetches"] if f.get("headers") and f["headers"] <= ready]
    big = max(done, key=lambda f: f.get("bytes") or 0, default={})
    data_callback = {
        "output": callback_name(str(big.get("output"))), "kb": (big.get("bytes") or 0) / 1024,
        "server_ms": (big.get("headers") or 0) - (big.get("start") or 0),
        "start_ms": big.get("start"), "end_ms": big.get("end"),
    }
    return PageLoad(url, ready, data["nav"], float(data["ltMs"]), int(data["ltN"]),
                    data["fetches"], data["longtasks"], float(data["plotlyMs"]), data_callback,
                    list(data["offScreen"]))


def callback_name(output: str) -> str:
    """A Dash callback's first output id, from its `..id.prop...id.prop..` string."""
    return output.strip(".").split(".")[0] or output


@dataclass
class IdleWindow:
    seconds: float
    callbacks: dict[str, dict[str, float]]  # output → count, mean bytes, mean ms
    longtask_ms: float
    longtask_count: int
    cpu: dict[str, float]  # process → % of one core


def idle_window(driver: webdriver.Chrome, stack: Stack, seconds: float) -> IdleWindow:
    """What the open page does by itself for `seconds`: callbacks, long tasks, server CPU."""
    t0 = driver.execute_script("return performance.now()")
    cpu0, w0 = stack.cpu(), time.monotonic()
    time.sleep(seconds)
    cpu1, w1 = stack.cpu(), time.monotonic()
    data = driver.execute_script(r"""
      const t0 = arguments[0], b = window.__bench;
      return {fetches: b.fetches.filter(function (f) { return f.start >= t0; }),
              lt: b.longtasks.filter(function (t) { return t[0] >= t0; })};
    """, t0)
    per: dict[str, list[dict[str, Any]]] = {}
    for f in data["fetches"]:
        per.setdefault(callback_name(str(f.get("output"))), []).append(f)
    callbacks = {
        out: {
            "count": len(fs),
            "bytes": statistics.mean(f.get("bytes") or 0 for f in fs),
            "ms": statistics.mean((f.get("end") or f.get("headers") or f["start"]) - f["start"]
                                  for f in fs),
        }
        for out, fs in per.items()
    }
    wall = w1 - w0
    cpu = {k: 100 * (cpu1[k] - cpu0[k]) / wall for k in cpu1 if k in cpu0}
    return IdleWindow(wall, callbacks, sum(t[1] for t in data["lt"]), len(data["lt"]), cpu)


def zoom_times(driver: webdriver.Chrome, graph_id: str, n: int, span: float) -> list[float]:
    """`Plotly.relayout` x-zooms on a figure: ms from the call to the next animation frame."""
    result = driver.execute_async_script(r"""
      const done = arguments[arguments.length - 1];
      const gd = document.querySelector("#" + arguments[0] + " .js-plotly-plot");
      const n = arguments[1], span = arguments[2];
      const times = [];
      (async function () {
        for (let i = 0; i < n; i++) {
          const lo = 1 + (i * span / 4) % span;
          const t0 = performance.now();
          await Plotly.relayout(gd, {"xaxis.range": [lo, lo + span / 5]});
          await new Promise(function (r) { requestAnimationFrame(function () { r(); }); });
          times.push(performance.now() - t0);
        }
        await Plotly.relayout(gd, {"xaxis.autorange": true});
        done(times);
      })().catch(function (e) { done({error: String(e)}); });
    """, graph_id, n, span)
    if isinstance(result, dict):
        raise SystemExit(f"relayout failed: {result['error']}")
    return [float(t) for t in result]


# --- what a chart's redraw costs, drawn three ways (--chart-costs) ---------------------------

# On an open run page: per chart on screen, the median time of a one-point Plotly.extendTraces
# as the page draws it, with every trace as `scattergl` (WebGL), and as plain SVG lines (no
# markers). Each chart is put back as it was drawn after.
CHART_COSTS_JS = r"""
const done = arguments[arguments.length - 1];
(async function () {
  const out = {};
  async function time(gd, n) {
    const ts = [];
    for (let i = 0; i < n; i++) {
      const idx = [], xs = [], ys = [];
      gd.data.forEach(function (t, k) {
        if (t.meta && t.meta.field && t.x && t.x.length) {
          idx.push(k); xs.push([t.x[t.x.length - 1] + 1]); ys.push([t.y[t.y.length - 1]]);
        }
      });
      if (!idx.length) return null;
      const t0 = performance.now();
      Plotly.extendTraces(gd, {x: xs, y: ys}, idx);
      ts.push(performance.now() - t0);
      await new Promise(function (r) { setTimeout(r, 20); });
    }
    ts.sort(function (a, b) { return a - b; });
    return ts[Math.floor(n / 2)];
  }
  for (const outer of document.querySelectorAll(".live-chart")) {
    const gd = outer.querySelector(".js-plotly-plot");
    if (!gd || !gd.data || !gd.data.length || !gd.data[0].x || !gd.data[0].x.length) continue;
    const all = gd.data.map(function (t, k) { return k; });
    const modes = gd.data.map(function (t) { return t.mode; });
    const r = {points: gd.data[0].x.length, svg: await time(gd, 7)};
    await Plotly.restyle(gd, {type: "scattergl"}, all);
    r.webgl = await time(gd, 7);
    await Plotly.restyle(gd, {type: "scatter", mode: "lines"}, all);
    r.lines = await time(gd, 7);
    await Plotly.restyle(gd, {mode: modes}, all);
    out[outer.id] = r;
  }
  done(out);
})().catch(function (e) { done({error: String(e)}); });
"""


def chart_costs(driver: webdriver.Chrome) -> dict[str, dict[str, float]]:
    """Per chart of the open run page: its points and the ms of a one-point redraw."""
    result = driver.execute_async_script(CHART_COSTS_JS)
    if "error" in result:
        raise SystemExit(f"chart costs failed: {result['error']}")
    return result  # type: ignore[no-any-return]


# --- report --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=60, help="live records sent (≥ 50)")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between live records")
    p.add_argument("--runs", type=int, default=10, help="runs on the compare page")
    p.add_argument("--compare-epochs", type=int, default=500, help="records per compared run")
    p.add_argument("--repeats", type=int, default=3, help="navigations per page measured")
    p.add_argument("--history", type=int, default=2000,
                   help="epochs already in the run for the long-run latency (0: skip)")
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle observation")
    p.add_argument("--no-trainer", action="store_true", help="skip the real trainer run")
    p.add_argument("--trainer-epochs", type=int, default=60)
    p.add_argument("--chart-costs", action="store_true",
                   help="also time each run-page chart's redraw as SVG, WebGL and plain lines")
    p.add_argument("--quick", action="store_true",
                   help="50 live epochs, 1 repeat, 500-epoch history, 5 s idle, no trainer")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--table", type=Path, default=Path("/tmp/dashboard_latency_table.md"))
    p.add_argument("--json", type=Path, help="also write every figure as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the temporary runs dir")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats = 50, 1
        args.history, args.idle, args.no_trainer = min(args.history, 500), 5.0, True
    if args.epochs < 50:
        p.error("--epochs must be at least 50")
    if args.runs < 1 or args.compare_epochs < 2 or args.repeats < 1:
        p.error("--runs ≥ 1, --compare-epochs ≥ 2, --repeats ≥ 1")
    data = args.data if args.data.exists() else None
    command = " ".join(shlex.quote(a) for a in
                       [".venv/bin/python", "bench/dashboard_latency.py", *sys.argv[1:]])

    wall0 = time.perf_counter()
    args.load_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="cw-dash-bench-"))
    stack = Stack(tmp, data)
    driver: webdriver.Chrome | None = None
    out: dict[str, Any] = {"command": command}
    try:
        print(f"starting: {' '.join(stack.argv)}")
        stack.start()
        print(f"backend {stack.url}, dashboard {stack.dash_url}, runs in {stack.runs_dir}")
        driver = make_driver(tmp / "chrome-profile")
        driver.get(f"{stack.dash_url}/")  # an origin for localStorage; warms nothing else
        print(f"chromium {driver.capabilities.get('browserVersion')}")

        n, m = args.runs, args.compare_epochs
        wanted = [args.epochs, args.history + args.epochs, *[m] * n]
        print(f"creating {len(wanted)} runs of kind sdk")
        run_id, long_id, *run_ids = stack.sdk_runs(wanted)

        # (1) ingest → figure
        latencies: list[LatencyResult] = []
        print(f"(1) ingest → figure: {args.epochs} records every {args.interval} s → {run_id}")
        latencies.append(live_latency(driver, stack, run_id, range(1, args.epochs + 1),
                                      interval=args.interval, label="new run"))
        if args.history:
            took = ingest_pipelined(stack, [long_id], range(1, args.history + 1))
            print(f"    long run {long_id}: {args.history} epochs ingested in {took:.1f} s")
            latencies.append(live_latency(
                driver, stack, long_id,
                range(args.history + 1, args.history + args.epochs + 1),
                interval=args.interval, label=f"run already holding {args.history} epochs"))
        if not args.no_trainer:
            print(f"    real trainer run, {args.trainer_epochs} epochs")
            trained = trainer_latency(driver, stack, args.trainer_epochs)
            if trained is not None:
                latencies.append(trained)
        for lat in latencies:
            print(f"    {lat.label}: seen {lat.seen}/{lat.sent}; seen−sent p50 "
                  f"{fmt_ms(lat.total['p50'])} p95 {fmt_ms(lat.total['p95'])} max "
                  f"{fmt_ms(lat.total['max'])}; backend→page p95 {fmt_ms(lat.to_browser['p95'])}"
                  f"; page→chart p95 {fmt_ms(lat.in_browser['p95'])} {'; '.join(lat.notes)}")
        out["latency"] = [lat.__dict__ for lat in latencies]

        # (2) time to interactive
        print(f"(2) time to interactive: {n} runs × {m} epochs")
        took = ingest_pipelined(stack, run_ids, range(1, m + 1), finish=True)
        print(f"    ingested {n * m} records in {took:.1f} s ({n * m / took:.0f}/s)")
        stored = [len(stack.metrics(r)) for r in run_ids]
        if stored != [m] * n:
            raise SystemExit(f"stored records per run: {stored}, expected {m} each")
        records = stack.metrics(run_ids[0])
        counts = expected_points(records)
        pages: dict[str, list[PageLoad]] = {}
        idles: dict[str, IdleWindow] = {}
        compare_paths = {metric: f"/compare?runs={','.join(run_ids)}&metric={metric}"
                         for metric in ("f1", "loss_total")}
        for metric, path in compare_paths.items():
            graphs = [{"id": "compare-graph", "fields": {metric: counts[metric]},
                       "minTraces": n}]
            key = f"compare {metric}"
            pages[key] = [load_page(driver, stack, path, graphs) for _ in range(args.repeats)]
            print(f"    {key}: TTI " + ", ".join(fmt_ms(pl.tti_ms) for pl in pages[key]))
        # A first visit: fresh browser profile, nothing cached (Plotly's bundle included).
        cold = make_driver(tmp / "chrome-cold")
        try:
            cold.get(f"{stack.dash_url}/_dash-layout")  # the origin, without loading the app
            key = "compare f1, first visit (empty cache)"
            pages[key] = [load_page(cold, stack, compare_paths["f1"], [
                {"id": "compare-graph", "fields": {"f1": counts["f1"]}, "minTraces": n}])]
            print(f"    {key}: TTI {fmt_ms(pages[key][0].tti_ms)}")
        finally:
            cold.quit()
        # Stay on the f1 comparison: what does the open page keep doing by itself?
        load_page(driver, stack, compare_paths["f1"], [
            {"id": "compare-graph", "fields": {"f1": counts["f1"]}, "minTraces": n}])
        idles["compare f1"] = idle_window(driver, stack, args.idle)
        zooms = zoom_times(driver, "compare-graph", 10, float(m))
        print(f"    relayout zoom on the compare figure: median {fmt_ms(statistics.median(zooms))}"
              f", max {fmt_ms(max(zooms))}")

        run_graphs = [{"id": f"graph-{g}", "fields": counts, "minTraces": 1}
                      for g in LIVE_GRAPHS]
        key = f"run page ({m} epochs)"
        pages[key] = [load_page(driver, stack, f"/run/{run_ids[0]}", run_graphs)
                      for _ in range(args.repeats)]
        print(f"    {key}: TTI " + ", ".join(fmt_ms(pl.tti_ms) for pl in pages[key])
              + f"; not waited for (below the view): {pages[key][-1].off_screen or 'none'}")
        idles["run page"] = idle_window(driver, stack, args.idle)
        costs = chart_costs(driver) if args.chart_costs else {}
        out["chart_costs"] = costs
        driver.get("about:blank")
        idles["no page open"] = idle_window_blank(stack, args.idle)
        out["pages"] = {k: [pl.__dict__ for pl in v] for k, v in pages.items()}
        out["idle"] = {k: v.__dict__ for k, v in idles.items()}
        out["zoom_ms"] = zooms

        wall = time.perf_counter() - wall0
        table = render(args, command, latencies=latencies, pages=pages, idles=idles,
                       zooms=zooms, wall=wall, n=n, m=m, costs=costs)
        print()
        print(table)
        args.table.write_text(table)
        print(f"table written to {args.table}")
        if args.json:
            args.json.write_text(json.dumps(out, indent=1, default=str))
    finally:
        if driver is not None:
            driver.quit()
        stack.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return 0


def idle_window_blank(stack: Stack, seconds: float) -> IdleWindow:
    cpu0, w0 = stack.cpu(), time.monotonic()
    time.sleep(seconds)
    cpu1, w1 = stack.cpu(), time.monotonic()
    return IdleWindow(w1 - w0, {}, 0.0, 0,
                      {k: 100 * (cpu1[k] - cpu0[k]) / (w1 - w0) for k in cpu1 if k in cpu0})


def _ok(value: float, target: float) -> str:
    return "✅" if value < target else "❌"


def render(
    args: argparse.Namespace, command: str, *, latencies: list[LatencyResult],
    pages: dict[str, list[PageLoad]], idles: dict[str, IdleWindow], zooms: list[float],
    wall: float, n: int, m: int, costs: dict[str, dict[str, Any]] | None = None,
) -> str:
    rows: list[tuple[str, str, str]] = []
    for lat in latencies:
        t = lat.total
        rows.append((
            f"ingest → figure, {lat.label}: p50 / p95 / max (n={lat.seen}/{lat.sent})",
            f"{fmt_ms(t['p50'])} / **{fmt_ms(t['p95'])}** / {fmt_ms(t['max'])}",
            f"p95 < 1 s {_ok(t['p95'], TARGET_P95_MS)}" if lat.seen else "p95 < 1 s ❌",
        ))
        sub = lat.to_subscriber["n"] > 0
        rows.append((
            "  ↳ p95 of: " + ("ingest ack · sent → bench WS subscriber · " if sub else "")
            + "sent → page WS message · page WS message → chart",
            (f"{fmt_ms(lat.ack['p95'])} · {fmt_ms(lat.to_subscriber['p95'])} · " if sub else "")
            + f"{fmt_ms(lat.to_browser['p95'])} · {fmt_ms(lat.in_browser['p95'])}",
            "",
        ))
        pg = lat.page
        if pg:
            rows.append((
                "  ↳ page main thread meanwhile: long tasks (% of time) · chart redraws "
                "(Plotly.extendTraces ms per record, max one call, flushes) · browser CPU",
                f"{pg['longtask_count']:.0f} = {fmt_ms(pg['longtask_ms'])} "
                f"({pg['busy_pct']:.0f}%) · {fmt_ms(pg['extend_ms_per_record'])}, "
                f"{fmt_ms(pg['extend_max_ms'])}, {pg['flushes']:.0f} · "
                f"{pg['browser_cpu_pct']:.0f}%",
                "",
            ))
    for key, loads in pages.items():
        ttis = [pl.tti_ms for pl in loads]
        med = statistics.median(ttis)
        loads_txt = (f"{len(loads)} loads: " + ", ".join(fmt_ms(t) for t in ttis)
                     if len(loads) > 1 else "1 load")
        skipped = sorted({g for pl in loads for g in pl.off_screen})
        if skipped:  # below the view: live.js draws them only once scrolled to
            loads_txt += "; not waited for, below the view: " + ", ".join(skipped)
        rows.append((
            f"time to interactive, {key} ({loads_txt})",
            f"median **{fmt_ms(med)}** (min {fmt_ms(min(ttis))})" if len(loads) > 1
            else f"**{fmt_ms(med)}**",
            f"< 2 s {_ok(med, TARGET_TTI_MS)}",
        ))
        mid = sorted(loads, key=lambda pl: pl.tti_ms)[len(loads) // 2]
        cb = mid.data_callback
        rows.append((
            f"  ↳ {key} (median load): DOMContentLoaded · `{cb['output']}` callback "
            "(request → response headers, size, done at) · Plotly calls · long tasks",
            f"{fmt_ms(mid.nav.get('domContentLoaded', math.nan))} · {fmt_ms(cb['server_ms'])}, "
            f"{cb['kb']:.0f} KB, done at {fmt_ms(cb['end_ms'] or math.nan)} · "
            f"{fmt_ms(mid.plotly_ms)} · {mid.longtask_count_load} = "
            f"{fmt_ms(mid.longtask_ms_load)}",
            "",
        ))
    if zooms:
        rows.append(("Plotly.relayout zoom on the compare figure (10×): median / max",
                     f"{fmt_ms(statistics.median(zooms))} / {fmt_ms(max(zooms))}", "< 100 ms "
                     + _ok(statistics.median(zooms), 100.0)))
    for graph, c in (costs or {}).items():
        rows.append((f"one-point redraw of `{graph}` ({c['points']} points): SVG as drawn · "
                     "WebGL (scattergl) · SVG lines without markers",
                     " · ".join(fmt_ms(c[k] if c[k] is not None else math.nan)
                                for k in ("svg", "webgl", "lines")), ""))
    for key, idle in idles.items():
        cbs = "; ".join(
            f"{out}: {c['count']}× {c['bytes'] / 1024:.1f} KB {c['ms']:.0f} ms"
            for out, c in sorted(idle.callbacks.items(), key=lambda kv: -kv[1]["count"])
        ) or "none"
        cpu = ", ".join(f"{k} {v:.0f}%" for k, v in idle.cpu.items())
        rows.append((f"idle {idle.seconds:.0f} s, {key}: CPU (one core = 100%)", cpu, ""))
        if key != "no page open":
            rows.append((f"  ↳ {key}: Dash callbacks (count × response, mean time) · long tasks",
                         f"{cbs} · {idle.longtask_count} long tasks, {fmt_ms(idle.longtask_ms)}",
                         ""))
    lines = [
        f"## Dashboard latency ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
        f"headless Chromium)",
        "",
        f"Machine load average (1 min) at start / end: {args.load_start:.1f} / "
        f"{os.getloadavg()[0]:.1f} — other processes on this machine compete for the CPUs.",
        "",
        f"Live: {args.epochs} records, one every {args.interval} s. Compare: {n} runs × {m} "
        f"epochs. Wall time {wall:.0f} s.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "Reproduce (from the project root):",
        "",
        f"    {command}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
