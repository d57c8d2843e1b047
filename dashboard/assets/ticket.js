/*
 * causalwatch tickets: a fresh read-only ticket for each websocket (re)connect, from the
 * dashboard's ticket route (which holds the session, never the page): null when the backend
 * has no token. Tickets expire within minutes, so none is kept for the next reconnect.
 * Shared by the run page's socket (live.js) and the lists' socket (runs_feed.js).
 */
(function () {
  "use strict";
  window.causalwatchTicket = function (ticketUrl) {
    if (!ticketUrl) return Promise.resolve(null);
    return fetch(ticketUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) {
        if (!resp.ok) throw new Error("ticket: HTTP " + resp.status);
        return resp.json();
      })
      .then(function (body) { return body.token || null; });
  };
})();
