"""Figures and page pieces as pure functions, without a browser."""

from __future__ import annotations

import copy
import math
from functools import partial
from typing import Any

import httpx
from utils.records import epoch_record

from dashboard import figures, ids
from dashboard.client import _error_from
from dashboard.components import (
    best_checkpoint_text,
    config_diff,
    max_f1_text,
    parse_field,
    probe_rows,
    run_reference,
    runs_table_rows,
    scorecard_table,
)
from dashboard.figures import (
    LIVE_MARKER_LIMIT,
    MODEBAR_PX,
    NO_REFERENCE_NOTE,
    TITLE_PX,
    adjacency_figure,
    compare_figure,
    level_guides,
)
from trainer.protocol import EVAL_FIELDS
from trainer.protocol import LOSS_TERMS as SHARES

# The run page passes the loss terms GET /api/record-fields serves: the protocol's.
live_figures = partial(figures.live_figures, terms=SHARES)
empty_live_figures = partial(figures.empty_live_figures, terms=SHARES)

# Optional record fields: records of older trainers lack them (here: the first two epochs).
HEALTH_FIELDS = ("grad_norm_recon", "grad_norm_sparse", "grad_norm_acyclic", "grad_norm_disen",
                 "update_ratio")
FIRST_WITH_HEALTH = 3


def records(n: int) -> list[dict]:
    """A run's rows as the API serves them: curves that move, the newer health fields from
    epoch FIRST_WITH_HEALTH on, the scores on even epochs."""
    return [
        epoch_record(
            epoch, evaluated=epoch % 2 == 0, clip_pct=100.0 / epoch, loss_total=10.0 / epoch,
            loss_recon=9.0 / epoch, logit_std=0.01 * epoch,
            **{f: (1e-3 * epoch if epoch >= FIRST_WITH_HEALTH else None) for f in HEALTH_FIELDS},
        )
        for epoch in range(1, n + 1)
    ]


def test_every_live_trace_names_its_record_field_and_skips_missing_values() -> None:
    figs = live_figures(records(6), 13, "plausibility reference", 1.0)
    assert set(figs) == set(ids.LIVE_GRAPHS)
    for fig in figs.values():
        for trace in fig.data:
            field = trace.meta["field"]
            if field in EVAL_FIELDS:
                assert list(trace.x) == [2, 4, 6], field  # evaluation epochs only
            elif field in HEALTH_FIELDS:
                assert list(trace.x) == [3, 4, 5, 6], field  # nulls left out, not zeros
                assert None not in trace.y, field
            else:
                assert list(trace.x) == [1, 2, 3, 4, 5, 6], field
    assert "plausibility reference" in figs["accuracy"].layout.title.text


def test_gradient_norm_per_term_shows_each_term_and_the_clip_threshold() -> None:
    fig = live_figures(records(6), 13, "ground truth", 0.5)["grad-terms"]
    assert [t.meta["field"] for t in fig.data] == [
        "grad_norm_recon", "grad_norm_sparse", "grad_norm_acyclic", "grad_norm_disen"]
    assert [t.name for t in fig.data] == ["recon", "sparse", "acyclic", "disen"]
    assert fig.layout.yaxis.type == "log"
    (guide,) = fig.layout.shapes
    assert (guide.y0, guide.y1, guide.line.dash) == (0.5, 0.5, "dash")
    (label,) = fig.layout.annotations
    # On a log axis an annotation is placed in log10 units, a shape in data units.
    assert label.y == math.log10(0.5) and "0.5" in label.text
    without = live_figures(records(6), 13, "ground truth")["grad-terms"]
    assert not without.layout.shapes and not without.layout.annotations


def test_update_ratio_is_one_line_on_a_log_axis() -> None:
    fig = live_figures(records(4), 13, "ground truth", 1.0)["update-ratio"]
    assert fig.layout.yaxis.type == "log"
    (trace,) = fig.data
    assert trace.meta["field"] == "update_ratio" and list(trace.y) == [3e-3, 4e-3]


def test_runs_without_the_new_fields_still_chart() -> None:
    old = [{k: v for k, v in r.items() if k not in HEALTH_FIELDS} for r in records(6)]
    figs = live_figures(old, 13, "ground truth", 1.0)
    assert all(len(t.x) == 0 for name in ("grad-terms", "update-ratio")
               for t in figs[name].data)
    assert len(figs["clip"].data[0].x) == 6


def test_empty_figures_keep_their_structure_for_live_extension() -> None:
    from backend.thresholds import as_dict

    figs = live_figures([], 13, "ground truth", None, level_guides(as_dict()))
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


