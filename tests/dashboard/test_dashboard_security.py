"""dashboard/security.py as pure functions: host names, the allowlist, origins, the CSP."""

from __future__ import annotations

import pytest

from dashboard.security import (
    allowed_hosts,
    content_security_policy,
    host_name,
    hosts_from_env,
    origin_of,
    request_host_name,
)


@pytest.mark.parametrize(("header", "name"), [
    ("localhost:8050", "localhost"),
    ("LOCALHOST", "localhost"),
    ("127.0.0.1:8050", "127.0.0.1"),
    ("[::1]:8050", "::1"),
    ("[::1]", "::1"),
    ("[0:0:0:0:0:0:0:1]:80", "::1"),
    ("::1", "::1"),
    ("example.com.:8050", "example.com"),
    ("evil.example", "evil.example"),
])
def test_request_host_name_strips_port_and_brackets(header: str, name: str) -> None:
    assert request_host_name(header) == name


@pytest.mark.parametrize("header", ["", "[::1", "[::1]x", "a b", "[nonsense]:80", "x/y"])
def test_malformed_host_headers_name_nothing(header: str) -> None:
    assert request_host_name(header) is None


def test_allowed_hosts_are_loopback_bind_and_extra() -> None:
    assert allowed_hosts("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert "box.lan" in allowed_hosts("box.lan")
    for wildcard in ("0.0.0.0", "::", "[::]"):
        assert allowed_hosts(wildcard) == {"localhost", "127.0.0.1", "::1"}
    assert "dash.example" in allowed_hosts("0.0.0.0", ["Dash.Example."])
    assert hosts_from_env(" a.example, ,b.example ") == ["a.example", "b.example"]
    assert hosts_from_env(None) == []


@pytest.mark.parametrize("bad", ["http://x.example", "x.example:8050", "x.example/path", ""])
def test_allowed_host_refuses_ports_schemes_and_paths(bad: str) -> None:
    with pytest.raises(ValueError, match="without port or scheme"):
        host_name(bad)


def test_origin_of_drops_path_and_lowercases() -> None:
    assert origin_of("http://127.0.0.1:8050/") == "http://127.0.0.1:8050"
    assert origin_of("HTTPS://Dash.Example/x?y") == "https://dash.example"


def test_csp_allows_own_scripts_the_hashes_and_the_backend() -> None:
    csp = content_security_policy(["'sha256-abc='"], "https://api.example:8443/base")
    directives = dict(part.split(" ", 1) for part in csp.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self' 'sha256-abc='"
    assert "unsafe-eval" not in csp
    assert directives["connect-src"] == "'self' https://api.example:8443 wss://api.example:8443"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["img-src"] == "'self' data: blob:"
    assert directives["base-uri"] == directives["form-action"] == "'self'"
