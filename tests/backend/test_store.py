"""backend/store.py against a real SQLite file: runs, status, metrics, alerts, locking."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, text
from utils.records import epoch_record

from backend.db import default_sqlite_url, make_engine, migrate
from backend.orm import Metric
from backend.schemas import RunKind, RunStatus
from backend.store import METRIC_FIELDS, Store, StoreError
from trainer.protocol import PartialEpochRecord

CONFIG = {"epochs": 50, "learning_rate_init": 3e-6}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return default_sqlite_url(tmp_path / "runs")


@pytest.fixture
def store(any_db_url: str) -> Iterator[Store]:
    """Every store test runs on a SQLite file and on PostgreSQL."""
    store = Store.from_url(any_db_url)
    try:
        yield store
    finally:
        store.engine.dispose()


def make_record(run_id: str, epoch: int, **overrides: Any) -> dict[str, Any]:
    """A valid EpochRecord dict with values that differ per field and epoch: a round trip
    that swapped or rounded a column shows."""
    values: dict[str, Any] = {
        "step": epoch * 57,
        "time": 1_732_000_000.123456 + epoch,
        "lr": 3e-6 * epoch,
        "loss_total": 12.5 / epoch,
        "loss_recon": 10.0 / epoch,
        "loss_sparse": 1 / 3,
        "loss_acyclic": 1e-12,
        "loss_disen": 2.5e-7,
        "share_recon": 80.0,
        "share_sparse": 10.0,
        "share_acyclic": 5.0,
        "share_disen": 5.0,
        "clip_pct": 100.0 / epoch,
        "grad_norm_mean": 0.7 * epoch,
        "grad_norm_max": 1.9 * epoch,
        "logit_mean": -0.25,
        "logit_std": 0.01 * epoch,
        "edges_at_05": epoch % 4,
        "threshold_tuned": 0.35,
        "edges_tuned": epoch % 5,
        "edges_topk": 13,
        "epoch_seconds": 0.42,
        "eta_seconds": 0.5 * epoch,
        "grad_norm_recon": 0.6 * epoch,
        "grad_norm_sparse": 1e-9,
        "grad_norm_acyclic": 0.0,
        "grad_norm_disen": 2.5e-4 / epoch,
        "update_ratio": 1e-3 / epoch,
    }
    if epoch % 2 == 0:  # evaluation epochs carry the graph metrics
        values.update(shd=13 - epoch % 13, f1=0.1 * (epoch % 10), precision=0.5, recall=0.25)
        values.update(f1_skeleton=0.6, val_recon=0.0123)
    values.update(overrides)
    return epoch_record(epoch, run_id, **values)


def new_run(store: Store, run_id: str, **kwargs: Any) -> None:
    store.create_run(run_id=run_id, preset="uci", config=CONFIG, **kwargs)


# --- engine ----------------------------------------------------------------------------------


def test_sqlite_engine_uses_wal_and_enforces_foreign_keys(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path / "deep" / "runs")
    assert url == f"sqlite:///{(tmp_path / 'deep' / 'runs' / 'causalwatch.db').as_posix()}"
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert (tmp_path / "deep" / "runs" / "causalwatch.db").is_file()
    finally:
        engine.dispose()


def test_ping_names_the_dialect(store: Store, any_db_url: str) -> None:
    assert store.ping() == any_db_url.split(":", maxsplit=1)[0].split("+", maxsplit=1)[0]


def test_metric_columns_mirror_the_epoch_record() -> None:
    columns = {c.name: c for c in Metric.__table__.columns}
    assert set(columns) == set(METRIC_FIELDS) | {"id", "received_at"}
    # Nullable exactly where an SDK run's record may leave the field out.
    for name, field in PartialEpochRecord.model_fields.items():
        assert columns[name].nullable == (not field.is_required() and field.default is None), name


def test_partial_records_store_and_read_back(store: Store) -> None:
    new_run(store, "sdk-1")
    store.add_metrics([
        {"run_id": "sdk-1", "epoch": 1, "loss_recon": 0.5, "custom": {"acc": 0.25, "a/b": 1.0}},
        {"run_id": "sdk-1", "epoch": 2},
    ])
    first, second = store.get_metrics("sdk-1")
    assert (first["loss_recon"], first["clip_pct"], first["custom"]) == (
        0.5, None, {"acc": 0.25, "a/b": 1.0},
    )
    assert second["custom"] is None and second["is_best"] is False


# --- runs ------------------------------------------------------------------------------------


def test_create_and_get_run(store: Store) -> None:
    run = store.create_run(
        run_id="uci-1", preset="uci", config=CONFIG, name="baseline", ingest_token="tok"
    )
    assert run.status is RunStatus.queued
    assert (run.epochs_total, run.progress, run.last_epoch, run.children) == (50, 0.0, None, [])
    assert run.created_at.tzinfo is not None
    assert run.created_at.utcoffset() == UTC.utcoffset(None)
    assert store.get_run("uci-1") == run
    assert store.get_run("nope") is None
    assert store.get_ingest_token("uci-1") == "tok"
    assert store.get_ingest_token("nope") is None
    assert [e.status for e in store.status_events("uci-1")] == [RunStatus.queued]


def test_create_run_refuses_bad_input(store: Store) -> None:
    with pytest.raises(ValueError, match=r"config\.epochs"):
        store.create_run(run_id="x", preset="uci", config={})
    with pytest.raises(ValueError, match="run_id"):
        store.create_run(run_id="x" * 81, preset="uci", config=CONFIG)
    new_run(store, "dup")
    with pytest.raises(StoreError) as err:
        new_run(store, "dup")
    assert err.value.code == "integrity"
    with pytest.raises(StoreError):
        new_run(store, "orphan", parent_id="no-such-run")


def test_lineage_lists_children(store: Store) -> None:
    new_run(store, "parent")
    alert = store.add_alert(
        run_id="parent",
        rule="clip_saturated",
        severity="critical",
        epoch=11,
        message="clip at 100%",
        cause="LR too high",
        suggested_changes={"learning_rate_max": 2e-5},
        evidence={"clip_pct": 100.0},
    )
    assert alert is not None
    new_run(store, "child-a", parent_id="parent", parent_alert_id=alert.id)
    new_run(store, "child-b", parent_id="parent")
    parent = store.get_run("parent")
    assert parent is not None
    assert parent.children == ["child-a", "child-b"]
    assert parent.open_alerts == 1
    child = store.get_run("child-a")
    assert child is not None
    assert (child.parent_id, child.parent_alert_id, child.children) == ("parent", alert.id, [])
    listed = {r.id: r for r in store.list_runs()}
    assert listed["parent"].children == ["child-a", "child-b"]


def test_list_runs_newest_first_with_filter_and_paging(store: Store) -> None:
    for i in range(5):
        new_run(store, f"r{i}")
    store.set_status("r1", RunStatus.running)
    assert [r.id for r in store.list_runs()] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r.id for r in store.list_runs(limit=2, offset=1)] == ["r3", "r2"]
    assert [r.id for r in store.list_runs(status="running")] == ["r1"]
    with pytest.raises(ValueError, match="status"):
        store.list_runs(status="paused")


def test_list_runs_does_not_query_per_run(store: Store) -> None:
    for i in range(20):
        new_run(store, f"p{i}")
        new_run(store, f"c{i}", parent_id=f"p{i}")
        for rule in ("a", "b"):
            store.add_alert(
                run_id=f"p{i}",
                rule=rule,
                severity="warning",
                epoch=None,
                message="m",
                cause="c",
                suggested_changes={},
                evidence={},
            )
    selects: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        runs = store.list_runs()
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(runs) == 40
    assert len(selects) <= 2, selects
    by_id = {r.id: r for r in runs}
    assert by_id["p7"].children == ["c7"] and by_id["p7"].open_alerts == 2
    assert by_id["c7"].children == [] and by_id["c7"].open_alerts == 0


def test_status_transitions_record_events_and_finished_is_final(store: Store) -> None:
    new_run(store, "r")
    running = store.set_status("r", RunStatus.running, pid=4242)
    assert running is not None and running.status is RunStatus.running
    assert running.started_at is not None and running.finished_at is None
    assert store.get_pid("r") == 4242
    done = store.set_status("r", RunStatus.completed, "early stop at epoch 40")
    assert done is not None
    assert done.status is RunStatus.completed
    assert done.status_reason == "early stop at epoch 40"
    assert done.finished_at is not None and done.started_at == running.started_at

    after = store.set_status("r", RunStatus.failed, "too late")
    assert after == done  # unchanged
    events = store.status_events("r")
    assert [(e.status, e.reason) for e in events] == [
        (RunStatus.queued, None),
        (RunStatus.running, None),
        (RunStatus.completed, "early stop at epoch 40"),
    ]
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))


def test_set_status_edge_cases(store: Store) -> None:
    assert store.set_status("missing", RunStatus.running) is None
    assert store.get_pid("missing") is None
    new_run(store, "r")
    with pytest.raises(ValueError, match="status"):
        store.set_status("r", "paused")  # type: ignore[arg-type]
    store.set_status("r", RunStatus.running)
    store.set_status("r", RunStatus.running, pid=7)  # same status: pid stored, no new event
    assert store.get_pid("r") == 7
    assert len(store.status_events("r")) == 2
    stopped = store.set_status("r", RunStatus.stopped, "user")
    assert stopped is not None and stopped.finished_at is not None


def test_runs_in_status_and_counts(store: Store) -> None:
    for run_id in ("q1", "q2", "run", "done"):
        new_run(store, run_id)
    store.set_status("run", RunStatus.running)
    store.set_status("done", RunStatus.running)
    store.set_status("done", RunStatus.completed)
    assert [r.id for r in store.runs_in_status(RunStatus.queued)] == ["q1", "q2"]  # oldest first
    both = store.runs_in_status(RunStatus.queued, RunStatus.running)
    assert {r.id for r in both} == {"q1", "q2", "run"}
    assert store.runs_in_status() == []
    assert store.count_by_status() == {
        "queued": 2,
        "running": 1,
        "completed": 1,
        "stopped": 0,
        "failed": 0,
    }
    store.create_run(run_id="probe", preset="uci", config=CONFIG, kind=RunKind.probe)
    assert store.count_by_status()["queued"] == 3
    assert store.count_by_status([RunKind.run, RunKind.sdk])["queued"] == 2
    assert store.count_by_status([RunKind.probe]) == {
        "queued": 1, "running": 0, "completed": 0, "stopped": 0, "failed": 0,
    }


def test_run_data_and_summary(store: Store) -> None:
    new_run(store, "r")
    store.set_run_data("r", {"rows_train": 7485, "columns": ["CO(GT)", "T"]})
    store.set_summary("r", {"best_f1": 0.4, "stopped_early": True})
    store.set_summary("missing", {})  # unknown run: nothing to do
    run = store.get_run("r")
    assert run is not None
    assert run.data == {"rows_train": 7485, "columns": ["CO(GT)", "T"]}
    assert run.summary == {"best_f1": 0.4, "stopped_early": True}


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_round_trip_exactly(store: Store) -> None:
    new_run(store, "r")
    records = [make_record("r", epoch) for epoch in range(1, 7)]
    records[3] = make_record("r", 4, is_best=True, shd=0, f1=1.0, val_recon=None)
    assert store.add_metrics(records) == [True] * 6
    stored = store.get_metrics("r")
    assert stored == records
    assert all(list(s) == list(METRIC_FIELDS) for s in stored)
    assert stored[0]["shd"] is None and stored[3]["val_recon"] is None
    assert type(stored[1]["shd"]) is int and type(stored[1]["is_best"]) is bool
    assert store.get_metrics("r", since_epoch=4) == records[4:]
    assert store.get_metrics("other") == []


def test_add_metrics_is_idempotent(store: Store) -> None:
    new_run(store, "r")
    first = [make_record("r", 1), make_record("r", 2), make_record("r", 1)]
    assert store.add_metrics(first) == [True, True, False]
    changed = make_record("r", 2, loss_total=999.0)  # a resend never overwrites
    assert store.add_metrics([changed, make_record("r", 3)]) == [False, True]
    assert [m["epoch"] for m in store.get_metrics("r")] == [1, 2, 3]
    assert store.get_metrics("r")[1]["loss_total"] == first[1]["loss_total"]
    assert store.add_metrics([]) == []


def test_out_of_order_epochs_keep_progress_and_best(store: Store) -> None:
    new_run(store, "r")
    store.add_metrics(
        [
            make_record("r", 3, is_best=True),
            make_record("r", 1, is_best=True),
            make_record("r", 5),
        ]
    )
    store.add_metrics([make_record("r", 2, is_best=True), make_record("r", 4)])
    assert [m["epoch"] for m in store.get_metrics("r")] == [1, 2, 3, 4, 5]
    run = store.get_run("r")
    assert run is not None
    assert (run.last_epoch, run.eta_seconds, run.progress) == (5, 2.5, 5 / 50)
    assert (run.best_epoch, run.f1_at_best, run.shd_at_best) == (3, None, None)

    best = make_record("r", 6, is_best=True)
    store.add_metrics([best])
    run = store.get_run("r")
    assert run is not None
    assert (run.last_epoch, run.best_epoch) == (6, 6)
    assert (run.f1_at_best, run.shd_at_best) == (best["f1"], best["shd"])


def test_f1_at_the_best_checkpoint_is_not_the_max_f1_seen(store: Store) -> None:
    """The label-free best checkpoint (lowest val_recon) need not have the highest F1."""
    new_run(store, "r")
    store.add_metrics([
        make_record("r", 2, is_best=True, f1=0.2, shd=12, val_recon=0.5),
        make_record("r", 4, is_best=True, f1=0.3, shd=11, val_recon=0.4),
        make_record("r", 6, f1=0.6, shd=7, val_recon=0.45),  # better graph, worse val_recon
        make_record("r", 8, f1=0.5, shd=8, val_recon=0.41),
    ])
    run = store.get_run("r")
    assert run is not None
    assert (run.best_epoch, run.f1_at_best, run.shd_at_best) == (4, 0.3, 11)
    assert (run.max_f1_seen, run.max_f1_epoch) == (0.6, 6)
    public = run.model_dump(mode="json")
    # The old names stay, deprecated, for clients that read them: the best checkpoint's.
    assert (public["best_f1"], public["best_shd"]) == (0.3, 11)
    assert public["max_f1_seen"] == 0.6

    # A lower F1 never lowers the maximum; a tie keeps the first epoch to reach it, even
    # when the earlier epoch arrives later (a resend after a reconnect).
    store.add_metrics([make_record("r", 10, f1=0.6), make_record("r", 12, f1=0.1)])
    run = store.get_run("r")
    assert run is not None and (run.max_f1_seen, run.max_f1_epoch) == (0.6, 6)
    store.add_metrics([make_record("r", 14, f1=0.6), make_record("r", 5, f1=0.6)])
    run = store.get_run("r")
    assert run is not None and (run.max_f1_seen, run.max_f1_epoch) == (0.6, 5)
    store.add_metrics([make_record("r", 16, f1=0.7), make_record("r", 18, f1=None)])
    run = store.get_run("r")
    assert run is not None and (run.max_f1_seen, run.max_f1_epoch) == (0.7, 16)
    assert run.best_epoch == 4  # unmoved: none of these was a best checkpoint


def test_runs_without_f1_have_no_max(store: Store) -> None:
    new_run(store, "r")  # e.g. a CSV dataset without a reference graph: F1 stays null
    store.add_metrics([make_record("r", e, f1=None, shd=None) for e in range(1, 5)])
    run = store.get_run("r")
    assert run is not None and (run.max_f1_seen, run.max_f1_epoch) == (None, None)


def test_one_batch_serves_several_runs(store: Store) -> None:
    new_run(store, "a")
    new_run(store, "b")
    ok = store.add_metrics([make_record("a", 1), make_record("b", 1), make_record("a", 2)])
    assert ok == [True, True, True]
    runs = {r.id: r for r in store.list_runs()}
    assert (runs["a"].last_epoch, runs["b"].last_epoch) == (2, 1)


def test_failed_batch_writes_nothing(store: Store) -> None:
    new_run(store, "r")
    bad = make_record("r", 3)
    bad["epoch"] = None  # NOT NULL
    with pytest.raises(StoreError) as err:
        store.add_metrics([make_record("r", 1), make_record("r", 2), bad])
    assert err.value.code == "integrity"
    with pytest.raises(StoreError):
        store.add_metrics([make_record("r", 1), make_record("ghost", 1)])  # unknown run
    assert store.get_metrics("r") == []
    run = store.get_run("r")
    assert run is not None and run.last_epoch is None and run.best_epoch is None
    assert store.add_metrics([make_record("r", 1)]) == [True]  # the store still works


def test_add_metrics_refuses_unknown_fields(store: Store) -> None:
    new_run(store, "r")
    with pytest.raises(ValueError, match="bogus"):
        store.add_metrics([{**make_record("r", 1), "bogus": 1}])


def test_bulk_insert_is_fast(store: Store) -> None:
    new_run(store, "fast")
    records = [make_record("fast", epoch) for epoch in range(1, 5001)]
    start = time.perf_counter()
    for i in range(0, len(records), 100):
        assert all(store.add_metrics(records[i : i + 100]))
    elapsed = time.perf_counter() - start
    print(
        f"\nadd_metrics: 5000 records in batches of 100: {elapsed:.2f}s "
        f"({len(records) / elapsed:,.0f} records/s)"
    )
    assert elapsed < 20
    assert len(store.get_metrics("fast")) == 5000


def test_one_store_shared_by_threads(store: Store) -> None:
    # The backend calls the store from worker threads (asyncio.to_thread).
    runs = [f"t{i}" for i in range(6)]
    for run_id in runs:
        new_run(store, run_id)
    errors: list[BaseException] = []

    def ingest(run_id: str) -> None:
        try:
            for start in range(1, 41, 5):
                store.add_metrics([make_record(run_id, e) for e in range(start, start + 5)])
                store.get_run(run_id)
        except BaseException as err:  # re-raised in the main thread below
            errors.append(err)

    threads = [threading.Thread(target=ingest, args=(run_id,)) for run_id in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for run in store.list_runs():
        assert run.last_epoch == 40
        assert len(store.get_metrics(run.id)) == 40


# --- alerts ----------------------------------------------------------------------------------


def alert_kwargs(run_id: str, rule: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "rule": rule,
        "severity": "critical",
        "epoch": 16,
        "message": "logit std below 0.05",
        "cause": "top-k quantization",
        "suggested_changes": {"sparsify_method": "sigmoid"},
        "evidence": {"logit_std": [0.04, 0.03]},
    }


def test_alerts_fire_once_per_rule(store: Store) -> None:
    new_run(store, "r")
    alert = store.add_alert(**alert_kwargs("r", "logit_collapse"))
    assert alert is not None
    assert alert.suggested_changes == {"sparsify_method": "sigmoid"}
    assert alert.evidence == {"logit_std": [0.04, 0.03]}
    assert alert.created_at.tzinfo is not None
    assert store.add_alert(**alert_kwargs("r", "logit_collapse")) is None
    other = store.add_alert(**{**alert_kwargs("r", "recon_share"), "epoch": None})
    assert other is not None and other.epoch is None
    assert store.add_alert(**alert_kwargs("missing", "logit_collapse")) is None
    assert store.list_alerts("r") == [alert, other]
    assert store.get_alert(alert.id) == alert
    assert store.get_alert(10_000) is None
    assert store.fired_rules("r") == {"logit_collapse", "recon_share"}
    assert store.fired_rules("missing") == set()
    run = store.get_run("r")
    assert run is not None and run.open_alerts == 2


def test_concurrent_alerts_for_one_rule_store_one(any_db_url: str, store: Store) -> None:
    new_run(store, "r")
    stores = [Store.from_url(any_db_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results: list[object] = []

    def fire(s: Store) -> None:
        barrier.wait()
        results.append(s.add_alert(**alert_kwargs("r", "stalled")))

    threads = [threading.Thread(target=fire, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.engine.dispose()
    assert sum(r is not None for r in results) == 1
    assert len(store.list_alerts("r")) == 1


# --- locking ---------------------------------------------------------------------------------


def _locked_store(db_url: str, **kwargs: Any) -> Store:
    engine = make_engine(db_url, busy_timeout_ms=20)
    migrate(engine)
    return Store(engine, **kwargs)


def _hold_write_lock(db_url: str) -> sqlite3.Connection:
    """Another connection (as another process would) holding SQLite's write lock."""
    path = db_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_writes_wait_for_a_lock_to_clear(db_url: str) -> None:
    store = _locked_store(db_url, write_attempts=8, retry_backoff_s=0.05)
    holder = _hold_write_lock(db_url)
    release = threading.Timer(0.3, holder.execute, args=("ROLLBACK",))
    release.start()
    try:
        start = time.perf_counter()
        run = store.create_run(run_id="late", preset="uci", config=CONFIG)
        assert run.id == "late"
        assert time.perf_counter() - start >= 0.25  # it did wait for the lock
        assert store.get_run("late") is not None
    finally:
        release.join()
        holder.close()
        store.engine.dispose()


def test_writes_give_up_on_a_persistent_lock(db_url: str) -> None:
    store = _locked_store(db_url, write_attempts=3, retry_backoff_s=0.01)
    holder = _hold_write_lock(db_url)
    try:
        with pytest.raises(StoreError) as err:
            store.create_run(run_id="never", preset="uci", config=CONFIG)
        assert err.value.code == "busy"
        # WAL: readers are not blocked by the writer.
        assert store.get_run("never") is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    try:
        assert store.create_run(run_id="now", preset="uci", config=CONFIG).id == "now"
    finally:
        store.engine.dispose()


def test_schema_has_the_lookup_indexes(store: Store) -> None:
    insp = inspect(store.engine)
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("metrics")}
    assert ("run_id", "epoch") in uniques
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as conn:
            indexed = conn.execute(text("PRAGMA index_list('metrics')")).all()
        assert any(row.unique for row in indexed)
    else:
        assert any(i["unique"] for i in insp.get_indexes("metrics")) or uniques
