"""Browser-test fixtures: one real backend + dashboard pair, a fresh headless chromium per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from utils.backend_server import BackendServer, free_port
from utils.dashboard_browser import DashboardPage, chromium
from utils.stream_trainer import EPOCH_SECONDS_ENV


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path) -> Iterator[BackendServer]:
    """`causalwatch up` serving the API and the dashboard on free loopback ports.

    Its trainers are the streaming stand-in (utils/stream_trainer.py): the pages follow a
    run's stream, and what the model learns is not theirs to test. `real_stack` trains.
    Paced at a real synthetic epoch's 0.3 s, so a page sees a short run grow.
    """
    with BackendServer(
        tmp_path_factory.mktemp("e2e-stack"), uci_csv_path, max_runs=3, dashboard_port=free_port(),
        trainer="stream", env={EPOCH_SECONDS_ENV: "0.3"},
    ) as server:
        yield server


@pytest.fixture
def real_stack(tmp_path: Path, uci_csv_path: Path) -> Iterator[BackendServer]:
    """A stack of its own whose trainers train: for red flags only a real model raises."""
    with BackendServer(
        tmp_path, uci_csv_path, max_runs=3, dashboard_port=free_port()
    ) as server:
        yield server


@pytest.fixture
def real_page(browser: WebDriver, real_stack: BackendServer) -> DashboardPage:
    assert real_stack.dashboard_url is not None
    return DashboardPage(browser, real_stack.dashboard_url)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


@pytest.fixture
def page(browser: WebDriver, stack: BackendServer) -> DashboardPage:
    assert stack.dashboard_url is not None
    return DashboardPage(browser, stack.dashboard_url)
