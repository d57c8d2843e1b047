"""The dashboard's guards against attacks through the browser: a Host allowlist (DNS
rebinding), an Origin check on state-changing requests (cross-site requests), and the
response headers that forbid framing, sniffing, referrers and foreign scripts.

Token checks live in `dashboard.sessions`; this module trusts no one and knows no secret.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, request

# A browser on the machine itself names the dashboard one of these; no DNS answer can
# point a foreign name at them without the Host header still carrying that foreign name.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
ALLOWED_HOSTS_ENV = "CAUSALWATCH_ALLOWED_HOSTS"
# Methods a cross-site page could use to act; GETs only read, and nothing here acts on one.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

PLAIN = {"Content-Type": "text/plain; charset=utf-8"}


def host_name(value: str) -> str:
    """A host name for the allowlist: lower case, no brackets, no trailing dot.

    Raises ValueError for anything that is not a bare name or address (a port, a scheme,
    a path), so a typo in `--allowed-host` fails at start-up instead of refusing everyone.
    """
    name = value.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.rstrip(".")
    if ":" in name:  # only an IPv6 address may hold colons
        try:
            return str(ipaddress.IPv6Address(name))
        except ValueError:
            raise ValueError(
                f"allowed host {value!r}: give a host name or address without port or scheme"
            ) from None
    if not name or any(c in name for c in "/@?# \t") or not name.isascii():
        raise ValueError(
            f"allowed host {value!r}: give a host name or address without port or scheme"
        )
    return name


def request_host_name(header: str) -> str | None:
    """The host name a Host header names (port dropped, IPv6 unbracketed); None if malformed."""
    header = header.strip()
    if header.startswith("["):
        end = header.find("]")
        if end < 0 or not (header[end + 1:] == "" or header[end + 1:].startswith(":")):
            return None
        name = header[1:end]
        if ":" not in name:  # brackets hold IPv6 addresses only
            return None
    elif header.count(":") > 1:
        name = header  # an unbracketed IPv6 address: no port can follow it
    else:
        name = header.partition(":")[0]
    try:
        return host_name(name)
    except ValueError:
        return None


def allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Loopback names, the address the dashboard is bound to (unless a wildcard), `extra`."""
    names = set(LOOPBACK_HOSTS)
    bound = bind_host.strip().strip("[]")
    if bound not in WILDCARD_HOSTS:
        names.add(host_name(bound))
    names.update(host_name(h) for h in extra)
    return frozenset(names)


def hosts_from_env(value: str | None) -> list[str]:
    """`CAUSALWATCH_ALLOWED_HOSTS`, comma-separated; empty items are ignored."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower case, the way browsers send an Origin header."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def content_security_policy(script_hashes: Sequence[str], public_api: str) -> str:
    """Scripts from this origin (plus Dash's inline ones, by hash); live data and downloads
    from the backend the browser is told about; no frames, forms or bases elsewhere."""
    http_origin = origin_of(public_api)
    ws_origin = http_origin.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        # Dash, Bootstrap and plotly set style attributes and inject <style> at run time.
        "style-src": ["'self'", "'unsafe-inline'"],
        # Bootstrap's icons are data: URIs; plotly's "download plot" makes blob: images.
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'", http_origin, ws_origin],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def install(server: Flask, *, allowed: frozenset[str], csp: Callable[[], str]) -> None:
    """Register the Host and Origin checks before every request, the headers after it.

    Call before other before_request guards: a rebound or cross-site request is refused
    before it is even asked for a token. `csp` is asked once, after the first request's
    before_request handlers ran: Dash adds inline scripts (its pages' title callback) then.
    """
    headers = {
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    policy: list[str] = []
    policy_lock = threading.Lock()

    def current_policy() -> str:
        with policy_lock:
            if not policy:
                policy.append(csp())
            return policy[0]

    @server.before_request
    def _check_host() -> Any:
        given = request.environ.get("HTTP_HOST", "")
        name = request_host_name(given)
        if name is None or name not in allowed:
            shown = name or given or "(none)"
            return (
                f"causalwatch: refused host {shown!r}: this dashboard answers only to "
                f"{', '.join(sorted(allowed))}. To open it under that name, start it with "
                f"--allowed-host {shown} (or set {ALLOWED_HOSTS_ENV}={shown}).\n",
                400, PLAIN,
            )
        return None

    @server.before_request
    def _check_origin() -> Any:
        if request.method in SAFE_METHODS:
            return None
        origin = request.headers.get("Origin")
        if origin is None:
            return None  # not a browser's cross-site request: those always carry one
        own = origin_of(request.host_url)
        if origin.strip().lower() != own:
            return (f"causalwatch: refused a {request.method} from origin {origin!r}; "
                    f"this dashboard accepts them only from {own}.\n", 403, PLAIN)
        return None

    @server.after_request
    def _secure_headers(response: Any) -> Any:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", current_policy())
        return response
