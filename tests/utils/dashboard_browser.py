"""Headless Debian chromium driven by Selenium, and the waits the dashboard tests share.

Every wait is explicit and bounded: `DashboardPage.wait` polls a condition until it holds
and fails with what it waited for and what the page showed, never a bare timeout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    JavascriptException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from utils.processes import stop_process, wait_until_answers

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1600,1300",
)
# Text that must never reach a page: the dashboard turns every failure into a sentence.
LEAKS = ("Traceback", '{"detail"', "Internal Server Error")
# A moment that changes (a transient re-render, a node replaced under us): poll again.
_TRANSIENT = (NoSuchElementException, StaleElementReferenceException, JavascriptException)


def launch_chromium(profile_dir: Path, extra_args: tuple[str, ...] = ()) -> WebDriver:
    """A fresh headless chromium with its own profile, so no state leaks between tests."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (*CHROMIUM_ARGS, *extra_args):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    return driver


@contextmanager
def chromium(profile_dir: Path, extra_args: tuple[str, ...] = ()) -> Iterator[WebDriver]:
    """`launch_chromium` for one test, quit after it; a clear failure where it is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        found = shutil.which("chromium"), shutil.which("chromedriver")
        pytest.fail(
            f"browser tests need Debian's chromium and chromium-driver; missing {missing} "
            f"(on PATH: {found}). `make test` installs them (apt-get install chromium "
            "chromium-driver)."
        )
    driver = launch_chromium(profile_dir, extra_args)
    try:
        yield driver
    finally:
        driver.quit()


def dict_id(kind: str, name: str) -> str:
    """The DOM id Dash gives a pattern-matching id: JSON with sorted keys, no spaces."""
    return json.dumps({"name": name, "type": kind}, separators=(",", ":"), sort_keys=True)


def css_id(dom_id: str) -> str:
    """An attribute selector for any id, including Dash's JSON ids (`#` cannot quote them)."""
    return "[id=" + json.dumps(dom_id) + "]"


