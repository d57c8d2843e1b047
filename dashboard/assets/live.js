/*
 * causalwatch live channel: the browser subscribes to the backend's WS /ws/runs/{id} and
 * uses what it pushes, with no round trip to the backend for it:
 *   - metric records are drawn here, straight into the charts (Plotly.extendTraces), one chart
 *     per task so that no single task holds the page for all of them;
 *   - the run (snapshot, status), its alerts (alert, verification) and its latest graph are
 *     handed to Dash as one `live-panels` store, from which the server callback renders the
 *     header, red flags, adjacency and progress state without reading the API;
 *   - only what the backend computes from every record and does not push (the scorecard, the
 *     best checkpoint's scores) is re-read: `live-eval` asks for it after an evaluation epoch
 *     or a status change, at most once per EVAL_SPACING_MS.
 *
 * Every record since the last snapshot stays in `records` (sorted by epoch). A chart is
 * extended from the epoch after the last one it shows, so a chart that was not rendered yet,
 * re-rendered or off screen catches up on the next flush.
 *
 * With a token, the socket carries a short-lived read-only ticket fetched from the
 * dashboard right before each (re)connect; the admin token never reaches this page.
 */
(function () {
  "use strict";
  const EVAL_SPACING_MS = 2000;
  const CUSTOM_SHOWN = 8; // custom keys drawn at once; past that a picker chooses
  const PANELS_DELAY_MS = 30; // a burst (three alerts of one epoch) becomes one update
  const live = {
    ws: null,
    runId: null,
    base: null,
    ticketUrl: null,
    attempt: 0, // bumped by each connect(): a ticket that arrives late for an old one is dropped
    connecting: false,
    backoff: 500,
    records: [],
    bestEpoch: null,
    epochsTotal: null,
    run: null, // the run as last pushed (snapshot, status)
    alerts: new Map(), // alert id -> alert, as last pushed (alert, verification)
    graph: null, // the latest {epoch, probabilities}
    customKeys: [], // the training loop's own metric names, in order of first appearance
    customShown: null, // the keys the custom chart shows (null: the first CUSTOM_SHOWN)
    customNew: false, // a key arrived that the chart and picker do not have yet
    snapshots: 0,
    flushTimer: null,
    drawing: false, // a flush is still drawing its charts, one task each
    again: false, // records arrived meanwhile: flush once more when done
    seq: 0,
    flushCost: 0, // ms of main-thread time the last flush took; spaces the next one
    panelsTimer: null,
    evalTimer: null,
    evalDue: false,
    evalAt: 0,
  };

  function setProps(id, data) {
    setComponent(id, { data: data });
  }

  function setComponent(id, props) {
    const dc = window.dash_clientside;
    if (dc && typeof dc.set_props === "function") {
      dc.set_props(id, props);
    }
  }

  // --- panels: the pushed run, alerts and graph, handed to Dash as they are ----------------

  function panelsChanged() {
    if (live.panelsTimer) return;
    live.panelsTimer = setTimeout(function () {
      live.panelsTimer = null;
      const alerts = Array.from(live.alerts.values()).sort(function (a, b) { return a.id - b.id; });
      setProps("live-panels", { run_id: live.runId, run: live.run, alerts: alerts,
                                graph: live.graph });
    }, PANELS_DELAY_MS);
  }

  /* Ask the server for what only the backend computes (scorecard, best checkpoint): after an
   * evaluation or a status change, never more often than EVAL_SPACING_MS, and always once
   * after the last one (trailing), so the final state is read. */
  function evalChanged() {
    live.evalDue = true;
    if (live.evalTimer) return;
    const wait = Math.max(0, live.evalAt + EVAL_SPACING_MS - Date.now());
    live.evalTimer = setTimeout(function () {
      live.evalTimer = null;
      if (!live.evalDue) return;
      live.evalDue = false;
      live.evalAt = Date.now();
      setProps("live-eval", { run_id: live.runId, at: live.evalAt });
    }, wait);
  }

  function isEvaluation(record) {
    return record.is_best || hasValue(record, "val_recon") || hasValue(record, "f1");
  }

  // --- records -------------------------------------------------------------------------

  /* Index of the first record with an epoch above `epoch` (records are sorted). */
  function after(epoch) {
    let lo = 0;
    let hi = live.records.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (live.records[mid].epoch > epoch) hi = mid; else lo = mid + 1;
    }
    return lo;
  }

  function add(record) {
    const at = after(record.epoch);
    if (at > 0 && live.records[at - 1].epoch === record.epoch) return false; // already here
    if (at === live.records.length) live.records.push(record);
    else live.records.splice(at, 0, record); // a resent epoch after a reconnect
    if (record.is_best) live.bestEpoch = Math.max(live.bestEpoch || 0, record.epoch);
    if (record.custom) {
      Object.keys(record.custom).forEach(function (key) {
        if (live.customKeys.indexOf(key) < 0) {
          live.customKeys.push(key);
          live.customNew = true;
        }
      });
    }
    return true;
  }

  // --- the socket ----------------------------------------------------------------------

  /* A fresh read-only ticket for each (re)connect: assets/ticket.js. */
  function fetchTicket() {
    return window.causalwatchTicket(live.ticketUrl);
  }

  function retry(attempt) {
    setTimeout(function () {
      if (live.attempt === attempt) connect();
    }, live.backoff);
    live.backoff = Math.min(live.backoff * 2, 5000);
  }

  function connect() {
    if (!live.runId || !live.base) return;
    const runId = live.runId;
    const attempt = ++live.attempt;
    live.connecting = true;
    fetchTicket().then(function (ticket) {
      if (live.attempt !== attempt) return; // watch() moved on meanwhile
      live.connecting = false;
      openSocket(runId, ticket, attempt);
    }, function () {
      if (live.attempt !== attempt) return;
      live.connecting = false;
      setProps("live-status", { connected: false, at: Date.now() });
      retry(attempt);
    });
  }

  function onSnapshot(msg) {
    live.records = [];
    live.bestEpoch = null;
    live.customKeys = [];
    (msg.metrics || []).forEach(add);
    live.run = msg.run || null;
    live.epochsTotal = msg.run ? msg.run.epochs_total : null;
    live.alerts = new Map();
    (msg.alerts || []).forEach(function (a) { live.alerts.set(a.id, a); });
    live.graph = msg.graph || null;
    live.snapshots += 1;
    panelsChanged();
    // The page was rendered with the scorecard of its load; a reconnect may have missed some.
    if (live.snapshots > 1) evalChanged();
    scheduleFlush(0);
  }

  function onMessage(msg) {
    if (msg.type === "snapshot") {
      onSnapshot(msg);
    } else if (msg.type === "metric") {
      if (add(msg.record)) {
        if (isEvaluation(msg.record)) evalChanged();
        scheduleFlush();
      }
    } else if (msg.type === "status") {
      live.run = msg.run;
      live.epochsTotal = msg.run.epochs_total;
      panelsChanged();
      evalChanged(); // a finished run's pending criteria are missed now
    } else if (msg.type === "alert" || msg.type === "verification") {
      live.alerts.set(msg.alert.id, msg.alert);
      panelsChanged();
    } else if (msg.type === "graph") {
      if (!live.graph || msg.epoch >= live.graph.epoch) {
        live.graph = { epoch: msg.epoch, probabilities: msg.probabilities };
        panelsChanged();
      }
    }
  }

  function openSocket(runId, ticket, attempt) {
    const auth = ticket ? "?token=" + encodeURIComponent(ticket) : "";
    const ws = new WebSocket(live.base + "/ws/runs/" + encodeURIComponent(runId) + auth);
    live.ws = ws;
    ws.onopen = function () {
      setProps("live-status", { connected: true, at: Date.now() });
    };
    ws.onmessage = function (event) {
      if (live.ws !== ws) return;
      const msg = JSON.parse(event.data);
      // The backoff restarts once the backend answers, not on open: a socket it opens and
      // then refuses (busy, a stale ticket) must not retry every 500 ms.
      if (msg.type === "snapshot") live.backoff = 500;
      onMessage(msg);
    };
    ws.onclose = function () {
      if (live.ws !== ws) return; // replaced on purpose
      setProps("live-status", { connected: false, at: Date.now() });
      retry(attempt);
    };
  }

  function watch(runId, base, ticketUrl) {
    live.ticketUrl = ticketUrl || null;
    if (runId === live.runId && (live.connecting || (live.ws && live.ws.readyState <= 1))) return;
    const old = live.ws;
    live.ws = null;
    live.attempt += 1; // a pending ticket or retry of the old run is dropped
    if (old) old.close();
    live.runId = runId;
    live.base = base;
    live.records = [];
    live.bestEpoch = null;
    live.run = null;
    live.alerts = new Map();
    live.graph = null;
    live.customKeys = [];
    live.customShown = null;
    live.snapshots = 0;
    live.backoff = 500;
    connect();
  }

  // --- drawing ---------------------------------------------------------------------------

  function scheduleFlush(delay) {
    if (live.flushTimer) return;
    if (live.drawing) {
      live.again = true; // drawn when the current flush has finished its charts
      return;
    }
    // Adaptive: when drawing is slow (long runs, slow machines) batch more records per
    // redraw instead of queueing redraws behind each other. As long a pause as the last
    // flush's drawing took: since each chart is its own task, the page stays responsive
    // while drawing, and twice the pause (when one task drew every chart) cost ~30% of the
    // latency (docs/benchmarks.md).
    const wait = delay === undefined ? Math.max(25, Math.min(1000, live.flushCost)) : delay;
    live.flushTimer = setTimeout(flush, wait);
  }

  /* The progress line (a cheap clientside callback), then each chart in its own task: one
   * chart's redraw is 10–80 ms, all of them in one task held the page for a third of the time
   * during a live run, with clicks and scrolling waiting behind them. */
  function flush() {
    live.flushTimer = null;
    live.seq += 1;
    const last = live.records.length ? live.records[live.records.length - 1] : null;
    let busy = 0;
    let started = performance.now();
    setProps("live-metrics", {
      seq: live.seq,
      run_id: live.runId,
      epochs_total: live.epochsTotal,
      count: live.records.length,
      last: last,
      best_epoch: live.bestEpoch,
    });
    if (live.customNew) showCustom();
    busy += performance.now() - started;
    const charts = Array.prototype.slice.call(document.querySelectorAll(".live-chart"));
    // The run page's charts are not in the DOM yet (Dash renders them once Plotly's bundle
    // has loaded): try again shortly. On another page there is nothing to draw.
    let pending = !charts.length && location.pathname.lastIndexOf("/run/", 0) === 0;
    live.drawing = true;
    function next() {
      while (charts.length) {
        const outer = charts.shift();
        const gd = outer.querySelector(".js-plotly-plot");
        if (!gd || !gd.data || !window.Plotly) {
          pending = true; // still mounting: tried again shortly
          continue;
        }
        if (!visible(outer)) continue;
        started = performance.now();
        const drew = draw(gd);
        busy += performance.now() - started;
        if (drew && charts.length) {
          setTimeout(next, 0); // yield: input and painting get their turn between charts
          return;
        }
      }
      live.drawing = false;
      waitingLines();
      live.flushCost = busy;
      if (pending) scheduleFlush(200);
      if (live.again) {
        live.again = false;
        scheduleFlush();
      }
    }
    next();
  }

  /* Extend (or, for a long run, redraw reduced) one chart; true when it changed. */
  function draw(gd) {
    if (gd.closest("#custom-box")) customTraces(gd);
    if (reduce(gd)) {
      dropMarkers(gd);
      return true;
    }
    const ext = extension(gd);
    if (!ext) return false;
    window.Plotly.extendTraces(gd, ext[0], ext[1]);
    dropMarkers(gd);
    return true;
  }

  /* A chart whose fields no record has had yet says what it waits for (run_charts.py);
   * before any record the page's own placeholder says it for all of them. */
  function waitingLines() {
    document.querySelectorAll(".chart-box").forEach(function (box) {
      const line = box.querySelector(".chart-waiting");
      const gd = box.querySelector(".js-plotly-plot");
      if (!line || !line.textContent || !gd || !gd.data) return;
      if (box.dataset.cwHasValues) return; // a field once seen stays seen for this run
      const fields = fieldsOf(gd).map(function (f) { return f.field; });
      const seen = live.records.some(function (r) {
        return fields.some(function (f) { return hasValue(r, f); });
      });
      if (seen) box.dataset.cwHasValues = "1";
      line.style.display = seen || !live.records.length ? "none" : "block";
    });
  }

  /* The training loop's own metrics: the chart appears with the first key; the picker once
   * there are more keys than CUSTOM_SHOWN. */
  function showCustom() {
    live.customNew = false;
    const box = document.getElementById("custom-box");
    if (!box) return;
    if (box.style.display === "none") {
      box.style.display = "";
      const gd = box.querySelector(".js-plotly-plot");
      // Plotted while hidden it has no size of its own yet.
      if (gd && window.Plotly) window.Plotly.Plots.resize(gd);
    }
    const many = live.customKeys.length > CUSTOM_SHOWN;
    const props = {
      options: live.customKeys.map(function (k) { return { label: k, value: k }; }),
      style: many ? {} : { display: "none" },
    };
    if (live.customShown === null) props.value = live.customKeys.slice(0, CUSTOM_SHOWN);
    setComponent("custom-picker", props);
  }

  function customShown(key) {
    const shown = live.customShown || live.customKeys.slice(0, CUSTOM_SHOWN);
    return shown.indexOf(key) >= 0;
  }

  /* One trace per custom key ("custom.<key>"): the extension then fills it like any other.
   * A key the picker leaves out stays in the legend only, and is still kept up to date. */
  function customTraces(gd) {
    const have = new Set(fieldsOf(gd).map(function (f) { return f.field; }));
    const missing = live.customKeys.filter(function (k) { return !have.has("custom." + k); });
    if (!missing.length) return;
    window.Plotly.addTraces(gd, missing.map(function (key) {
      return { type: "scatter", mode: "lines", name: key, x: [], y: [],
               meta: { field: "custom." + key },
               visible: customShown(key) ? true : "legendonly" };
    }));
  }

  function pickCustom(keys) {
    live.customShown = keys || [];
    const gd = document.querySelector("#custom-box .js-plotly-plot");
    if (!gd || !gd.data || !window.Plotly) return;
    const fields = fieldsOf(gd);
    if (!fields.length) return;
    window.Plotly.restyle(gd, {
      visible: fields.map(function (f) { return customShown(f.field.slice(7)) ? true : "legendonly"; }),
    }, fields.map(function (f) { return f.index; }));
  }

  /* An evaluation series keeps its markers while short (figures.py LIVE_MARKER_LIMIT): past
   * that every marker is an SVG node to redraw on each update, and a line says as much. */
  function dropMarkers(gd) {
    const long = [];
    gd.data.forEach(function (trace, index) {
      const limit = trace.meta && trace.meta.markers_until;
      if (limit && trace.mode !== "lines" && trace.x && trace.x.length > limit) long.push(index);
    });
    if (long.length) window.Plotly.restyle(gd, { mode: "lines" }, long);
  }

  /* Charts off screen are not redrawn: each redraw costs every point of a chart (hundreds of
   * ms at thousands of epochs), and nobody sees those. A chart that scrolls into view, or a
   * tab that comes back, catches up on the next flush. */
  const onScreen = new Set();
  const reported = new Set(); // charts the observer has reported on at least once
  let observer = null;

  function visible(outer) {
    if (!("IntersectionObserver" in window)) return true;
    if (!observer) {
      observer = new IntersectionObserver(function (entries) {
        let appeared = false;
        entries.forEach(function (entry) {
          reported.add(entry.target);
          if (entry.isIntersecting) {
            appeared = appeared || !onScreen.has(entry.target);
            onScreen.add(entry.target);
          } else {
            onScreen.delete(entry.target);
          }
        });
        if (appeared) scheduleFlush(0);
      }, { rootMargin: "200px" });
      document.addEventListener("visibilitychange", function () {
        if (!document.hidden) scheduleFlush(0);
      });
    }
    if (!outer.dataset.cwObserved) {
      outer.dataset.cwObserved = "1"; // a re-rendered page brings new elements: observe those
      observer.observe(outer);
    }
    if (!reported.has(outer) && nearViewport(outer)) {
      // The observer reports asynchronously, after its first frame: measured now, a chart
      // in view is drawn on this flush, not one flush later.
      onScreen.add(outer);
    }
    return !document.hidden && onScreen.has(outer);
  }

  function nearViewport(element) {
    const r = element.getBoundingClientRect();
    return r.width > 0 && r.bottom > -200 && r.top < window.innerHeight + 200;
  }

  /* Long runs: a chart redraws every point it holds on each update (~250 ms per call at
   * 2,000 epochs), more points than its width can show. Past MAX_POINTS a chart is redrawn
   * from a reduced set: every epoch of the last TAIL, and before that, in each of a few
   * hundred spans of epochs, the epochs where one of its series is lowest or highest (spikes stay
   * visible). All series of a chart share those epochs, so stacked areas stay aligned. The
   * records themselves (API, downloads) are never reduced. */
  const MAX_POINTS = 1200;
  const TAIL = 200;
  const HEAD_POINTS = 600; // at most, before the tail: room for 400 epochs until the next

  function hasValue(record, field) {
    const value = valueOf(record, field);
    return value !== null && value !== undefined;
  }

  /* A trace's field: a record field, or "custom.<key>" for a training loop's own metric. */
  function valueOf(record, field) {
    if (field.lastIndexOf("custom.", 0) === 0) {
      return record.custom ? record.custom[field.slice(7)] : undefined;
    }
    return record[field];
  }

  function fieldsOf(gd) {
    const fields = [];
    gd.data.forEach(function (trace, index) {
      const field = trace.meta && trace.meta.field;
      if (field) fields.push({ field: field, index: index });
    });
    return fields;
  }

  function reducedEpochs(fields) {
    const records = live.records;
    const head = Math.max(0, records.length - TAIL);
    const keep = new Set();
    // Two epochs per series per bucket at most.
    const buckets = Math.max(10, Math.floor(HEAD_POINTS / (2 * fields.length)));
    const size = Math.ceil(head / buckets) || 1;
    for (let start = 0; start < head; start += size) {
      const end = Math.min(head, start + size);
      fields.forEach(function (f) {
        let lo = -1;
        let hi = -1;
        for (let i = start; i < end; i++) {
          if (!hasValue(records[i], f.field)) continue;
          const v = valueOf(records[i], f.field);
          if (lo < 0 || v < valueOf(records[lo], f.field)) lo = i;
          if (hi < 0 || v > valueOf(records[hi], f.field)) hi = i;
        }
        if (lo >= 0) keep.add(lo);
        if (hi >= 0) keep.add(hi);
      });
    }
    for (let i = head; i < records.length; i++) keep.add(i);
    return Array.from(keep).sort(function (a, b) { return a - b; });
  }

  /* Redraw a chart from the reduced set; true when it was (then no extension for it). */
  function reduce(gd) {
    const fields = fieldsOf(gd);
    if (!fields.length) return false;
    const longest = Math.max.apply(null, fields.map(function (f) {
      const x = gd.data[f.index].x;
      return x ? x.length : 0;
    }));
    const shown = gd.data[fields[0].index].x;
    const last = shown && shown.length ? shown[shown.length - 1] : 0;
    const fresh = live.records.length - after(last);
    if (!fresh || live.records.length <= MAX_POINTS || longest + fresh <= MAX_POINTS) return false;
    const picked = reducedEpochs(fields);
    const xs = [];
    const ys = [];
    fields.forEach(function (f) {
      const rows = picked.filter(function (i) { return hasValue(live.records[i], f.field); });
      xs.push(rows.map(function (i) { return live.records[i].epoch; }));
      ys.push(rows.map(function (i) { return valueOf(live.records[i], f.field); }));
    });
    window.Plotly.restyle(gd, { x: xs, y: ys }, fields.map(function (f) { return f.index; }));
    return true;
  }

  function extension(gd) {
    const xs = [];
    const ys = [];
    const indices = [];
    fieldsOf(gd).forEach(function (f) {
      const trace = gd.data[f.index];
      const shown = trace.x && trace.x.length ? trace.x[trace.x.length - 1] : 0;
      const fresh = live.records.slice(after(shown)).filter(function (r) {
        return hasValue(r, f.field);
      });
      if (!fresh.length) return;
      xs.push(fresh.map(function (r) { return r.epoch; }));
      ys.push(fresh.map(function (r) { return valueOf(r, f.field); }));
      indices.push(f.index);
    });
    return indices.length ? [{ x: xs, y: ys }, indices] : null;
  }

  function formatSeconds(seconds) {
    const s = Math.max(0, Math.round(seconds || 0));
    const m = Math.floor(s / 60);
    return m ? m + " min " + (s % 60) + " s" : s + " s";
  }

  window.causalwatchLive = { watch: watch, state: live, maxPoints: MAX_POINTS };
  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    causalwatch: {
      watch: function (runId, api) {
        if (runId && api && api.ws) watch(runId, api.ws, api.ticket);
        return window.dash_clientside.no_update;
      },
      /* The progress bar and line, and the charts' placeholder. `state` is the server's
       * (dashboard/run_state.py): a finished run's line is final there and nothing moves;
       * a live one is drawn here from each record, or shows what it waits for. */
      progress: function (payload, state) {
        const st = state || { live: true, text: "" };
        const count = payload && payload.run_id === live.runId ? payload.count : 0;
        const waiting = [st.waiting || "loading the run's epochs…",
          count ? "run-waiting d-none" : "run-waiting"];
        if (!st.live) {
          return [st.value, st.label, false, false, st.color, st.text].concat(waiting);
        }
        if (!payload || !payload.last) return [0, "", true, true, "primary", st.text].concat(waiting);
        const last = payload.last;
        const total = payload.epochs_total || last.epoch;
        const best = payload.best_epoch;
        const pct = Math.min(100, (100 * last.epoch) / total);
        const label = "epoch " + last.epoch + " / " + total;
        // A training loop of its own (SDK) may not say how long it has left.
        const eta = hasValue(last, "eta_seconds") ? " · ETA " + formatSeconds(last.eta_seconds) : "";
        const text = label + eta +
          // The label-free best checkpoint (lowest val_recon), not the epoch of the best F1.
          (best ? " · best checkpoint: epoch " + best : "");
        // The text beside the bar says it: inside a bar a few % wide it would be cut off.
        return [pct, "", true, true, "primary", text].concat(waiting);
      },
      /* The custom chart's picker: the keys to draw (the others stay in the legend). */
      pickCustom: function (keys) {
        if (window.dash_clientside.callback_context.triggered.length) pickCustom(keys);
        return window.dash_clientside.no_update;
      },
      /* The shell's /healthz read, handed to the run page only while the run is queued (its
       * line says how many runs hold the slots) and only when the count moved. */
      queuedHealth: function (health, state, shown) {
        const noUpdate = window.dash_clientside.no_update;
        if (!health || !state || !state.queued) return noUpdate;
        if (shown && shown.runs_active === health.runs_active) return noUpdate;
        return health;
      },
    },
  });
})();
