/*
 * causalwatch runs feed: the pages that list runs (runs, Compare, sweeps, a sweep) follow the
 * backend's WS /ws/runs instead of polling it. The socket pushes every run's status changes,
 * records and alerts; those of the runs a page shows become a bump of its `runs-feed` store
 * (dashboard/runs_feed.py), and the page's server callback re-reads what it shows then. An idle
 * backend pushes nothing, so an idle page sends no request.
 *
 * Bumps are spaced by the page's `spacing_ms` (the first at once, the last of a burst always
 * sent): a training run pushes a record per epoch, a list needs far fewer re-reads.
 *
 * Only while the socket cannot connect (a proxy that refuses websockets, the backend away)
 * does the page fall back to a slow poll, a bump every FALLBACK_MS, until it connects.
 *
 * The socket outlives a page change between such pages; on any other page it is closed at
 * its next event. With a token, each (re)connect carries a fresh read-only ticket
 * (assets/ticket.js), like the run page's socket (assets/live.js).
 */
(function () {
  "use strict";
  const FALLBACK_MS = 5000;
  const MAX_BACKOFF_MS = 5000;
  const feed = {
    ws: null,
    base: null,
    ticketUrl: null,
    scope: null, // the page's {feed, box, prefix, runs, spacing_ms}: dashboard/runs_feed.py
    names: new Map(), // run id -> name, from the snapshot and status events
    attempt: 0, // bumped by each connect() and stop(): a late ticket or retry is dropped
    connecting: false,
    connected: false,
    backoff: 500,
    bumps: 0,
    bumpTimer: null,
    bumpDue: false,
    bumpAt: 0,
    fallbackTimer: null,
  };

  function onPage() {
    return !!feed.scope && document.getElementById(feed.scope.box) !== null;
  }

  function bump() {
    feed.bumpDue = true;
    if (feed.bumpTimer) return;
    const wait = Math.max(0, feed.bumpAt + (feed.scope.spacing_ms || 0) - Date.now());
    feed.bumpTimer = setTimeout(function () {
      feed.bumpTimer = null;
      if (!feed.bumpDue) return;
      feed.bumpDue = false;
      if (!onPage()) {
        stop();
        return;
      }
      feed.bumpAt = Date.now();
      feed.bumps += 1;
      const dc = window.dash_clientside;
      if (dc && typeof dc.set_props === "function") {
        dc.set_props(feed.scope.feed, { data: { bumps: feed.bumps, at: feed.bumpAt } });
      }
    }, wait);
  }

  /* Whether an event concerns what the page shows: a run in its scope (by name prefix), and
   * for records and alerts, one of its runs (all when `runs` is null). No list shows graphs. */
  function matters(msg) {
    if (msg.type === "status" && msg.run) feed.names.set(msg.run_id, msg.run.name || "");
    const scope = feed.scope;
    if (scope.prefix) {
      const name = feed.names.get(msg.run_id);
      if (name === undefined || name.lastIndexOf(scope.prefix, 0) !== 0) return false;
    }
    if (msg.type === "status") return true;
    if (msg.type === "metric" || msg.type === "alert" || msg.type === "verification") {
      return !scope.runs || scope.runs.indexOf(msg.run_id) >= 0;
    }
    return false;
  }

  function onMessage(msg) {
    if (!onPage()) {
      stop();
      return;
    }
    if (msg.type === "snapshot") {
      feed.names = new Map();
      (msg.runs || []).forEach(function (run) { feed.names.set(run.id, run.name || ""); });
      // Whatever changed while the socket was away (or before it opened) is read now.
      bump();
    } else if (matters(msg)) {
      bump();
    }
  }

  // --- the socket ------------------------------------------------------------------------

  function fallBack() {
    if (feed.fallbackTimer) return;
    // The slow poll, only while the socket is down: it stops when the socket opens.
    feed.fallbackTimer = setInterval(function () {
      if (!onPage()) {
        stop();
        return;
      }
      bump();
    }, FALLBACK_MS);
  }

  function retry(attempt) {
    fallBack();
    setTimeout(function () {
      if (feed.attempt === attempt) connect();
    }, feed.backoff);
    feed.backoff = Math.min(feed.backoff * 2, MAX_BACKOFF_MS);
  }

  function connect() {
    const attempt = ++feed.attempt;
    feed.connecting = true;
    window.causalwatchTicket(feed.ticketUrl).then(function (ticket) {
      if (feed.attempt !== attempt) return;
      feed.connecting = false;
      openSocket(ticket, attempt);
    }, function () {
      if (feed.attempt !== attempt) return;
      feed.connecting = false;
      retry(attempt);
    });
  }

  function openSocket(ticket, attempt) {
    const auth = ticket ? "?token=" + encodeURIComponent(ticket) : "";
    let ws;
    try {
      ws = new WebSocket(feed.base + "/ws/runs" + auth);
    } catch (err) {
      retry(attempt);
      return;
    }
    feed.ws = ws;
    ws.onmessage = function (event) {
      if (feed.ws !== ws) return;
      const msg = JSON.parse(event.data);
      if (msg.type === "snapshot") {
        // Connected once the backend answers (an open socket may still be refused): only
        // then do the backoff and the slow poll stop.
        feed.connected = true;
        feed.backoff = 500;
        clearInterval(feed.fallbackTimer);
        feed.fallbackTimer = null;
      }
      onMessage(msg);
    };
    ws.onclose = function () {
      if (feed.ws !== ws) return; // replaced or stopped on purpose
      feed.ws = null;
      feed.connected = false;
      if (onPage()) retry(attempt); else stop();
    };
  }

  function stop() {
    feed.attempt += 1;
    feed.connecting = false;
    feed.connected = false;
    feed.scope = null;
    clearTimeout(feed.bumpTimer);
    feed.bumpTimer = null;
    clearInterval(feed.fallbackTimer);
    feed.fallbackTimer = null;
    const ws = feed.ws;
    feed.ws = null;
    if (ws) ws.close();
  }

  /* A page with a feed appeared, or changed its scope (Compare's picked runs): the open
   * socket serves it as it is; it already read what it shows when it was rendered. */
  function watch(scope, api) {
    if (!scope || !api || !api.ws) return;
    feed.scope = scope;
    feed.ticketUrl = api.ticket || null;
    const live = feed.connecting || (feed.ws && feed.ws.readyState <= 1);
    if (live && feed.base === api.ws) return;
    stop();
    feed.scope = scope;
    feed.base = api.ws;
    feed.backoff = 500;
    connect();
  }

  window.causalwatchRunsFeed = { state: feed, fallbackMs: FALLBACK_MS };
  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    causalwatchFeed: {
      watch: function (scope, api) {
        watch(scope, api);
        return window.dash_clientside.no_update;
      },
      /* Compare: records and alerts count for the picked runs only. */
      focus: function (runIds, scope) {
        if (!scope) return window.dash_clientside.no_update;
        return Object.assign({}, scope, { runs: runIds || [] });
      },
    },
  });
})();
