"""Access control: open on loopback without a token; with a token, every door needs it.

- `Settings.token` (CAUSALWATCH_TOKEN) guards every API call, the browser websockets and
  the docs; `causalwatch up` generates and prints one when binding a non-loopback address.
- Each run gets its own ingest token, handed to its trainer in the environment: with auth
  on, a trainer can write into its own run only (the admin token works for every run).
- /healthz stays open so a container HEALTHCHECK or a load balancer can probe it.

Tokens arrive as `Authorization: Bearer <token>`, or `?token=` where a browser cannot set
headers (websockets, download links); they are compared in constant time.
"""

from __future__ import annotations

import hmac

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


class TokenMiddleware:
    """Refuses HTTP requests without the token (401, JSON naming what is missing)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if matches(presented_token(request.headers, request.query_params), self.token):
            await self.app(scope, receive, send)
            return
        body = {"detail": [{"msg": "missing or wrong token: send Authorization: Bearer "
                                   "<token> (or ?token=)", "field": "token", "type": "auth"}]}
        response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


async def allow_websocket(
    ws: WebSocket, token: str | None, *, also: str | None = None
) -> bool:
    """Close the socket (4401) unless auth is off or it presents `token` (or `also`)."""
    if token is None:
        return True
    if matches(presented_token(ws.headers, ws.query_params), token, also):
        return True
    await ws.close(code=UNAUTHORIZED_WS, reason="missing or wrong token")
    return False

