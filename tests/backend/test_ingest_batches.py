"""The ingest writer's batching: runs take turns, order within a run is kept."""

from __future__ import annotations

from typing import Any

from backend.ingest_writer import fair_batches


def item(run: str, epoch: int) -> tuple[dict[str, Any], Any]:
    return {"run_id": run, "epoch": epoch}, None


def test_a_backlog_does_not_starve_a_light_run() -> None:
    heavy = [item("heavy", e) for e in range(1, 101)]
    light = [item("light", 1)]
    batches = fair_batches(heavy + light, size=10)
    assert ("light", 1) in [(r["run_id"], r["epoch"]) for r, _ in batches[0]]
    flat = [(r["run_id"], r["epoch"]) for b in batches for r, _ in b]
    assert [e for run, e in flat if run == "heavy"] == list(range(1, 101))
    assert all(len(b) <= 10 for b in batches) and len(flat) == 101
