"""The pieces of access control that are pure functions: tickets, redaction, host names."""

from __future__ import annotations

import pytest

from backend.auth import mint_ticket, valid_ticket
from backend.origins import browser_origins, host_names, host_of
from backend.redact import REDACTED, redact
from backend.settings import Settings

SECRET = "admin-token-for-unit-tests-0123456789"


def test_a_ticket_is_valid_until_it_expires_and_only_under_its_secret() -> None:
    ticket = mint_ticket(SECRET, ttl_seconds=60, now=1_000.0)
    assert valid_ticket(SECRET, ticket, now=1_000.0)
    assert valid_ticket(SECRET, ticket, now=1_060.0)
    assert not valid_ticket(SECRET, ticket, now=1_061.0)  # expired
    assert not valid_ticket("another-secret-0123456789", ticket, now=1_000.0)
    assert not valid_ticket(None, ticket, now=1_000.0)  # no admin token: no tickets
    assert SECRET not in ticket


@pytest.mark.parametrize("forged", [
    "", "t1", "t1.x.y", "t1.1060", "t2.1060.abc", "t1.1060.abc.def", SECRET,
])
def test_malformed_or_foreign_tickets_open_nothing(forged: str) -> None:
    assert not valid_ticket(SECRET, forged, now=1_000.0)


def test_changing_the_expiry_breaks_the_signature() -> None:
    prefix, expires, signature = mint_ticket(SECRET, 60, now=1_000.0).split(".")
    assert not valid_ticket(SECRET, f"{prefix}.{int(expires) + 3600}.{signature}", now=1_000.0)


@pytest.mark.parametrize(("line", "kept"), [
    ('127.0.0.1:5 - "GET /ws/runs?token=abc.def-ghi HTTP/1.1" 101', '"GET /ws/runs?token='),
    ("GET /api/runs/x/log?a=1&token=s3cret&b=2", "&b=2"),
    ("Authorization: Bearer s3cret", "Authorization: Bearer "),
    ("CAUSALWATCH_TOKEN=s3cret causalwatch up", "CAUSALWATCH_TOKEN="),
])
def test_tokens_are_redacted_from_log_lines(line: str, kept: str) -> None:
    out = redact(line)
    assert "s3cret" not in out and "abc.def-ghi" not in out
    assert REDACTED in out and kept in out


def test_host_names_and_origins(tmp_path: object) -> None:
    settings = Settings(host="0.0.0.0", port=8000, dashboard_port=8050,
                        allowed_hosts=["Lab.Example"], runs_dir=str(tmp_path))
    names = host_names(settings)
    assert {"localhost", "127.0.0.1", "::1", "lab.example"} <= names
    assert "0.0.0.0" not in names  # a wildcard bind is not a name a page uses
    origins = browser_origins(settings)
    assert "http://lab.example:8050" in origins and "http://[::1]:8000" in origins
    assert "http://evil.example:8050" not in origins
    assert [host_of(h) for h in ("LOCALHOST:8000", "[::1]:8050", "::1", "evil.example")] == [
        "localhost", "::1", "::1", "evil.example"]
