"""`causalwatch copy-db`: every run moves to another database (SQLite → PostgreSQL) intact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_store import CONFIG, make_record

from backend.db import default_sqlite_url
from backend.schemas import RunStatus
from backend.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _copy_db(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "copy-db", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )


def _alert(store: Store, run_id: str, rule: str) -> int:
    alert = store.add_alert(
        run_id=run_id, rule=rule, severity="critical", epoch=2, message=f"{rule} fired",
        cause="because", suggested_changes={"learning_rate_init": 1e-4}, evidence={"x": [1.5]},
    )
    assert alert is not None
    return alert.id


def _fill(store: Store) -> None:
    """Two runs linked by restart-with-fix, with metrics, alerts, a graph and events."""
    store.create_run(run_id="parent", preset="uci", config=CONFIG, name="first try")
    store.set_status("parent", RunStatus.running, pid=123)
    store.add_metrics([make_record("parent", e) for e in range(1, 6)])
    store.set_run_data("parent", {"variables": ["a", "b"], "stats": {"variance_ratio": 1e6}})
    store.add_graph(run_id="parent", epoch=4, probabilities=[[0.0, 0.75], [0.125, 0.0]])
    _alert(store, "parent", "logit_collapse")
    fix = _alert(store, "parent", "clip_high")
    store.set_status("parent", RunStatus.completed, "done")
    store.set_summary("parent", {"best_f1": 0.5})
    store.create_run(run_id="child", preset="uci", config=CONFIG, parent_id="parent",
                     parent_alert_id=fix)
    store.add_metrics([make_record("child", 1)])


def _snapshot(store: Store) -> dict[str, object]:
    runs = store.list_runs()
    return {
        "runs": [r.model_dump() for r in runs],
        "metrics": {r.id: store.get_metrics(r.id) for r in runs},
        "alerts": {r.id: [a.model_dump() for a in store.list_alerts(r.id)] for r in runs},
        "events": {r.id: [e.model_dump() for e in store.status_events(r.id)] for r in runs},
        "graphs": {r.id: store.get_graph(r.id) for r in runs},
    }


def test_every_run_is_copied_intact_and_the_target_keeps_working(
    tmp_path: Path, any_db_url: str
) -> None:
    runs_dir = tmp_path / "source-runs"
    source = Store.from_url(default_sqlite_url(runs_dir))
    _fill(source)
    expected = _snapshot(source)
    source.engine.dispose()

    done = _copy_db("--runs-dir", str(runs_dir), "--to", any_db_url)
    assert done.returncode == 0, done.stderr
    assert "copied 2 runs, 2 alerts, 6 metrics, 1 graphs, 4 status_events" in done.stdout

    target = Store.from_url(any_db_url)
    try:
        assert _snapshot(target) == expected
        assert target.get_run("child").parent_alert_id == expected["alerts"]["parent"][1]["id"]
        # New rows get new ids (PostgreSQL's sequences were moved past the copied ones).
        new_id = _alert(target, "child", "clip_high")
        assert new_id > max(a["id"] for a in expected["alerts"]["parent"])
    finally:
        target.engine.dispose()

    again = _copy_db("--runs-dir", str(runs_dir), "--to", any_db_url)
    assert again.returncode == 1
    assert "already holds 2 runs" in again.stderr and "Traceback" not in again.stderr


def test_a_missing_source_is_named(tmp_path: Path) -> None:
    done = _copy_db("--runs-dir", str(tmp_path / "nowhere"), "--to", "sqlite:///x.db")
    assert done.returncode == 2
    assert "--runs-dir" in done.stderr and "nowhere" in done.stderr
    assert not (ROOT / "x.db").exists()
