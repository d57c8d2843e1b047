"""The runs list, the Compare picker and the new-run form as a first-time user meets them, in
a real browser: an empty list says where to start, the list fits a laptop screen, runs of
one family read apart, and the form shows only what the chosen data needs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from utils.backend_server import BackendServer, free_port
from utils.dashboard_browser import DashboardPage, css_id, dict_id

RUN_URL = re.compile(r"/run/([^/?#]+)$")
LAPTOP_WIDTH = 1400
DATASET_RADIO = "#_dbcprivate_radioitems_launch-dataset_input_{}"


def box(name: str) -> str:
    return css_id(dict_id("cfg-box", name))


def shown(page: DashboardPage, css: str) -> bool:
    return bool(page.js("const e = document.querySelector(arguments[0]);"
                        "return !!e && e.offsetParent !== null;", css))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path
          ) -> Iterator[BackendServer]:
    """A backend and dashboard that have never seen a run."""
    server = BackendServer(tmp_path_factory.mktemp("fresh-stack"), uci_csv_path,
                           dashboard_port=free_port()).start()
    try:
        yield server
    finally:
        server.close()


def lineage(label: str) -> str:
    """A label without the id suffix added when another listed run has the same one."""
    return label.split(" · ", maxsplit=1)[0]


@pytest.fixture(scope="module")
def family(stack: BackendServer) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stopped `standard` run and its restart with standardize on, stopped too."""
    parent = stack.create_sdk("standard", epochs=5)
    assert stack.client.post(f"/api/runs/{parent['id']}/stop").status_code == 200
    resp = stack.client.post(f"/api/runs/{parent['id']}/restart",
                             json={"overrides": {"standardize": True}})
    assert resp.status_code == 201, resp.text
    child = resp.json()
    assert stack.client.post(f"/api/runs/{child['id']}/stop").status_code == 200
    stack.wait_finished(child["id"], timeout=60)
    # The default name repeats the parent's: the ids' shared prefix is what made rows alike.
    assert child["name"].startswith(parent["id"])
    return parent, child


def test_an_empty_runs_list_points_to_a_first_run(browser: WebDriver, fresh: BackendServer
                                                  ) -> None:
    assert fresh.dashboard_url is not None
    page = DashboardPage(browser, fresh.dashboard_url)
    page.open("/")
    hint = page.wait_text("#runs-empty", lambda t: "No runs yet" in t, 15, "the empty-list hint")
    assert "standard" in hint and "red flags" in hint, hint
    hrefs = [a.get_attribute("href") or "" for a in page.find_all("#runs-empty a")]
    assert any(h.endswith("/new?preset=standard") for h in hrefs), hrefs
    assert any(h.endswith("/new") for h in hrefs), hrefs
    assert not shown(page, "#runs-table table"), "no empty table under the hint"
    # Nothing to act on yet: both selection buttons are disabled, and look it.
    for button in ("#runs-compare", "#runs-stop"):
        assert page.find(button).get_attribute("disabled") is not None, button
    page.click("#runs-empty a")
    page.wait(lambda: "/new" in page.driver.current_url, 10, "the new-run form")
    page.assert_clean()


