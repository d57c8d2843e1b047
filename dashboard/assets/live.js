/*
 * causalwatch live channel: the browser subscribes to the backend's WS /ws/runs/{id} and
 * hands what arrives to Dash through dash_clientside.set_props. Records flow into the
 * charts with extendData (clientside, no server round trip); status, alerts and graphs
 * trigger a server callback that re-renders the panels from the REST API.
 *
 * Every record since the last snapshot stays in `records`, and each flush carries all of
 * them: a chart that was not rendered yet, or was re-rendered, catches up on the next
 * flush, because extension skips the epochs a trace already shows.
 */
(function () {
  "use strict";
  const live = {
    ws: null,
    runId: null,
    base: null,
    backoff: 500,
    records: [],
    epochsTotal: null,
    flushTimer: null,
    seq: 0,
    flushCost: 0, // ms the last flush kept the page busy; spaces the next one
  };

  function setProps(id, data) {
    const dc = window.dash_clientside;
    if (dc && typeof dc.set_props === "function") {
      dc.set_props(id, { data: data });
    }
  }

  function scheduleFlush(delay) {
    if (live.flushTimer) return;
    // Adaptive: when drawing is slow (long runs, slow machines) batch more records per
    // redraw instead of queueing redraws behind each other.
    const wait = delay === undefined ? Math.max(25, Math.min(1000, 2 * live.flushCost)) : delay;
    live.flushTimer = setTimeout(function () {
      live.flushTimer = null;
      live.seq += 1;
      const started = performance.now();
      setProps("live-metrics", {
        seq: live.seq,
        run_id: live.runId,
        epochs_total: live.epochsTotal,
        records: live.records,
      });
      requestAnimationFrame(function () {
        live.flushCost = performance.now() - started;
      });
    }, wait);
  }

  function connect() {
    if (!live.runId || !live.base) return;
    const runId = live.runId;
    const auth = live.token ? "?token=" + encodeURIComponent(live.token) : "";
    const ws = new WebSocket(live.base + "/ws/runs/" + encodeURIComponent(runId) + auth);
    live.ws = ws;
    ws.onopen = function () {
      live.backoff = 500;
      setProps("live-status", { connected: true, at: Date.now() });
    };
    ws.onmessage = function (event) {
      if (live.ws !== ws) return;
      const msg = JSON.parse(event.data);
      if (msg.type === "snapshot") {
        live.records = msg.metrics || [];
        live.epochsTotal = msg.run ? msg.run.epochs_total : null;
        setProps("live-event", { type: "snapshot", at: Date.now() });
        scheduleFlush(0);
      } else if (msg.type === "metric") {
        live.records.push(msg.record);
        scheduleFlush();
      } else {
        setProps("live-event", { type: msg.type, at: Date.now() });
      }
    };
    ws.onclose = function () {
      if (live.ws !== ws) return; // replaced on purpose
      setProps("live-status", { connected: false, at: Date.now() });
      setTimeout(function () {
        if (live.ws === ws) connect();
      }, live.backoff);
      live.backoff = Math.min(live.backoff * 2, 5000);
    };
  }

  function watch(runId, base, token) {
    live.token = token || null;
    if (runId === live.runId && live.ws && live.ws.readyState <= 1) return;
    const old = live.ws;
    live.ws = null;
    if (old) old.close();
    live.runId = runId;
    live.base = base;
    live.records = [];
    live.backoff = 500;
    connect();
  }

  /* The plotted data of a dcc.Graph, as Plotly holds it (extendData does not update the
   * Dash `figure` prop, so the DOM is the truth). */
  function plotted(graphId) {
    const outer = document.getElementById(graphId);
    return outer ? outer.querySelector(".js-plotly-plot") : null;
  }

  function extension(graphId, records) {
    const gd = plotted(graphId);
    if (!gd || !gd.data) return null;
    const xs = [];
    const ys = [];
    const indices = [];
    gd.data.forEach(function (trace, index) {
      const field = trace.meta && trace.meta.field;
      if (!field) return;
      const shown = trace.x && trace.x.length ? trace.x[trace.x.length - 1] : 0;
      const fresh = records.filter(function (r) {
        return r.epoch > shown && r[field] !== null && r[field] !== undefined;
      });
      if (!fresh.length) return;
      xs.push(fresh.map(function (r) { return r.epoch; }));
      ys.push(fresh.map(function (r) { return r[field]; }));
      indices.push(index);
    });
    return indices.length ? [{ x: xs, y: ys }, indices] : null;
  }

  function formatSeconds(seconds) {
    const s = Math.max(0, Math.round(seconds || 0));
    const m = Math.floor(s / 60);
    return m ? m + " min " + (s % 60) + " s" : s + " s";
  }

  window.causalwatchLive = { watch: watch, state: live };
  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    causalwatch: {
      watch: function (runId, api) {
        if (runId && api && api.ws) watch(runId, api.ws, api.token);
        return window.dash_clientside.no_update;
      },
      extend: function (payload) {
        const noUpdate = window.dash_clientside.no_update;
        const graphIds = Array.prototype.slice.call(arguments, 1);
        if (!payload || payload.run_id !== live.runId) return graphIds.map(function () { return noUpdate; });
        let pending = false;
        const out = graphIds.map(function (graphId) {
          if (!plotted(graphId)) {
            pending = true;
            return noUpdate;
          }
          const ext = extension(graphId, payload.records);
          return ext || noUpdate;
        });
        if (pending) scheduleFlush(200); // charts still mounting: try again shortly
        return out;
      },
      progress: function (payload) {
        const noUpdate = window.dash_clientside.no_update;
        if (!payload || !payload.records || !payload.records.length) return [noUpdate, noUpdate, noUpdate];
        const last = payload.records[payload.records.length - 1];
        const total = payload.epochs_total || last.epoch;
        let best = null;
        payload.records.forEach(function (r) { if (r.is_best) best = r.epoch; });
        const pct = Math.min(100, (100 * last.epoch) / total);
        const label = "epoch " + last.epoch + " / " + total;
        const text = label + " · ETA " + formatSeconds(last.eta_seconds) +
          (best ? " · BEST epoch " + best : "");
        return [pct, label, text];
      },
    },
  });
})();
