/*
 * causalwatch live channel: the browser subscribes to the backend's WS /ws/runs/{id} and
 * hands what arrives to Dash through dash_clientside.set_props. Records flow into the
 * charts with extendData (clientside, no server round trip); status, alerts and graphs
 * trigger a server callback that re-renders the panels from the REST API.
 *
 * Every record since the last snapshot stays in `records` (sorted by epoch). A flush hands
 * Dash only a small summary (count, last record, best epoch): the clientside callbacks read
 * the records themselves from this module, so a flush costs what is new, not the whole
 * history. A chart that was not rendered yet, or was re-rendered, still catches up on the
 * next flush, because extension starts after the last epoch each trace already shows.
 *
 * With a token, the socket carries a short-lived read-only ticket fetched from the
 * dashboard right before each (re)connect; the admin token never reaches this page.
 */
(function () {
  "use strict";
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
      const last = live.records.length ? live.records[live.records.length - 1] : null;
      setProps("live-metrics", {
        seq: live.seq,
        run_id: live.runId,
        epochs_total: live.epochsTotal,
        count: live.records.length,
        last: last,
        best_epoch: live.bestEpoch,
      });
      requestAnimationFrame(function () {
        live.flushCost = performance.now() - started;
      });
    }, wait);
  }

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
    if (at > 0 && live.records[at - 1].epoch === record.epoch) return; // already here
    if (at === live.records.length) live.records.push(record);
    else live.records.splice(at, 0, record); // a resent epoch after a reconnect
    if (record.is_best) live.bestEpoch = Math.max(live.bestEpoch || 0, record.epoch);
  }

  /* A fresh read-only ticket for each (re)connect, from the dashboard (which holds the
   * session, never the page): null when the backend has no token. Tickets expire within
   * minutes, so none is kept for the next reconnect. */
  function fetchTicket() {
    if (!live.ticketUrl) return Promise.resolve(null);
    return fetch(live.ticketUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) {
        if (!resp.ok) throw new Error("ticket: HTTP " + resp.status);
        return resp.json();
      })
      .then(function (body) { return body.token || null; });
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

  function openSocket(runId, ticket, attempt) {
    const auth = ticket ? "?token=" + encodeURIComponent(ticket) : "";
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
        live.records = [];
        live.bestEpoch = null;
        (msg.metrics || []).forEach(add);
        live.epochsTotal = msg.run ? msg.run.epochs_total : null;
        setProps("live-event", { type: "snapshot", at: Date.now() });
        scheduleFlush(0);
      } else if (msg.type === "metric") {
        add(msg.record);
        scheduleFlush();
      } else {
        setProps("live-event", { type: msg.type, at: Date.now() });
      }
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
    live.backoff = 500;
    connect();
  }

  /* Charts off screen are not redrawn: each extendTraces redraws every point of a chart
   * (hundreds of ms at thousands of epochs), and nobody sees those. A chart that scrolls
   * into view, or a tab that comes back, catches up on the next flush. */
  const onScreen = new Set();
  const reported = new Set(); // charts the observer has reported on at least once
  let observer = null;

  function visible(graphId) {
    if (!("IntersectionObserver" in window)) return true;
    if (!observer) {
      observer = new IntersectionObserver(function (entries) {
        let appeared = false;
        entries.forEach(function (entry) {
          reported.add(entry.target.id);
          if (entry.isIntersecting) {
            appeared = appeared || !onScreen.has(entry.target.id);
            onScreen.add(entry.target.id);
          } else {
            onScreen.delete(entry.target.id);
          }
        });
        if (appeared) scheduleFlush(0);
      }, { rootMargin: "200px" });
      document.addEventListener("visibilitychange", function () {
        if (!document.hidden) scheduleFlush(0);
      });
    }
    const outer = document.getElementById(graphId);
    if (outer && !outer.dataset.cwObserved) {
      outer.dataset.cwObserved = "1"; // a re-rendered page brings new elements: observe those
      observer.observe(outer);
    }
    if (outer && !reported.has(graphId) && nearViewport(outer)) {
      // The observer reports asynchronously, after its first frame: measured now, a chart
      // in view is drawn on this flush, not one flush (and a Dash round) later.
      onScreen.add(graphId);
    }
    return !document.hidden && onScreen.has(graphId);
  }

  function nearViewport(element) {
    const r = element.getBoundingClientRect();
    return r.width > 0 && r.bottom > -200 && r.top < window.innerHeight + 200;
  }

  /* The plotted data of a dcc.Graph, as Plotly holds it (extendData does not update the
   * Dash `figure` prop, so the DOM is the truth). */
  function plotted(graphId) {
    const outer = document.getElementById(graphId);
    return outer ? outer.querySelector(".js-plotly-plot") : null;
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
    return record[field] !== null && record[field] !== undefined;
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
          const v = records[i][f.field];
          if (lo < 0 || v < records[lo][f.field]) lo = i;
          if (hi < 0 || v > records[hi][f.field]) hi = i;
        }
        if (lo >= 0) keep.add(lo);
        if (hi >= 0) keep.add(hi);
      });
    }
    for (let i = head; i < records.length; i++) keep.add(i);
    return Array.from(keep).sort(function (a, b) { return a - b; });
  }

  /* Redraw a chart from the reduced set; true when it was (then no extendData for it). */
  function reduce(graphId) {
    const gd = plotted(graphId);
    if (!gd || !gd.data || !window.Plotly) return false;
    const fields = fieldsOf(gd);
    if (!fields.length) return false;
    const longest = Math.max.apply(null, fields.map(function (f) {
      const x = gd.data[f.index].x;
      return x ? x.length : 0;
    }));
    const shown = gd.data[fields[0].index].x;
    const last = shown && shown.length ? shown[shown.length - 1] : 0;
    const fresh = live.records.length - after(last);
    if (live.records.length <= MAX_POINTS || longest + fresh <= MAX_POINTS) return false;
    const picked = reducedEpochs(fields);
    const xs = [];
    const ys = [];
    fields.forEach(function (f) {
      const rows = picked.filter(function (i) { return hasValue(live.records[i], f.field); });
      xs.push(rows.map(function (i) { return live.records[i].epoch; }));
      ys.push(rows.map(function (i) { return live.records[i][f.field]; }));
    });
    window.Plotly.restyle(gd, { x: xs, y: ys }, fields.map(function (f) { return f.index; }));
    return true;
  }

  function extension(graphId) {
    const gd = plotted(graphId);
    if (!gd || !gd.data) return null;
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
      ys.push(fresh.map(function (r) { return r[f.field]; }));
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
          if (!visible(graphId)) return noUpdate;
          if (reduce(graphId)) return noUpdate;
          const ext = extension(graphId);
          return ext || noUpdate;
        });
        if (pending) scheduleFlush(200); // charts still mounting: try again shortly
        return out;
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
        const text = label + " · ETA " + formatSeconds(last.eta_seconds) +
          // The label-free best checkpoint (lowest val_recon), not the epoch of the best F1.
          (best ? " · best checkpoint: epoch " + best : "");
        // The text beside the bar says it: inside a bar a few % wide it would be cut off.
        return [pct, "", true, true, "primary", text].concat(waiting);
      },
    },
  });
})();
