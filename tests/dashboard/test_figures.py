"""Figures and page pieces as pure functions, without a browser."""

from __future__ import annotations

import httpx

from dashboard.client import _error_from
from dashboard.components import config_diff, parse_field, runs_table_rows
from dashboard.figures import EVAL_FIELDS, adjacency_figure, compare_figure, live_figures


def records(n: int) -> list[dict]:
    out = []
    for epoch in range(1, n + 1):
        evaluated = epoch % 2 == 0
        out.append({
            "epoch": epoch, "clip_pct": 100.0 - epoch, "loss_total": 10.0 / epoch,
            "loss_recon": 9.0 / epoch, "loss_sparse": 0.5, "loss_acyclic": 0.0, "loss_disen": 0.1,
            "share_recon": 90.0, "share_sparse": 5.0, "share_acyclic": 0.0, "share_disen": 5.0,
            "logit_std": 0.01 * epoch, "lr": 1e-4, "edges_at_05": 3, "edges_tuned": 2,
            "edges_topk": 13, **{f: (0.5 if evaluated else None) for f in EVAL_FIELDS},
            "shd": 10 if evaluated else None,
        })
    return out


def test_every_live_trace_names_its_record_field_and_skips_missing_values() -> None:
    figs = live_figures(records(6), 13, "plausibility reference")
    assert set(figs) == {"clip", "loss-shares", "loss-total", "logit-std", "lr", "edges",
                         "accuracy"}
    for fig in figs.values():
        for trace in fig.data:
            field = trace.meta["field"]
            if field in EVAL_FIELDS:
                assert list(trace.x) == [2, 4, 6], field  # evaluation epochs only
            else:
                assert list(trace.x) == [1, 2, 3, 4, 5, 6], field
    assert "plausibility reference" in figs["accuracy"].layout.title.text


def test_empty_figures_keep_their_structure_for_live_extension() -> None:
    figs = live_figures([], 13, "ground truth")
    assert all(len(fig.data) >= 1 for fig in figs.values())
    assert all(len(trace.x) == 0 for fig in figs.values() for trace in fig.data)
    shapes = figs["clip"].layout.shapes
    assert sorted(s.y0 for s in shapes) == [5, 10, 50]  # the success-criteria guide lines


def test_adjacency_heatmaps_place_reference_edges() -> None:
    graph = {"epoch": 4, "probabilities": [[0, 0.9, 0.1], [0.2, 0, 0.3], [0.4, 0.5, 0]]}
    fig = adjacency_figure(graph, ["a", "b", "c"], [["a", "b"], ["c", "a"]])
    learned, reference = fig.data
    assert learned.z[0][1] == 0.9
    assert reference.z[0][1] == 1 and reference.z[2][0] == 1 and sum(map(sum, reference.z)) == 2
    assert "epoch 4" in fig.layout.annotations[0].text


def test_compare_overlays_one_trace_per_run() -> None:
    fig = compare_figure({"parent": records(500), "child": records(300)}, "f1")
    assert [t.name for t in fig.data] == ["parent", "child"]
    assert len(fig.data[0].x) == 250  # F1 exists on evaluation epochs only
    assert {t.mode for t in fig.data} == {"lines+markers"}  # 400 evaluations: markers
    clip = compare_figure({"a": records(500)}, "clip_pct")
    assert len(clip.data[0].x) == 500 and clip.data[0].mode == "lines"
    many = compare_figure({str(i): records(500) for i in range(10)}, "f1")
    assert {t.mode for t in many.data} == {"lines"}  # 2,500 evaluations: lines only


def test_empty_live_figures_are_built_once_per_reference() -> None:
    from dashboard.figures import empty_live_figures

    assert empty_live_figures(13, "ground truth") is empty_live_figures(13, "ground truth")


def test_form_values_parse_to_json_types() -> None:
    assert parse_field("3e-5") == 3e-5
    assert parse_field("12") == 12
    assert parse_field("True") is True
    assert parse_field("") is None
    assert parse_field("sigmoid") == "sigmoid"
    assert parse_field("abc") == "abc"  # the backend names the field it refuses


def test_config_diff_shows_old_and_new_values() -> None:
    html = str(config_diff({"standardize": False}, {"standardize": True}))
    assert "standardize" in html and "False" in html and "True" in html
    assert "no config change" in str(config_diff({}, {}))


def test_runs_table_rows_link_runs_and_parents() -> None:
    rows = runs_table_rows([{
        "id": "b", "name": None, "status": "running", "preset": "uci", "last_epoch": 3,
        "epochs_total": 10, "best_f1": 0.12345, "best_shd": 9, "open_alerts": 2,
        "created_at": "2026-11-24T10:00:00Z", "started_at": None, "parent_id": "a",
    }])
    assert rows[0]["run"] == "[b](/run/b)" and rows[0]["parent"] == "[a](/run/a)"
    assert rows[0]["progress"] == "3/10" and rows[0]["best_f1"] == 0.123


def test_backend_errors_become_one_sentence_with_the_field() -> None:
    resp = httpx.Response(422, json={"detail": [
        {"msg": "epochs: must be >= 1", "field": "overrides.epochs", "loc": ["body"]}]})
    err = _error_from(resp)
    assert err.message == "epochs: must be >= 1" and err.field == "overrides.epochs"
    plain = _error_from(httpx.Response(500, text="<html>oops</html>"))
    assert plain.message == "the backend answered 500" and "<html>" not in plain.message