def unscored(n: int) -> list[dict]:
    """Records of a run without a reference graph: no SHD, F1, precision or recall."""
    return [{**r, "shd": None, "f1": None, "precision": None, "recall": None,
             "f1_skeleton": None} for r in records(n)]


def test_without_a_reference_the_accuracy_chart_is_a_note() -> None:
    figs = live_figures(unscored(6), None, "none", 1.0)
    assert set(figs) == set(ids.LIVE_GRAPHS)  # every live output still has its graph
    accuracy = figs["accuracy"]
    assert len(accuracy.data) == 0  # nothing for the live extension to draw into
    (note,) = accuracy.layout.annotations
    assert note.text == NO_REFERENCE_NOTE == "no reference graph: SHD/F1 not computed"
    assert not accuracy.layout.shapes  # no "SHD n = empty graph" or F1 guide lines
    assert "vs the" not in accuracy.layout.title.text
    assert len(figs["clip"].data[0].x) == 6  # the other charts are unchanged
    empty = empty_live_figures(None, "none")
    assert empty["accuracy"]["data"] == [] and empty is empty_live_figures(None, "none")
    with_reference = live_figures(records(6), 13, "ground truth")["accuracy"]
    assert [t.meta["field"] for t in with_reference.data] == ["shd", "f1", "f1_skeleton"]


def test_adjacency_without_a_reference_draws_the_learned_graph_alone() -> None:
    graph = {"epoch": 4, "probabilities": [[0, 0.9, 0.1], [0.2, 0, 0.3], [0.4, 0.5, 0]]}
    fig = adjacency_figure(graph, ["a", "b", "c"], None)
    (learned,) = fig.data
    assert learned.z[0][1] == 0.9
    (title,) = fig.layout.annotations
    assert "epoch 4" in title.text and "no reference graph" in title.text
    assert "reference graph" not in [a.text for a in fig.layout.annotations]
    waiting = adjacency_figure(None, None, None)
    assert not waiting.data and "waiting" in waiting.layout.annotations[0].text


def test_a_run_reference_is_what_the_api_serves() -> None:
    # The size comes from the run's reference_size (backend/scorecard.py decides it).
    csv_config = {"dataset": "csv", "data_file": "x.csv", "reference_file": None}
    no_reference = {"config": csv_config, "data": None, "has_reference": False,
                    "reference_size": None}
    assert run_reference(no_reference) == (None, "none")
    user = {"reference_kind": "user reference graph", "reference_edges": [["a", "b"]]}
    assert run_reference({"config": csv_config, "data": user, "has_reference": True,
                          "reference_size": 1}) == (1, "user reference graph")
    assert run_reference({"config": {"dataset": "uci"}, "data": None, "has_reference": True,
                          "reference_size": 13}) == (13, "plausibility reference")


def test_scorecard_shows_not_applicable_criteria() -> None:
    card = {"levels": [{"level": "Minimum", "achieved": True, "criteria": [
        {"name": "clip_pct", "description": "clip_pct at most 50 from epoch 20",
         "status": "met", "observed": 0.0},
        {"name": "f1", "description": "no reference graph: f1 not computed",
         "status": "n/a", "observed": None},
    ]}]}
    html = str(scorecard_table(card))
    assert "n/a" in html and "no reference graph" in html and "color='light'" in html
    assert "achieved" in html


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
    assert empty_live_figures(13, "ground truth") is empty_live_figures(13, "ground truth")
    assert empty_live_figures(13, "ground truth", 0.5) is empty_live_figures(
        13, "ground truth", 0.5)
    assert empty_live_figures(13, "ground truth", 0.5) is not empty_live_figures(
        13, "ground truth", 1.0)  # the clip threshold's guide line differs


def test_form_values_parse_to_json_types() -> None:
    assert parse_field("3e-5") == 3e-5
    assert parse_field("12") == 12
    assert parse_field("True") is True
    assert parse_field("") is None
    assert parse_field("sigmoid") == "sigmoid"
    assert parse_field("abc") == "abc"  # the backend names the field it refuses


def test_config_diff_shows_old_and_new_values() -> None:
    html = str(config_diff({"standardize": False}, {"standardize": True}))
    # Booleans as JSON and the launch form spell them; a missing value as a dash.
    assert "standardize" in html and "'false'" in html and "'true'" in html
    assert "'—'" in str(config_diff({}, {"stop_after_epochs": 40}))
    assert "no config change" in str(config_diff({}, {}))


