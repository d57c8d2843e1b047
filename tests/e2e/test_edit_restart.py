"""Edit and restart from any run, in a real browser: real backend, real trainer, chromium.

A run page's text advice is acted on by editing the run's own config: the form opens with
that run's values (not its preset's), and Start makes a child linked to it.
"""

from __future__ import annotations

import re

import pytest
from utils.backend_server import BackendServer
from utils.dashboard_browser import DashboardPage, css_id, dict_id

RUN_URL = re.compile(r"/run/([^/?#]+)$")
PRESET_RADIO = "#_dbcprivate_radioitems_launch-preset_input_{}"
DATASET_RADIO = "#_dbcprivate_radioitems_launch-dataset_input_{}"


@pytest.fixture(scope="module")
def parent(stack: BackendServer) -> str:
    """A finished tiny synthetic run whose batch_size (64) is not its preset's (128)."""
    run_id = str(stack.create("synthetic", epochs=2, synthetic_samples=200, batch_size=64)["id"])
    assert stack.wait_finished(run_id, timeout=120)["status"] == "completed"
    return run_id


def field_value(page: DashboardPage, name: str) -> str:
    return str(page.field(name).get_attribute("value"))


def wait_run_values(page: DashboardPage) -> None:
    """Until the grid shows the parent's own batch_size: the form's first fill is done."""
    page.wait(lambda: field_value(page, "batch_size") == "64", 20,
              "the run's batch_size 64 in the form (the preset's is 128)")


def test_edit_and_restart_starts_a_linked_child_with_the_edited_config(
    page: DashboardPage, stack: BackendServer, parent: str
) -> None:
    page.open(f"/run/{parent}")
    page.click("#run-edit-restart")
    page.wait(lambda: page.driver.current_url.endswith(f"/new?from={parent}"), 20,
              "the edit form of the run")
    page.wait_loaded()
    wait_run_values(page)
    assert field_value(page, "epochs") == "2"
    assert field_value(page, "synthetic_samples") == "200"
    assert page.find(PRESET_RADIO.format("synthetic")).is_selected()
    page.wait(lambda: page.find(DATASET_RADIO.format("synthetic")).is_selected(), 10,
              "the run's dataset in the Data section")
    assert page.find("#launch-name").get_attribute("value") == f"{parent} · edit"
    note = page.text("#launch-edit-note")
    assert f"Editing a copy of run {parent}" in note, note
    assert "linked to it as a restart" in note, note
    link = page.find("#launch-edit-note a").get_attribute("href") or ""
    assert link.endswith(f"/run/{parent}"), link

    page.set_field("lambda_sparse", "0.002")
    page.click("#launch-start")
    child_id = page.wait(
        lambda: (m := RUN_URL.search(page.driver.current_url)) and m.group(1) != parent
        and m.group(1),
        60, f"the child's run page after Start (launch error: {page.text('#launch-error')!r})",
    )
    child = stack.run(child_id)
    assert child["parent_id"] == parent
    assert child["preset"] == "synthetic"
    assert child["name"] == f"{parent} · edit"
    config = child["config"]
    assert config["batch_size"] == 64, "the parent's own override is kept"
    assert config["lambda_sparse"] == 0.002, "the edited field is applied"
    assert (config["epochs"], config["synthetic_samples"]) == (2, 200)
    assert child_id in stack.run(parent)["children"]
    page.wait_loaded()
    page.assert_clean()
    # Leave no trainer running for the tests after this one (CPU is shared).
    stack.wait_finished(child_id, timeout=120)


def test_an_edit_form_names_a_refused_field_and_follows_another_preset(
    page: DashboardPage, stack: BackendServer, parent: str
) -> None:
    children = stack.run(parent)["children"]
    page.open(f"/new?from={parent}")
    wait_run_values(page)

    page.set_field("epochs", "abc")
    page.click("#launch-start")
    message = page.wait_text(css_id(dict_id("cfg-feedback", "epochs")), bool, 15,
                             "the message under epochs")
    assert "epochs" in message and "'abc'" in message, message
    assert "is-invalid" in (page.field("epochs").get_attribute("class") or "")
    banner = page.text("#launch-error")
    assert "Not started (field epochs)" in banner, banner
    assert page.driver.current_url.endswith(f"/new?from={parent}")
    assert stack.run(parent)["children"] == children, "a refused form must not start a run"

    # Another preset fills the grid and the data from that preset, as on a blank form.
    page.click(PRESET_RADIO.format("healthy"))
    page.wait(lambda: field_value(page, "batch_size") == "32", 20,
              "the healthy preset's batch_size 32")
    page.wait(lambda: page.find(DATASET_RADIO.format("uci")).is_selected(), 10,
              "the healthy preset's dataset")
    page.assert_clean()


@pytest.mark.parametrize("given", ["no-such-run", "..%2Fpresets"])
def test_an_unknown_run_to_edit_is_said_plainly(
    page: DashboardPage, stack: BackendServer, given: str
) -> None:
    page.open(f"/new?from={given}")
    shown = page.wait_text("#launch-edit-missing", bool, 15, "the not-found alert")
    assert "not found" in shown and "blank form" in shown, shown
    if given == "no-such-run":
        assert "run no-such-run not found" in shown, shown
    assert not page.find_all("#launch-start"), "no form for a run that does not exist"

    page.click("#launch-edit-missing a")
    page.wait(lambda: page.driver.current_url.endswith("/new"), 10, "the blank form")
    page.field("epochs")
    assert not page.find_all("#launch-edit-note")
    assert field_value(page, "batch_size") == "128"  # the standard preset's, nobody's edit
    page.assert_clean()
