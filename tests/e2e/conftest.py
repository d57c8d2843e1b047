"""Browser-test fixtures: one real backend + dashboard pair, a fresh headless chromium per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from utils.backend_server import BackendServer, free_port
from utils.dashboard_browser import DashboardPage, chromium


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path) -> Iterator[BackendServer]:
    """`causalwatch up` serving the API and the dashboard on free loopback ports."""
    with BackendServer(
        tmp_path_factory.mktemp("e2e-stack"), uci_csv_path, max_runs=3, dashboard_port=free_port()
    ) as server:
        yield server


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


@pytest.fixture
def page(browser: WebDriver, stack: BackendServer) -> DashboardPage:
    assert stack.dashboard_url is not None
    return DashboardPage(browser, stack.dashboard_url)