class DashboardPage:
    """One browser on one dashboard: navigation, waits, form fields, charts, hygiene checks."""

    def __init__(self, driver: WebDriver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url.rstrip("/")

    # --- navigation and waiting ------------------------------------------------------------

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)
        self.wait_loaded()

    def wait_loaded(self, timeout: float = 30) -> None:
        """Dash has rendered the page (the pages container holds the page's layout)."""
        self.wait(
            lambda: self.js(
                "const c = document.getElementById('_pages_content');"
                "return document.readyState === 'complete' && !!c && c.children.length > 0;"
            ),
            timeout, "the Dash page to render",
        )

    def wait(self, condition: Callable[[], T], timeout: float = 20, what: str = "") -> T:
        """Poll `condition` until it returns something truthy; that value is returned."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = condition()
                if last:
                    return last
            except _TRANSIENT as err:
                last = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:g} s waiting for {what or condition!r}; "
                    f"last value {last!r}; url {self.driver.current_url}; "
                    f"page text: {self.body_text()[:1500]!r}"
                )
            time.sleep(0.05)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def find(self, css: str, timeout: float = 20) -> WebElement:
        return self.wait(lambda: self.driver.find_element(By.CSS_SELECTOR, css), timeout,
                         f"element {css}")

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        """The element's rendered text now, or '' when it is not on the page.

        Read in one script call: Dash replaces nodes when it re-renders a panel, so a
        find-then-read could see a stale node in between.
        """
        return str(self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css
        ))

    def texts(self, css: str) -> list[str]:
        """The rendered text of every element matching `css`, read in one script call."""
        return [str(t) for t in self.js(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText);",
            css,
        )]

    def wait_text(self, css: str, predicate: Callable[[str], bool], timeout: float = 20,
                  what: str = "") -> str:
        def current() -> str | None:
            text = self.text(css)
            return text if predicate(text) else None
        return self.wait(current, timeout, what or f"text of {css}")

    def click(self, css: str, timeout: float = 20) -> None:
        """A real mouse click (pointer move, press, release) at the element's centre.

        The run page re-renders its header and alert cards on live events, replacing their
        nodes about once a second; on a busy machine a WebDriver round trip takes longer,
        so a click on an element *reference* would keep failing as stale. A user clicks a
        place on the screen, and so does this: the enabled check and the position are one
        script call, the press and release one input action.
        """
        def target() -> list[int] | None:
            return self.js(  # type: ignore[no-any-return]
                "const e = document.querySelector(arguments[0]);"
                "if (!e || e.disabled || e.classList.contains('disabled')) return null;"
                # instant: Bootstrap's `scroll-behavior: smooth` would move it after we measure
                "e.scrollIntoView({block: 'center', behavior: 'instant'});"
                "const r = e.getBoundingClientRect();"
                "const x = Math.round(r.left + r.width / 2), y = Math.round(r.top + r.height / 2);"
                "const hit = document.elementFromPoint(x, y);"  # nothing covers it
                "return hit && (e === hit || e.contains(hit)) ? [x, y] : null;",
                css,
            )
        x, y = self.wait(target, timeout, f"{css} to be clickable")
        actions = ActionBuilder(self.driver)
        actions.pointer_action.move_to_location(x, y)
        actions.pointer_action.click()
        actions.perform()

    def wait_still(self, css: str, quiet: float = 1.5, timeout: float = 30) -> None:
        """Until the node at `css` has stayed the same node for `quiet` seconds."""
        self.js(
            "const css = arguments[0];"
            "clearInterval(window.__stillTimer);"
            "window.__still = {node: document.querySelector(css), at: performance.now()};"
            "window.__stillTimer = setInterval(() => {"
            "  const e = document.querySelector(css);"
            "  if (e !== window.__still.node) window.__still = {node: e, at: performance.now()};"
            "}, 10);",
            css,
        )
        self.wait(
            lambda: self.js("return !!window.__still.node &&"
                            "       performance.now() - window.__still.at > arguments[0];",
                            quiet * 1000),
            timeout, f"{css} to stop being re-rendered for {quiet:g} s",
        )

    def body_text(self) -> str:
        try:
            return str(self.js("return document.body ? document.body.innerText : ''"))
        except Exception:
            return "<unavailable>"

    # --- the launch form -------------------------------------------------------------------

    def field(self, name: str) -> WebElement:
        return self.find(css_id(dict_id("cfg-field", name)))

    def feedback(self, name: str) -> WebElement:
        return self.find(css_id(dict_id("cfg-feedback", name)))

    def set_field(self, name: str, value: str) -> None:
        """Type into a config field the way a user does (select all, type over it)."""
        # The Data section pushes the grid below the fold: a user scrolls to it first. The
        # grid re-renders when the preset's values arrive, which can move the field between
        # the scroll and the click on a loaded machine: scroll again and retry then.
        deadline = time.monotonic() + 10
        while True:
            element = self.field(name)
            self.js("arguments[0].scrollIntoView({block: 'center'});", element)
            try:
                element.click()
                break
            except (ElementClickInterceptedException, StaleElementReferenceException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
        element.send_keys(value)
        self.wait(lambda: self.field(name).get_attribute("value") == value, 5,
                  f"field {name} to read {value!r}")

    # --- charts ----------------------------------------------------------------------------

    def trace_xs(self, css: str) -> list[list[Any]] | None:
        """The x values of each trace Plotly is drawing inside `css` (None: not drawn yet)."""
        return self.js(  # type: ignore[no-any-return]
            "const gd = document.querySelector(arguments[0] + ' .js-plotly-plot');"
            "return gd && gd.data ? gd.data.map(t => Array.from(t.x || [])) : null;",
            css,
        )

    # --- hygiene ---------------------------------------------------------------------------

    def assert_clean(self) -> None:
        """No traceback or raw JSON error on the page; no dashboard callback failed (HTTP 500)."""
        source = self.driver.page_source
        shown = self.body_text()
        for leak in LEAKS:
            assert leak not in source, f"{leak!r} in the page source of {self.driver.current_url}"
            assert leak not in shown, f"{leak!r} shown on {self.driver.current_url}: {shown[:800]}"
        failed = [
            entry["message"] for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" and "_dash-update-component" in entry["message"]
        ]
        assert not failed, f"dashboard callbacks failed: {failed}"

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), f"could not write {path}"


class DashboardProcess:
    """`python -m dashboard` alone, pointed at any backend URL (even one nobody serves)."""

    def __init__(self, port: int, api_url: str, log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.api_url = api_url
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> DashboardProcess:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "--port", str(self.port), "--api", self.api_url],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        wait_until_answers(
            self.url, self.process, lambda: self.log_path.read_text(errors="replace"),
            timeout=timeout, what="dashboard",
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=10)
