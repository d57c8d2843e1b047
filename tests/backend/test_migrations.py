"""Alembic migrations: a newer causalwatch opens an older database; migrations equal the ORM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, text

from backend.db import MIGRATIONS_DIR, alembic_config, default_sqlite_url, make_engine, migrate
from backend.orm import Base
from backend.schemas import RunStatus
from backend.store import Store, StoreError

HEAD = "0006"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(default_sqlite_url(tmp_path))
    try:
        yield engine
    finally:
        engine.dispose()


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def run_columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("runs")}


def metric_columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("metrics")}


NEW_METRIC_COLUMNS = {
    "grad_norm_recon", "grad_norm_sparse", "grad_norm_acyclic", "grad_norm_disen", "update_ratio"
}


def test_migration_scripts_live_in_the_package() -> None:
    assert MIGRATIONS_DIR == Path(__file__).resolve().parents[2] / "backend" / "migrations"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    names = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    assert names == [
        "0001_initial.py",
        "0002_ingest_token.py",
        "0003_graphs.py",
        "0004_grad_terms_and_max_f1.py",
        "0005_probes.py",
        "0006_sdk_records.py",
    ]


def test_head_schema_equals_the_orm(engine: Engine) -> None:
    migrate(engine)
    assert revision(engine) == HEAD
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_newer_code_opens_an_older_database(engine: Engine) -> None:
    command.upgrade(alembic_config(engine), "0001")
    assert revision(engine) == "0001"
    assert "ingest_token" not in run_columns(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, name, preset, config, status, created_at, epochs_total, "
                "last_epoch) VALUES ('old-1', 'from 0001', 'uci', :config, 'completed', "
                "'2025-01-02 03:04:05.000000', 30, 30)"
            ),
            {"config": json.dumps({"epochs": 30, "lambda_recon": 100.0})},
        )

    migrate(engine)
    assert revision(engine) == HEAD
    assert "ingest_token" in run_columns(engine)
    store = Store(engine)
    run = store.get_run("old-1")
    assert run is not None
    assert (run.name, run.status, run.epochs_total, run.progress) == (
        "from 0001",
        RunStatus.completed,
        30,
        1.0,
    )
    assert run.config == {"epochs": 30, "lambda_recon": 100.0}
    assert run.created_at.isoformat() == "2025-01-02T03:04:05+00:00"
    assert store.get_ingest_token("old-1") is None

    migrate(engine)  # already at head: nothing happens
    assert revision(engine) == HEAD
    assert store.get_run("old-1") == run


def test_downgrade_keeps_data_and_foreign_keys(engine: Engine) -> None:
    migrate(engine)
    store = Store(engine)
    store.create_run(run_id="r", preset="uci", config={"epochs": 5}, ingest_token="secret")
    store.create_run(run_id="child", preset="uci", config={"epochs": 5}, parent_id="r")

    # 0002's downgrade rebuilds `runs` on SQLite (batch mode) under referencing rows.
    command.downgrade(alembic_config(engine), "0001")
    assert "ingest_token" not in run_columns(engine)
    migrate(engine)

    child = store.get_run("child")
    assert child is not None and child.parent_id == "r"
    parent = store.get_run("r")
    assert parent is not None and parent.children == ["child"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    with pytest.raises(StoreError):
        store.create_run(run_id="orphan", preset="uci", config={"epochs": 5}, parent_id="none")


def _insert_0003_metric(conn: Connection, run_id: str, epoch: int, f1: float | None) -> None:
    """A metrics row as 0001-0003 knew it: no per-term gradient norms, no update ratio."""
    ones = ", ".join(["1"] * 23)  # step … eta_seconds
    conn.execute(
        text(
            "INSERT INTO metrics (run_id, epoch, step, time, lr, loss_total, loss_recon, "
            "loss_sparse, loss_acyclic, loss_disen, share_recon, share_sparse, share_acyclic, "
            "share_disen, clip_pct, grad_norm_mean, grad_norm_max, logit_mean, logit_std, "
            "edges_at_05, threshold_tuned, edges_tuned, edges_topk, epoch_seconds, "
            "eta_seconds, f1, is_best, received_at) VALUES "
            f"(:run_id, :epoch, {ones}, :f1, :is_best, '2025-01-02 03:04:05.000000')"
        ),
        {"run_id": run_id, "epoch": epoch, "f1": f1, "is_best": epoch == 2},
    )


@pytest.fixture
def any_engine(any_db_url: str) -> Iterator[Engine]:
    engine = make_engine(any_db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_0004_keeps_old_records_and_splits_f1_at_best_from_max_f1(any_engine: Engine) -> None:
    """Renames, new columns and the max-F1 backfill, on SQLite and PostgreSQL."""
    engine = any_engine
    command.upgrade(alembic_config(engine), "0003")
    assert not NEW_METRIC_COLUMNS & metric_columns(engine)
    with engine.begin() as conn:
        for run_id, values in (("old", "2, 0.25, 11"), ("empty", "NULL, NULL, NULL")):
            conn.execute(
                text(
                    "INSERT INTO runs (id, preset, config, status, created_at, epochs_total, "
                    f"best_epoch, best_f1, best_shd) VALUES (:id, 'uci', :config, "
                    f"'completed', '2025-01-02 03:04:05.000000', 6, {values})"
                ),
                {"id": run_id, "config": json.dumps({"epochs": 6})},
            )
        # F1 0.25 at the best checkpoint (epoch 2); 0.5 first reached at epoch 4, again at 6.
        for epoch, f1 in ((1, None), (2, 0.25), (3, None), (4, 0.5), (5, None), (6, 0.5)):
            _insert_0003_metric(conn, "old", epoch, f1)

    migrate(engine)
    assert revision(engine) == HEAD
    assert NEW_METRIC_COLUMNS <= metric_columns(engine)
    assert {"best_f1", "best_shd"}.isdisjoint(run_columns(engine))
    store = Store(engine)
    old = store.get_run("old")
    assert old is not None
    assert (old.best_epoch, old.f1_at_best, old.shd_at_best) == (2, 0.25, 11)
    assert (old.max_f1_seen, old.max_f1_epoch) == (0.5, 4)
    assert (old.best_f1, old.best_shd) == (0.25, 11)  # the deprecated aliases
    empty = store.get_run("empty")
    assert empty is not None
    assert (empty.f1_at_best, empty.max_f1_seen, empty.max_f1_epoch) == (None, None, None)
    records = store.get_metrics("old")
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(r[name] is None for r in records for name in NEW_METRIC_COLUMNS)

    command.downgrade(alembic_config(engine), "0003")
    assert not NEW_METRIC_COLUMNS & metric_columns(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT best_f1, best_shd FROM runs WHERE id = 'old'")).one()
    assert tuple(row) == (0.25, 11)


def test_sdk_records_migrate_both_ways(engine: Engine) -> None:
    """0006 lets a record hold a subset of the metrics plus custom keys; its downgrade drops
    only the rows that the older schema could not hold."""
    command.upgrade(alembic_config(engine), "0005")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, name, preset, config, status, created_at, epochs_total, "
                "kind) VALUES ('r', 'r', 'uci', '{}', 'running', "
                "'2025-01-02 03:04:05.000000', 5, 'run')"
            )
        )
        _insert_0003_metric(conn, "r", 1, 0.5)
    migrate(engine)
    store = Store(engine)
    store.add_metrics([{"run_id": "r", "epoch": 2, "clip_pct": 3.0, "custom": {"acc": 0.9}}])
    partial = store.get_metric("r", 2)
    assert partial is not None
    assert (partial["clip_pct"], partial["custom"], partial["loss_total"]) == (
        3.0, {"acc": 0.9}, None,
    )
    assert store.get_metric("r", 1)["custom"] is None  # type: ignore[index]

    command.downgrade(alembic_config(engine), "0005")
    assert "custom" not in metric_columns(engine)
    with engine.connect() as conn:
        epochs = conn.execute(text("SELECT epoch FROM metrics WHERE run_id = 'r'")).all()
    assert [e for (e,) in epochs] == [1]