# The best checkpoint (lowest val_recon) at epoch 4 has a lower F1 than epoch 8 reached.
SCORED_RUN = {
    "id": "b", "name": None, "status": "running", "preset": "uci", "last_epoch": 9,
    "epochs_total": 10, "best_epoch": 4, "f1_at_best": 0.12345, "shd_at_best": 9,
    "max_f1_seen": 0.45678, "max_f1_epoch": 8, "best_f1": 0.12345, "best_shd": 9,
    "open_alerts": 2, "created_at": "2026-11-24T10:00:00Z", "started_at": None,
    "parent_id": "a",
}


def test_runs_table_rows_link_runs_and_parents() -> None:
    (row,) = runs_table_rows([SCORED_RUN])
    # Its parent is not in the list: the preset, an ellipsis for the unknown chain, the step.
    assert row["run"] == "[uci → … → restart](/run/b)" and row["parent"] == "[a](/run/a)"
    assert row["progress"] == "9/10"
    assert (row["best_epoch"], row["f1_at_best"], row["shd_at_best"]) == (4, 0.12, 9)
    assert row["max_f1_seen"] == 0.46  # two decimals, as the run page shows it
    assert "best_f1" not in row  # only the labelled names reach the page


def test_f1_at_the_best_checkpoint_and_max_f1_are_labelled_apart() -> None:
    assert best_checkpoint_text(SCORED_RUN) == "epoch 4: F1 0.12, SHD 9"
    assert max_f1_text(SCORED_RUN) == "0.46 (epoch 8)"
    fresh = {**SCORED_RUN, "best_epoch": None, "f1_at_best": None, "shd_at_best": None,
             "max_f1_seen": None, "max_f1_epoch": None}
    assert best_checkpoint_text(fresh) == "no best checkpoint yet"
    assert max_f1_text(fresh) == "—"
    no_reference = {**SCORED_RUN, "f1_at_best": None, "shd_at_best": None}
    assert best_checkpoint_text(no_reference) == "epoch 4: F1 —, SHD —"


def test_compare_draws_gradient_norms_and_update_ratio_on_a_log_axis() -> None:
    for metric in (*HEALTH_FIELDS, "loss_total"):
        assert compare_figure({"a": records(4)}, metric).layout.yaxis.type == "log", metric
    assert compare_figure({"a": records(4)}, "clip_pct").layout.yaxis.type != "log"


def test_backend_errors_become_one_sentence_with_the_field() -> None:
    resp = httpx.Response(422, json={"detail": [
        {"msg": "epochs: must be >= 1", "field": "overrides.epochs", "loc": ["body"]}]})
    err = _error_from(resp)
    assert err.message == "epochs: must be >= 1" and err.field == "overrides.epochs"
    plain = _error_from(httpx.Response(500, text="<html>oops</html>"))
    assert plain.message == "the backend answered 500" and "<html>" not in plain.message


def test_level_guides_come_from_the_backends_thresholds() -> None:
    from backend.thresholds import as_dict

    guides = level_guides(as_dict())
    figs = live_figures(records(4), 13, "ground truth", 1.0, guides)

    def lines(fig: Any) -> list[float]:
        return sorted(shape.y0 for shape in fig.layout.shapes)

    assert lines(figs["clip"]) == [5.0, 10.0, 50.0]
    assert lines(figs["logit-std"]) == [0.05, 0.1, 0.2]
    assert lines(figs["accuracy"]) == [0.2, 0.4, 0.5, 13]
    labels = [a.text for a in figs["clip"].layout.annotations]
    assert "50% minimum" in labels and "10% good" in labels
    # Other thresholds move the lines: nothing is written twice.
    moved = copy.deepcopy(as_dict())  # its nested dicts are the backend's own
    moved["level_targets"]["clip_pct"]["by_level"]["Good"] = 20.0
    assert 20.0 in lines(live_figures([], 13, "ground truth", 1.0, level_guides(moved))["clip"])


def test_the_f1_axis_has_nice_ticks_from_0_to_1() -> None:
    fig = live_figures(records(6), 13, "ground truth")["accuracy"]
    f1 = fig.layout.yaxis2
    assert f1.title.text == "F1" and list(f1.range) == [0, 1.05]
    # Not Plotly's ticks synced to the SHD axis (0.206, 0.413, 0.619, ...).
    assert (f1.tickmode, f1.tick0, f1.dtick) == ("linear", 0, 0.2)
    assert f1.showgrid is False  # one grid, the SHD axis's


