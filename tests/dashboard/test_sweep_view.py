"""dashboard/sweep_view.py: a sweep's members as rows, levels, and the parallel coordinates."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.sweep_view import (
    BEST_COLOR,
    RESULT_F1,
    RESULT_VAL_RECON,
    grid_fields,
    level_text,
    member_prefix,
    member_rows,
    parallel_figure,
    sweep_id_of,
    sweeps_summary,
)


def _member(run_id: str, lam: float, method: str, seed: int, *, status: str = "completed",
            recon: float | None = None, f1: float | None = None) -> dict[str, Any]:
    return {
        "id": run_id, "preset": "synthetic", "status": status, "last_epoch": 2,
        "epochs_total": 2, "created_at": f"2026-11-28T10:00:0{run_id[-1]}",
        "name": f"sweep ab12cd34: lambda_sparse={lam} sparsify_method={method} seed={seed}",
        "config": {"lambda_sparse": lam, "sparsify_method": method, "seed": seed, "epochs": 2},
        "f1_at_best": f1, "max_f1_seen": None if f1 is None else f1 + 0.1,
        "summary": None if recon is None else {"best_val_recon": recon},
    }


SWEEP = {"id": "ab12cd34", "best": "r2", "members": [
    _member("r1", 0.01, "topk", 0, recon=0.52, f1=0.4),
    _member("r2", 0.05, "sigmoid", 1, recon=0.31, f1=0.456),
    _member("r3", 0.05, "topk", 0, status="running"),
]}


def test_a_member_name_gives_its_sweep_and_fields_seed_last() -> None:
    assert sweep_id_of("sweep ab12cd34: lambda_sparse=0.01 seed=0") == "ab12cd34"
    assert sweep_id_of("my sweep ab12cd34: x=1") is None
    assert sweep_id_of(None) is None
    assert grid_fields(SWEEP["members"]) == ["lambda_sparse", "sparsify_method", "seed"]
    # A key that only appears inside a value is not a field: the config does not have it.
    odd = {**_member("r9", 0.01, "topk", 0), "name": "sweep ab12cd34: seed=0 note=a bogus=1"}
    assert grid_fields([odd]) == ["seed"]


def test_rows_carry_the_grid_values_results_and_the_best_mark_as_text() -> None:
    rows = member_rows(SWEEP, {"r1": "none", "r2": "Minimum"})
    assert [r["id"] for r in rows] == ["r1", "r2", "r3"]
    best = rows[1]
    assert best["best"] and not rows[0]["best"] and not rows[2]["best"]
    assert best["fields"] == {"lambda_sparse": "0.05", "sparsify_method": "sigmoid", "seed": "1"}
    assert (best["f1_at_best"], best["max_f1_seen"], best["best_val_recon"]) == (
        "0.46", "0.56", "0.31")
    assert best["level"] == "Minimum" and best["progress"] == "2/2"
    running = rows[2]
    assert (running["best_val_recon"], running["f1_at_best"], running["level"]) == (
        "—", "—", "—")


@pytest.mark.parametrize(("achieved", "text"), [
    ([True, True, False], "Good"),
    ([True, None, None], "Minimum"),
    ([None, None, None], "pending"),
    ([False, False, False], "none"),
    ([True, True, True], "Excellent"),
])
def test_the_level_is_the_highest_achieved(achieved: list[bool | None], text: str) -> None:
    card = {"levels": [{"level": name, "achieved": a, "criteria": []}
                       for name, a in zip(("Minimum", "Good", "Excellent"), achieved,
                                          strict=True)]}
    assert level_text(card) == text
    assert level_text(None) == "—"


def test_the_parallel_coordinates_draw_fields_to_results_with_the_best_on_top() -> None:
    fig = parallel_figure(SWEEP)
    assert fig.layout.meta["axes"] == [
        "lambda_sparse", "sparsify_method", "seed", RESULT_VAL_RECON, RESULT_F1]
    # Only members with a result are lines; the running one has none yet.
    assert fig.layout.meta["members"] == ["r1", "r2"]
    assert [t.meta["run"] for t in fig.data] == ["r1", "r2"]  # the best drawn last, on top
    other, best = fig.data
    assert best.line.color == BEST_COLOR and other.line.color != BEST_COLOR
    # Each axis spans its own values: λ 0.01 at the bottom, 0.05 at the top; the lower
    # val_recon (the best) at the bottom of its axis; a method name is a category.
    assert list(other.y) == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert list(best.y) == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert "sparsify_method = sigmoid" in best.text and "best val_recon = 0.31" in best.text
    ticks = {a.text for a in fig.layout.annotations}
    assert {"0.01", "0.05", "topk", "sigmoid", "0.31", "0.52"} <= ticks
    assert len(fig.layout.shapes) == 5  # one vertical line per axis


def test_a_grid_spanning_decades_is_drawn_on_a_log_axis() -> None:
    members = [_member(f"r{i}", lam, "topk", 0, recon=0.5 - i / 10, f1=0.3)
               for i, lam in enumerate((0.001, 0.01, 0.1))]
    fig = parallel_figure({"id": "ab12cd34", "best": "r2", "members": members})
    assert fig.layout.meta["axes"][0] == "lambda_sparse (log)"
    assert [t.y[0] for t in fig.data] == pytest.approx([0.0, 0.5, 1.0])
    # A field every member shares sits mid-axis, not at an end.
    assert {t.y[1] for t in fig.data} == {0.5}


def test_no_f1_axis_when_a_plotted_member_has_no_f1() -> None:
    sweep = {**SWEEP, "members": [*SWEEP["members"][:1],
                                  _member("r4", 0.02, "topk", 0, recon=0.4, f1=None)]}
    labels = parallel_figure(sweep).layout.meta["axes"]
    assert labels[-1] == RESULT_VAL_RECON and RESULT_F1 not in labels


def test_a_sweep_without_results_draws_no_lines() -> None:
    running = {"id": "ab12cd34", "best": None, "members": [SWEEP["members"][2]]}
    fig = parallel_figure(running)
    assert not fig.data and fig.layout.meta["members"] == []


def test_the_feed_prefix_is_how_the_members_names_begin() -> None:
    # The sweep page follows the runs named with this prefix: the same names it parses.
    assert sweep_id_of(member_prefix("ab12cd34") + "lambda_sparse=0.01 seed=0") == "ab12cd34"
    assert sweep_id_of(member_prefix("ab12cd35")[:-1] + "x=1") is None


def test_sweeps_are_grouped_from_the_runs_list() -> None:
    other = {**_member("r5", 0.1, "topk", 0), "name": "my own run"}
    newer = {**_member("r6", 0.1, "topk", 0, status="running"),
             "name": "sweep ffff0000: lambda_sparse=0.1 seed=0",
             "created_at": "2026-11-29T00:00:00"}
    restarted = {**SWEEP["members"][0], "id": "child-1", "parent_id": SWEEP["members"][0]["id"],
                 "name": SWEEP["members"][0]["name"] + " · fix clip_high"}
    summary = sweeps_summary([*SWEEP["members"], other, newer, restarted])
    assert [s["id"] for s in summary] == ["ffff0000", "ab12cd34"]
    assert summary[1]["members"] == 3 and summary[1]["ended"] == 2
    assert summary[1]["fields"] == ["lambda_sparse", "sparsify_method", "seed"]
    assert summary[0]["running"] == 1
