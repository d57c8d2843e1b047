"""Alembic migrations: a newer causalwatch opens an older database; migrations equal the ORM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from backend.db import MIGRATIONS_DIR, alembic_config, default_sqlite_url, make_engine, migrate
from backend.orm import Base
from backend.schemas import RunStatus
from backend.store import Store, StoreError

HEAD = "0003"


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


def test_migration_scripts_live_in_the_package() -> None:
    assert MIGRATIONS_DIR == Path(__file__).resolve().parents[2] / "backend" / "migrations"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    names = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    assert names == ["0001_initial.py", "0002_ingest_token.py", "0003_graphs.py"]


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