def test_loss_shares_are_lines_on_a_log_axis_so_tiny_shares_show() -> None:
    rows = [{**r, "share_recon": 100.0 - 3e-8, "share_sparse": 1e-8, "share_disen": 2e-8}
            for r in records(6)]
    fig = live_figures(rows, 13, "ground truth")["loss-shares"]
    assert fig.layout.yaxis.type == "log"
    assert all(t.stackgroup is None for t in fig.data)  # not a 0–100% stack
    assert [t.meta["field"] for t in fig.data] == [f"share_{t}" for t in SHARES]
    assert list(fig.data[1].y) == [1e-8] * 6  # drawn as measured, eight decades below 1%


def test_log_axes_where_values_span_decades_and_lr_linear() -> None:
    figs = live_figures(records(6), 13, "ground truth", 1.0)
    for name in ("loss-shares", "loss-total", "grad-terms", "update-ratio"):
        axis = figs[name].layout.yaxis
        assert axis.type == "log" and axis.exponentformat == "power", name
        assert axis.nticks <= 4, name  # decades (and 2, 5), never every digit 2…9
    assert figs["lr"].layout.yaxis.type != "log"
    # A healthy run's gradient norm next to an exploding parent's: only a log axis shows both.
    assert compare_figure({"a": records(4)}, "grad_norm_mean").layout.yaxis.type == "log"


def test_titles_sit_below_the_plotly_toolbar() -> None:
    figs = live_figures(records(4), 13, "ground truth", 1.0)
    for name, fig in [*figs.items(), ("compare", compare_figure({"a": records(4)}, "f1"))]:
        title = fig.layout.title
        assert title.yref == "container" and title.yanchor == "top", name
        assert title.pad.t >= MODEBAR_PX, name  # the toolbar's strip stays free
        assert fig.layout.margin.t >= MODEBAR_PX + TITLE_PX, name


def test_guide_labels_take_distinct_places() -> None:
    from backend.thresholds import as_dict

    figs = live_figures(records(4), 13, "ground truth", 1.0, level_guides(as_dict()))
    for name in ("clip", "logit-std", "accuracy"):
        labels = [a for a in figs[name].layout.annotations if a.xref == "paper"]
        xs = [a.x for a in labels]
        assert len(labels) >= 3 and len(set(xs)) == len(xs), (name, xs)
        # Each label owns a slot of the width: a neighbour's starts after it.
        gaps = [b - a for a, b in zip(sorted(xs), sorted(xs)[1:], strict=False)]
        assert min(gaps) >= 0.2, (name, xs)
    texts = [a.text for a in figs["accuracy"].layout.annotations]
    assert "0.20 minimum" in texts and "SHD 13 = empty graph" in texts
    assert "0.05 minimum" in [a.text for a in figs["logit-std"].layout.annotations]


def test_scorecard_and_probe_numbers_are_formatted() -> None:
    card = {"levels": [{"level": "Minimum", "achieved": False, "criteria": [
        {"name": "clip_pct", "description": "", "status": "missed", "observed": 85.9649},
        {"name": "f1", "description": "", "status": "missed", "observed": 0.210526},
        {"name": "logit_std", "description": "", "status": "met", "observed": 2.94428},
        {"name": "shd", "description": "", "status": "pending", "observed": None},
    ]}]}
    html = str(scorecard_table(card))
    for shown in ("'86.0%'", "'0.21'", "'2.94'", "'—'"):
        assert shown in html, shown
    assert "0.210526" not in html and "None" not in html.replace("text_color=None", "")
    probes = str(probe_rows({"probes": [{
        "label": "standardize", "verdict": "verified", "epoch": 10,
        "metric": {"name": "clip_pct", "before": 100.0, "after": 54.36},
        "val_recon": {"before": 408100.0, "after": 1.17912},
        "f1": {"before": 0.0526, "after": None},
    }]}))
    assert "clip_pct 100% → 54.4%, val_recon 4.081e5 → 1.179, F1 0.05 → —" in probes


def test_evaluation_series_keep_markers_only_while_short() -> None:
    short = live_figures(records(20), 13, "reference")["accuracy"]
    assert {t.mode for t in short.data} == {"lines+markers"}
    # live.js drops them once a series grows past the limit the trace carries.
    assert {t.meta["markers_until"] for t in short.data} == {LIVE_MARKER_LIMIT}
    long = live_figures(records(2 * LIVE_MARKER_LIMIT + 2), 13, "reference")["accuracy"]
    assert {t.mode for t in long.data} == {"lines"}
    assert all("markers_until" not in t.meta for t in long.data)
