"""Lineage labels and the metric Compare opens on, as pure functions (no browser)."""

from __future__ import annotations

from typing import Any

from dashboard.compare_metric import DEFAULT_METRIC, alert_metric, opening_metric
from dashboard.labels import change_parts, lineage_labels

BASE = {"standardize": False, "lambda_recon": 10.0, "lambda_sparse": 1e-5,
        "learning_rate_max": 5e-4, "sparsify_method": "topk", "epochs": 100}
ROOT_ID = "20261128-071437-standard-c8829a"


def run(run_id: str, *, parent: dict[str, Any] | None = None, name: str | None = None,
        **config: Any) -> dict[str, Any]:
    default_name = f"{parent.get('name') or parent['id']} · fix something" if parent else None
    return {"id": run_id, "preset": "standard", "parent_id": parent["id"] if parent else None,
            "name": name or default_name, "config": {**BASE, **config}}


def test_a_family_reads_as_its_preset_and_what_each_restart_changed() -> None:
    root = run(ROOT_ID)
    child = run("20261128-071500-standard-aaaaaa", parent=root, standardize=True)
    grandchild = run("20261128-071600-standard-bbbbbb", parent=child, standardize=True,
                     lambda_recon=1.0, lambda_sparse=1e-6)
    labels = lineage_labels([root, child, grandchild])
    assert labels == {
        root["id"]: "standard",
        child["id"]: "standard → +standardize",
        grandchild["id"]: "standard → +standardize → λ ×0.1",
    }


def test_labels_are_unique_and_user_names_are_kept() -> None:
    a, b = run("x-111111"), run("x-222222")
    named = run("x-333333", name="baseline on raw data")
    labels = lineage_labels([a, b, named])
    assert labels["x-111111"] == "standard · 111111" and labels["x-222222"] == "standard · 222222"
    assert labels["x-333333"] == "baseline on raw data"
    # A restart without a config change keeps its restart label; an unknown parent shows as "…".
    same = run("x-444444", parent=a)
    orphan = {**run("x-555555"), "parent_id": "gone", "name": "gone · fix clip_high"}
    labels = lineage_labels([a, same, orphan])
    assert labels["x-444444"] == "standard → fix something"
    assert labels["x-555555"] == "standard → … → fix clip_high"


def test_change_parts_name_each_change_in_a_few_characters() -> None:
    assert change_parts(BASE, {**BASE, "standardize": True}) == ["+standardize"]
    assert change_parts({**BASE, "standardize": True}, BASE) == ["−standardize"]
    assert change_parts(BASE, {**BASE, "sparsify_method": "sigmoid"}) == ["sparsify_method sigmoid"]
    assert change_parts(BASE, {**BASE, "learning_rate_max": 1e-4}) == ["LR_max 1e-4"]
    # λs moved by different factors are no rescale: each is named.
    assert change_parts(BASE, {**BASE, "lambda_recon": 5.0, "lambda_sparse": 1e-3}) == [
        "λ_recon 5", "λ_sparse 0.001"]


def test_compare_opens_on_the_metric_of_the_fixed_flag() -> None:
    alert = {"id": 7, "rule": "clip_high", "metric": "clip_pct"}  # as GET .../alerts gives it
    assert alert_metric(alert) == "clip_pct"
    assert alert_metric({"id": 8, "rule": "near_deterministic", "metric": None}) is None

    parent = {"id": "p", "parent_id": None, "parent_alert_id": None}
    child = {"id": "c", "parent_id": "p", "parent_alert_id": 7}
    alerts = {"p": [alert]}
    assert opening_metric([parent, child], alerts.__getitem__) == "clip_pct"
    # A restart by hand, or a flag about no metric Compare draws: the headline score.
    assert opening_metric([parent], alerts.__getitem__) == DEFAULT_METRIC
    silent = {"p": [{"id": 7, "rule": "regularizers_silent", "metric": "share_regularizers"}]}
    assert opening_metric([parent, child], silent.__getitem__) == DEFAULT_METRIC
