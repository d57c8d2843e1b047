"""Who may talk to the API from a browser: the Host allowlist and the Origin policy.

A server on loopback is still reachable from every page the user's browser opens:
- **DNS rebinding**: a page at evil.example re-resolves its own name to 127.0.0.1 and reads
  the API as same-origin. Its requests carry `Host: evil.example`, so only the names we
  serve under are answered (loopback names, `--host`, `--allowed-host`); others get 400.
- **Cross-site websockets**: browsers send `Origin` on every websocket handshake and apply
  no same-origin rule to them. Browser streams accept the dashboard's origin and the API's
  own; the ingest socket accepts no browser at all.
- **CSRF**: a cross-site form or `fetch(..., {mode: "no-cors"})` can POST `text/plain`
  without a preflight. State-changing requests need a JSON body or the
  `X-Causalwatch-Client` header (neither can be sent cross-site without a CORS preflight,
  which this API never grants) and, when the browser names an Origin, an allowed one.

Non-browser clients (trainers, scripts, the dashboard's server side) send no Origin.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.status import WS_1013_TRY_AGAIN_LATER
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.errors import ERROR_MEANINGS
from backend.settings import Settings

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("0.0.0.0", "::")
CLIENT_HEADER = "x-causalwatch-client"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
INGEST_PREFIX = "/ws/ingest/"
FORBIDDEN_WS = 4403


def host_names(settings: Settings) -> frozenset[str]:
    """The names a request's Host header may carry."""
    names = {*LOOPBACK_NAMES, *settings.allowed_hosts}
    if settings.host not in WILDCARD_ADDRESSES:
        names.add(settings.host.lower())
    return frozenset(names)


def _url_host(name: str) -> str:
    return f"[{name}]" if ":" in name else name


def browser_origins(settings: Settings) -> frozenset[str]:
    """Origins whose pages may use the API: the dashboard's and the API's own (its /docs),
    under every allowed host name, plus `--allowed-origin`."""
    origins = set(settings.allowed_origins)
    for name in host_names(settings):
        for port in (settings.port, settings.dashboard_port):
            for scheme in ("http", "https"):
                origins.add(f"{scheme}://{_url_host(name)}:{port}")
    return frozenset(origins)


def host_of(header: str) -> str:
    """The name in a Host header, without port or IPv6 brackets, lowercased."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class BrowserGuard:
    """ASGI middleware applying the Host, Origin, CSRF and connection-count rules.

    Outermost, so nothing behind it (token checks, body reading) runs for a refused caller.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = host_names(settings)
        self.origins = browser_origins(settings)
        self.max_websockets = settings.max_websockets
        self.open_websockets = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if scope["type"] == "http":
            if refusal is not None:
                status, field, message = refusal
                body = {"detail": [{"msg": message, "field": field, "type": "forbidden"}]}
                await JSONResponse(body, status_code=status)(scope, receive, send)
                return
            await self.app(scope, receive, _with_browser_headers(send))
            return
        if refusal is not None:
            await _close_websocket(receive, send, FORBIDDEN_WS, refusal[2])
            return
        if self.open_websockets >= self.max_websockets:
            await _close_websocket(
                receive, send, WS_1013_TRY_AGAIN_LATER,
                f"{self.open_websockets} websockets open (max_websockets); retry later",
            )
            return
        self.open_websockets += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open_websockets -= 1

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, str] | None:
        host = host_of(headers.get("host", ""))
        if host not in self.hosts:
            return 400, "host", (
                f"this server does not answer to host {host!r}; allow it with "
                "--allowed-host (CAUSALWATCH_ALLOWED_HOSTS)"
            )
        origin = headers.get("origin")
        if scope["type"] == "websocket":
            if origin is not None and scope["path"].startswith(INGEST_PREFIX):
                return 403, "origin", "the ingest socket takes no browser connections"
            if origin is not None and origin.lower() not in self.origins:
                return 403, "origin", f"websockets from origin {origin!r} are refused"
            return None
        if scope["method"] in SAFE_METHODS:
            return None
        if origin is not None and origin.lower() not in self.origins:
            return 403, "origin", (
                f"requests from origin {origin!r} are refused; allow it with --allowed-origin"
            )
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json" and CLIENT_HEADER not in headers:
            return 403, "content-type", (
                "state-changing requests need a JSON body (Content-Type: application/json) "
                "or the X-Causalwatch-Client header"
            )
        return None


def document_refusals(app: FastAPI) -> None:
    """Declare in OpenAPI what BrowserGuard answers: 400 to every operation, 403 to writes."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # cached by FastAPI: amended once
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                writes = method.upper() not in SAFE_METHODS
                for code in (400, 403) if writes else (400,):
                    operation.setdefault("responses", {}).setdefault(str(code), {
                        "description": ERROR_MEANINGS[code],
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                    })
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# No page of ours may be framed (clickjacking), sniffed into another type, or leak its URL
# (which can carry a ticket) as a referrer. /docs sets its own CSP (backend/docs.py).
BROWSER_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


def _with_browser_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {name.lower() for name, _ in headers}
            headers += [h for h in (*BROWSER_HEADERS, API_CSP) if h[0] not in names]
            message = {**message, "headers": headers}
        await send(message)

    return sending


async def _close_websocket(receive: Receive, send: Send, code: int, reason: str) -> None:
    """Accept then close with `code`, so clients read why (a refusal before accepting is a
    bare HTTP 403 that browsers do not expose)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": reason.encode()[:120].decode(
        errors="ignore")})
