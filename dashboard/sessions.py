"""Token mode: `?token=<admin token>` once, then a session cookie that holds no secret.

The admin token is exchanged for a random session id kept in this process's memory, and
the browser is sent back to the same address without the token, so the token leaves the
address bar, the history and any log of URLs. Page scripts never see either: the cookie is
HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from flask import Flask, redirect, request

COOKIE = "causalwatch_session"
SESSION_SECONDS = 12 * 3600
# Each ?token= visit mints one; a bound keeps a script hammering the exchange from
# growing the process without end (the oldest sessions go first).
MAX_SESSIONS = 10_000
NEEDS_TOKEN = ("causalwatch: this dashboard needs its token; open it with ?token=<token> "
               "(printed by causalwatch up).\n")
PLAIN = {"Content-Type": "text/plain; charset=utf-8"}


class SessionStore:
    """Session ids → expiry (monotonic seconds); safe across waitress's threads."""

    def __init__(self, lifetime: float = SESSION_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self.lifetime = lifetime
        self.limit = limit
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self) -> str:
        session_id = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            for old in [s for s, until in self._expiry.items() if until <= now]:
                del self._expiry[old]
            while len(self._expiry) >= self.limit:  # dicts keep insertion order: oldest first
                del self._expiry[next(iter(self._expiry))]
            self._expiry[session_id] = now + self.lifetime
        return session_id

    def valid(self, session_id: str | None) -> bool:
        if not session_id:
            return False
        with self._lock:
            until = self._expiry.get(session_id)
            if until is None:
                return False
            if until <= time.monotonic():
                del self._expiry[session_id]
                return False
            return True


def without_token(path: str, params: Iterable[tuple[str, str]]) -> str:
    """`path?params` with every `token` parameter removed (others kept, in order)."""
    kept = [(k, v) for k, v in params if k != "token"]
    # One leading slash: browsers read "//evil.example" and "/\\evil.example" as another site.
    path = "/" + path.lstrip("/\\")
    return path + ("?" + urlencode(kept) if kept else "")


def install(server: Flask, token: str, store: SessionStore | None = None) -> SessionStore:
    """Demand a session on every request; `?token=` on a GET or HEAD opens one."""
    sessions = store or SessionStore()
    expected = token.encode()

    @server.before_request
    def _require_session() -> Any:
        given = request.args.get("token")
        if given is not None and request.method in ("GET", "HEAD"):
            if not hmac.compare_digest(given.encode(), expected):
                return NEEDS_TOKEN, 401, PLAIN
            # 303: the browser comes back with a GET to the token-free address.
            clean = without_token(request.path, request.args.items(multi=True))
            response = redirect(clean, code=303)
            response.set_cookie(
                COOKIE, sessions.create(), max_age=int(sessions.lifetime), path="/",
                httponly=True, samesite="Strict", secure=request.is_secure,
            )
            response.headers["Cache-Control"] = "no-store"
            return response
        if not sessions.valid(request.cookies.get(COOKIE)):
            return NEEDS_TOKEN, 401, PLAIN
        return None

    return sessions