def test_the_runs_list_fits_a_laptop_and_tells_a_family_apart(
    page: DashboardPage, stack: BackendServer, family: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    parent, child = family
    page.driver.set_window_size(LAPTOP_WIDTH, 1000)
    page.open("/")
    parent_link = f"#runs-table a[href='/run/{parent['id']}']"
    child_link = f"#runs-table td[data-dash-column='run'] a[href='/run/{child['id']}']"
    page.wait(lambda: page.text(parent_link) and page.text(child_link), 20,
              "the parent and child rows")
    # Other runs of the session's stack may share a label: then the id's end is added.
    labels = [page.text(parent_link), page.text(child_link)]
    assert [lineage(label) for label in labels] == ["standard", "standard → +standardize"]
    assert labels[0] != labels[1]

    widths = page.js("const d = document.documentElement,"
                     "      t = document.querySelector('#runs-table .dash-spreadsheet-container');"
                     "return [d.scrollWidth, d.clientWidth, t.scrollWidth, t.clientWidth];")
    assert widths[0] <= widths[1] and widths[2] <= widths[3], f"scrolls sideways: {widths}"
    # The filter row has no case-sensitivity toggles ("Aa").
    assert not [e for e in page.find_all("#runs-table .dash-filter--case") if e.is_displayed()]

    for button in ("#runs-compare", "#runs-stop"):
        assert page.find(button).get_attribute("disabled") is not None, button
    page.click(f"#runs-table tr:has(a[href='/run/{child['id']}']) input[type='checkbox']")
    page.wait(lambda: page.find("#runs-compare").get_attribute("disabled") is None, 10,
              "Compare selected enabled by a ticked row")
    assert page.find("#runs-stop").get_attribute("disabled") is None
    page.assert_clean()


def test_the_run_page_is_titled_by_lineage_with_the_full_name_beside(
    page: DashboardPage, family: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, child = family
    page.open(f"/run/{child['id']}")
    title = page.wait_text("#run-title", bool, 20, "the run page's title")
    assert lineage(title) == "standard → +standardize", title
    assert page.find("#run-title").get_attribute("title") == child["name"]  # the tooltip
    assert page.text("#run-full-name") == child["name"]
    page.assert_clean()


def test_compare_names_runs_by_lineage_and_shows_only_the_hint_when_empty(
    page: DashboardPage, family: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    parent, child = family
    page.open(f"/compare?runs={parent['id']},{child['id']}")
    names = page.wait(lambda: page.js(
        "const gd = document.querySelector('#compare-graph .js-plotly-plot');"
        "return gd && gd.data && gd.data.length === 2 ? gd.data.map(t => t.name) : null;"),
        20, "two runs overlaid")
    assert [lineage(name) for name in names] == ["standard", "standard → +standardize"], names
    picker = page.text("#compare-runs")
    assert f"{names[1]} (stopped)" in picker, picker
    assert not page.find_all("#compare-metric input"), "the metric picker has no search box"

    page.open("/compare")
    page.wait_text("#compare-config", lambda t: "Pick runs to compare" in t, 15, "the hint")
    page.wait(lambda: not shown(page, "#compare-graph"), 5, "no empty axes above the hint")
    page.assert_clean()


def test_the_form_shows_the_chosen_datas_fields_and_a_tristate_standardize(
    page: DashboardPage, stack: BackendServer
) -> None:
    page.driver.set_window_size(LAPTOP_WIDTH, 900)
    page.open("/new?preset=standard")
    page.wait(lambda: shown(page, box("standardize")), 20, "the config fields")
    # `standard` runs on UCI: no synthetic_* fields, no CSV pickers.
    assert page.find(DATASET_RADIO.format("uci")).is_selected()
    for name in ("synthetic_samples", "synthetic_nodes", "csv_separator"):
        assert not shown(page, box(name)), f"{name} shown for uci"
    assert not shown(page, "#launch-data-file")
    page.click(DATASET_RADIO.format("synthetic"))
    page.wait(lambda: shown(page, box("synthetic_samples")), 10, "synthetic fields")
    assert not shown(page, box("csv_separator"))
    page.click(DATASET_RADIO.format("csv"))
    page.wait(lambda: shown(page, box("csv_separator")) and shown(page, "#launch-data-file"),
              10, "csv fields")
    assert not shown(page, box("synthetic_samples"))
    page.click(DATASET_RADIO.format("uci"))
    page.wait(lambda: not shown(page, box("csv_separator")), 10, "csv fields hidden again")

    # standardize: auto / on / off, the preset's off chosen; picking on marks it changed.
    select = Select(page.field("standardize"))
    offered = [o.text for o in select.options if o.text]  # dbc.Select adds a blank first
    assert offered == ["auto (the dataset's default)", "on", "off"], offered
    assert select.first_selected_option.text == "off"
    assert "field-changed" not in (page.find(box("standardize")).get_attribute("class") or "")
    page.js("arguments[0].scrollIntoView({block: 'center'});", page.field("standardize"))
    select.select_by_visible_text("on")
    page.wait(lambda: "field-changed" in (page.find(box("standardize")).get_attribute("class")
                                          or ""), 10, "standardize marked as changed")
    assert "preset: off" in page.text(css_id(dict_id("cfg-preset", "standardize")))

    # Start stays in sight at the bottom of the form.
    page.js("window.scrollTo(0, document.body.scrollHeight);")
    top = page.js("return document.getElementById('launch-start').getBoundingClientRect().top")
    assert 0 <= top < page.js("return window.innerHeight"), top
    page.set_field("epochs", "2")
    page.click("#launch-start")
    run_id = page.wait(lambda: (m := RUN_URL.search(page.driver.current_url)) and m.group(1),
                       60, f"the run page (launch error: {page.text('#launch-error')!r})")
    try:
        assert stack.run(run_id)["config"]["standardize"] is True
    finally:
        stack.client.post(f"/api/runs/{run_id}/stop")
        stack.wait_finished(run_id, timeout=60)
    page.assert_clean()
