"""Copy every run from one database to another: how a team moves SQLite → PostgreSQL.

The target is migrated to the newest schema and must hold no runs yet; everything is copied
in one transaction, so a failed copy leaves the target as empty as it was. Ids are kept
(run ids, and the alert ids that restart-with-fix lineage points at), and PostgreSQL's id
sequences are moved past the copied ids so new rows do not collide with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Table, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from backend.db import StoreError, make_engine, migrate, to_store_error
from backend.orm import Alert, Graph, Metric, Run, StatusEvent

BATCH_ROWS = 2000
RUNS: Table = Run.__table__  # type: ignore[assignment]
# Parents before children; runs' own links (parent run, parent alert) are set afterwards.
CHILD_TABLES: tuple[Table, ...] = (
    Alert.__table__,  # type: ignore[attr-defined]
    Metric.__table__,  # type: ignore[attr-defined]
    Graph.__table__,  # type: ignore[attr-defined]
    StatusEvent.__table__,  # type: ignore[attr-defined]
)
RUN_LINKS = ("parent_id", "parent_alert_id")


def copy_database(source_url: str, target_url: str) -> dict[str, int]:
    """Copy all runs and their records; the number of rows copied per table."""
    if source_url == target_url:
        raise StoreError("database", "the source and the target are the same database")
    source, target = make_engine(source_url), make_engine(target_url)
    try:
        migrate(source)  # an older causalwatch's database reads as the newest schema
        migrate(target)
        with source.connect() as read, target.begin() as write:
            already = write.execute(select(func.count()).select_from(RUNS)).scalar_one()
            if already:
                raise StoreError(
                    "integrity",
                    f"the target already holds {already} runs; copy into an empty database",
                )
            return _copy(read, write)
    except SQLAlchemyError as err:
        raise to_store_error(err) from err
    finally:
        source.dispose()
        target.dispose()


def _copy(read: Connection, write: Connection) -> dict[str, int]:
    counts: dict[str, int] = {}
    links: list[dict[str, Any]] = []
    counts[RUNS.name] = 0
    for rows in _batches(read, RUNS):
        links += [{"run_id": r["id"], **{k: r[k] for k in RUN_LINKS}} for r in rows
                  if any(r[k] is not None for k in RUN_LINKS)]
        write.execute(RUNS.insert(), [{**r, **dict.fromkeys(RUN_LINKS)} for r in rows])
        counts[RUNS.name] += len(rows)
    for table in CHILD_TABLES:
        counts[table.name] = 0
        for rows in _batches(read, table):
            write.execute(table.insert(), rows)
            counts[table.name] += len(rows)
    for link in links:
        values = {k: link[k] for k in RUN_LINKS}
        write.execute(update(RUNS).where(RUNS.c.id == link["run_id"]).values(**values))
    if write.dialect.name == "postgresql":
        for table in CHILD_TABLES:
            # Explicit ids do not advance the serial sequence; the next insert would reuse 1.
            write.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            ))
    return counts


def _batches(read: Connection, table: Table) -> Iterator[list[dict[str, Any]]]:
    primary = list(table.primary_key.columns)
    result = read.execution_options(yield_per=BATCH_ROWS).execute(
        select(table).order_by(*primary)
    )
    for partition in result.mappings().partitions(BATCH_ROWS):
        yield [dict(row) for row in partition]

