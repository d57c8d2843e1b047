"""Token mode's pieces: the token-free address, the session store, download links."""

from __future__ import annotations

import pytest

from dashboard.links import download_path
from dashboard.sessions import SessionStore, without_token


def test_without_token_keeps_the_rest_of_the_query() -> None:
    assert without_token("/run/a", [("token", "t"), ("x", "1 2"), ("y", "")]) == "/run/a?x=1+2&y="
    assert without_token("/", [("token", "t")]) == "/"
    # Never a protocol-relative address: that would leave for another site.
    assert without_token("//evil.example/", []) == "/evil.example/"
    assert without_token("/\\evil.example", []) == "/evil.example"


def test_sessions_are_random_and_expire() -> None:
    store = SessionStore(lifetime=60)
    first, second = store.create(), store.create()
    assert first != second and len(first) >= 40
    assert store.valid(first) and not store.valid("forged") and not store.valid(None)
    expired = SessionStore(lifetime=0)
    assert not expired.valid(expired.create())


def test_sessions_are_bounded_oldest_first() -> None:
    store = SessionStore(limit=2)
    oldest, middle, newest = store.create(), store.create(), store.create()
    assert not store.valid(oldest) and store.valid(middle) and store.valid(newest)


def test_download_paths_go_through_the_dashboard() -> None:
    assert download_path("r-1", "csv") == "/download/r-1/csv"
    with pytest.raises(ValueError, match="download 'exe'"):
        download_path("r-1", "exe")
