"""Access control: who may read, who may write, and into which run.

- `Settings.token` (CAUSALWATCH_TOKEN), when set, guards every API call, the browser
  websockets and the docs; `causalwatch up` generates one when binding a non-loopback
  address. Without it the API is open to loopback callers, which backend/origins.py keeps
  browsers of other sites out of.
- Each run gets its own ingest token, handed to its trainer in the environment. It is
  required on the ingest socket in every mode, loopback included: a trainer can write into
  its own run only (the admin token works for every run).
- Pages never hold the admin token: the dashboard's server asks `POST /api/tickets` for a
  short-lived read-only *ticket* (HMAC-signed with the admin token, so no state is kept)
  that its page uses for live websockets and download links.
- /healthz stays open so a container HEALTHCHECK or a load balancer can probe it.

Tokens arrive as `Authorization: Bearer <token>`, or `?token=` where a browser cannot set
headers (websockets, download links); they are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = ("/healthz",)
UNAUTHORIZED_WS = 4401


def presented_token(headers: dict[str, str] | object, query: dict[str, str] | object) -> str | None:
    auth = headers.get("authorization", "")  # type: ignore[attr-defined]
    if auth.lower().startswith("bearer "):
        return str(auth[7:].strip())
    token = query.get("token")  # type: ignore[attr-defined]
    return str(token) if token else None


def matches(presented: str | None, *expected: str | None) -> bool:
    if not presented:
        return False
    return any(
        e is not None and hmac.compare_digest(presented.encode(), e.encode()) for e in expected
    )


TICKET_PREFIX = "t1"
READ_METHODS = ("GET", "HEAD")


def mint_ticket(secret: str, ttl_seconds: float, now: float | None = None) -> str:
    """A read-only ticket valid for `ttl_seconds`: `t1.<expiry>.<HMAC of both>`."""
    expires = int((time.time() if now is None else now) + ttl_seconds)
    return f"{TICKET_PREFIX}.{expires}.{_signature(secret, expires)}"


def valid_ticket(secret: str | None, presented: str | None, now: float | None = None) -> bool:
    if not secret or not presented or not presented.startswith(TICKET_PREFIX + "."):
        return False
    try:
        _, expires_text, signature = presented.split(".")
        expires = int(expires_text)
    except ValueError:
        return False
    if expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(signature.encode(), _signature(secret, expires).encode())


def _signature(secret: str, expires: int) -> str:
    message = f"{TICKET_PREFIX}.{expires}.read".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class TokenMiddleware:
    """Refuses HTTP requests without the token (401, JSON naming what is missing).

    A ticket opens reads (GET/HEAD) only: a page holding one can watch and download, never
    create, stop or mint more tickets.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        presented = presented_token(request.headers, request.query_params)
        if matches(presented, self.token) or (
            scope["method"] in READ_METHODS and valid_ticket(self.token, presented)
        ):
            await self.app(scope, receive, send)
            return
        body = {"detail": [{"msg": "missing or wrong token: send Authorization: Bearer "
                                   "<token> (or ?token=)", "field": "token", "type": "auth"}]}
        response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


async def allow_websocket(
    ws: WebSocket, token: str | None, *, also: str | None = None, tickets: bool = False
) -> bool:
    """Close the socket (4401) unless `token` is None (no auth asked) or the socket presents
    `token`, `also`, or (with `tickets`) a ticket signed with `also`."""
    if token is None:
        return True
    presented = presented_token(ws.headers, ws.query_params)
    if matches(presented, token, also) or (tickets and valid_ticket(also, presented)):
        return True
    await ws.close(code=UNAUTHORIZED_WS, reason="missing or wrong token")
    return False

