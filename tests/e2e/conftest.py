"""Browser-test fixtures: one real backend + dashboard pair, a fresh headless chromium per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from utils.backend_server import BackendServer, free_port
from utils.dashboard_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    DashboardPage,
    launch_chromium,
)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path) -> Iterator[BackendServer]:
    """`causalwatch up` serving the API and the dashboard on free loopback ports."""
    server = BackendServer(
        tmp_path_factory.mktemp("e2e-stack"), uci_csv_path, max_runs=3, dashboard_port=free_port()
    ).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        found = shutil.which("chromium"), shutil.which("chromedriver")
        pytest.fail(
            f"browser tests need Debian's chromium and chromium-driver; missing {missing} "
            f"(on PATH: {found}). `make test` installs them (apt-get install chromium "
            "chromium-driver)."
        )
    driver = launch_chromium(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver, stack: BackendServer) -> DashboardPage:
    assert stack.dashboard_url is not None
    return DashboardPage(browser, stack.dashboard_url)
