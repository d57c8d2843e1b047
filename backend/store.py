"""Every read and write of the tracking database; returns backend/schemas.py models, never rows.

Each call is one managed transaction (backend/db.py). Writes retry while SQLite reports the
database locked, then raise StoreError("busy"). Absent rows give None, not an exception:
only routes turn absence into HTTP errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Engine, Table, bindparam, func, insert, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.db import StoreError, make_engine, managed_session, migrate
from backend.orm import RUN_ID_LENGTH, Alert, Graph, Metric, Run, StatusEvent, utcnow
from backend.schemas import (
    USER_KINDS,
    AlertPublic,
    RunKind,
    RunPublic,
    RunStatus,
    StatusEventPublic,
)
from trainer.protocol import RECORD_FIELDS

__all__ = ["METRIC_FIELDS", "Store", "StoreError"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The record's field names, in its order: downloads list exactly what was streamed.
METRIC_FIELDS: tuple[str, ...] = RECORD_FIELDS
_METRICS: Table = Metric.__table__  # type: ignore[assignment]
_ALERTS: Table = Alert.__table__  # type: ignore[assignment]
_GRAPHS: Table = Graph.__table__  # type: ignore[assignment]
_RUNS: Table = Run.__table__  # type: ignore[assignment]
_ADVANCE_LAST = (
    update(_RUNS)
    .where(
        _RUNS.c.id == bindparam("rid"),
        _RUNS.c.last_epoch.is_(None) | (_RUNS.c.last_epoch < bindparam("epoch")),
    )
    .values(last_epoch=bindparam("epoch"), eta_seconds=bindparam("eta"))
)
_ADVANCE_BEST = (
    update(_RUNS)
    .where(
        _RUNS.c.id == bindparam("rid"),
        _RUNS.c.best_epoch.is_(None) | (_RUNS.c.best_epoch < bindparam("epoch")),
    )
    .values(
        best_epoch=bindparam("epoch"), f1_at_best=bindparam("f1"), shd_at_best=bindparam("shd")
    )
)
# The highest F1 of any evaluation, and the first epoch that reached it: a tie arriving out
# of order (an earlier epoch resent after a reconnect) moves the epoch back, nothing else.
_ADVANCE_MAX_F1 = (
    update(_RUNS)
    .where(
        _RUNS.c.id == bindparam("rid"),
        _RUNS.c.max_f1_seen.is_(None)
        | (_RUNS.c.max_f1_seen < bindparam("f1"))
        | ((_RUNS.c.max_f1_seen == bindparam("f1")) & (_RUNS.c.max_f1_epoch > bindparam("epoch"))),
    )
    .values(max_f1_seen=bindparam("f1"), max_f1_epoch=bindparam("epoch"))
)

# Dialects with INSERT ... ON CONFLICT DO NOTHING ... RETURNING.
_INSERT_BY_DIALECT: dict[str, Callable[[Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


class Store:
    """The tracking store over one engine (SQLite file by default, or PostgreSQL)."""

    def __init__(
        self, engine: Engine, *, write_attempts: int = 5, retry_backoff_s: float = 0.1
    ) -> None:
        if write_attempts < 1:
            raise ValueError(f"write_attempts: must be >= 1 (got {write_attempts})")
        self.engine = engine
        self.write_attempts = write_attempts
        self.retry_backoff_s = retry_backoff_s

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Store:
        """An engine for `url`, migrated to the newest schema."""
        engine = make_engine(url)
        migrate(engine)
        return cls(engine, **kwargs)

    # --- transactions ------------------------------------------------------------------------

    def _read(self, work: Callable[[Session], T]) -> T:
        with managed_session(self.engine) as session:
            return work(session)

    def _write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in a write transaction, again from scratch while the database is locked.

        busy_timeout already waits inside SQLite; this covers what it cannot (a lock held
        longer than the timeout, a snapshot conflict), with exponential backoff.
        """
        for attempt in range(1, self.write_attempts + 1):
            try:
                with managed_session(self.engine, write=True) as session:
                    return work(session)
            except StoreError as err:
                if not err.retryable or attempt == self.write_attempts:
                    raise
                delay = self.retry_backoff_s * 2 ** (attempt - 1)
                logger.warning(
                    "database busy (%s); retry %d/%d in %.2fs",
                    err.message,
                    attempt,
                    self.write_attempts - 1,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    # --- runs --------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        run_id: str,
        preset: str,
        config: dict[str, Any],
        name: str | None = None,
        parent_id: str | None = None,
        parent_alert_id: int | None = None,
        ingest_token: str | None = None,
        kind: RunKind = RunKind.run,
        epochs_total: int | None = None,
    ) -> RunPublic:
        """A new queued run; it trains config["epochs"] (fewer with "stop_after_epochs"),
        or `epochs_total` when given: an SDK run's config is the user's own, and 0 means its
        length is unknown."""
        if not run_id or len(run_id) > RUN_ID_LENGTH:
            raise ValueError(f"run_id: must be 1..{RUN_ID_LENGTH} characters (got {run_id!r})")
        if epochs_total is not None:
            if epochs_total < 0:
                raise ValueError(f"epochs_total: must be >= 0 (got {epochs_total!r})")
            epochs = epochs_total
        else:
            epochs = config.get("epochs")
            if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
                raise ValueError(f"config.epochs: must be an integer >= 1 (got {epochs!r})")
            stop_after = config.get("stop_after_epochs")
            if isinstance(stop_after, int) and not isinstance(stop_after, bool) and stop_after >= 1:
                epochs = min(epochs, stop_after)

        def work(session: Session) -> RunPublic:
            now = utcnow()
            run = Run(
                id=run_id,
                name=name,
                preset=preset,
                kind=RunKind(kind).value,
                config=config,
                status=RunStatus.queued.value,
                parent_id=parent_id,
                parent_alert_id=parent_alert_id,
                created_at=now,
                ingest_token=ingest_token,
                epochs_total=epochs,
            )
            session.add(run)
            session.add(StatusEvent(run_id=run_id, status=RunStatus.queued.value, at=now))
            session.flush()
            return _run_public(run, children=[], open_alerts=0)

        return self._write(work)

    def get_run(self, run_id: str) -> RunPublic | None:
        def work(session: Session) -> RunPublic | None:
            runs = _load_runs(session, select(Run).where(Run.id == run_id))
            return runs[0] if runs else None

        return self._read(work)

    def list_runs(
        self,
        *,
        status: str | None = None,
        kinds: Sequence[RunKind] | None = USER_KINDS,
        parent_id: str | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[RunPublic]:
        """Newest first, of these kinds (None: every kind), optionally one run's children only;
        a fixed number of queries however many runs (no N+1)."""
        if limit < 1:
            raise ValueError(f"limit: must be >= 1 (got {limit})")
        if offset < 0:
            raise ValueError(f"offset: must be >= 0 (got {offset})")
        stmt = select(Run)
        if status is not None:
            stmt = stmt.where(Run.status == _status(status).value)
        if kinds is not None:
            stmt = stmt.where(Run.kind.in_([RunKind(k).value for k in kinds]))
        if parent_id is not None:
            stmt = stmt.where(Run.parent_id == parent_id)
        stmt = stmt.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit).offset(offset)
        return self._read(lambda session: _load_runs(session, stmt))

    def find_run_with_config(self, config: dict[str, Any]) -> RunPublic | None:
        """The oldest user run (kind run) whose config equals `config`, if any."""

        def work(session: Session) -> str | None:
            rows = session.execute(
                select(Run.id, Run.config).where(Run.kind == RunKind.run.value)
                .order_by(Run.created_at, Run.id)
            )
            return next((run_id for run_id, cfg in rows if cfg == config), None)

        found = self._read(work)
        return None if found is None else self.get_run(found)

    def runs_in_status(self, *statuses: RunStatus) -> list[RunPublic]:
        """Runs in any of `statuses`, oldest first (queue order)."""
        values = [_status(s).value for s in statuses]
        stmt = select(Run).where(Run.status.in_(values)).order_by(Run.created_at, Run.id)
        return self._read(lambda session: _load_runs(session, stmt))

    def count_by_status(self, kinds: Sequence[RunKind] | None = None) -> dict[str, int]:
        """Every status, zero included; of these kinds only (None: every kind)."""

        def work(session: Session) -> dict[str, int]:
            counts = {s.value: 0 for s in RunStatus}
            stmt = select(Run.status, func.count()).group_by(Run.status)
            if kinds is not None:
                stmt = stmt.where(Run.kind.in_([RunKind(k).value for k in kinds]))
            rows = session.execute(stmt)
            counts.update({status: n for status, n in rows})
            return counts

        return self._read(work)

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        reason: str | None = None,
        *,
        pid: int | None = None,
    ) -> RunPublic | None:
        """Move a run to `status` and record the event; a finished run never changes again.

        A finished run is returned unchanged (no event). Repeating the current status with
        the same reason records no second event (a `pid` given is still stored).
        """
        new = _status(status)

        def work(session: Session) -> RunPublic | None:
            # FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers.
            run = session.get(Run, run_id, with_for_update=True)
            if run is None:
                return None
            if RunStatus(run.status).finished:
                return _load_runs(session, select(Run).where(Run.id == run_id))[0]
            now = utcnow()
            if pid is not None:
                run.pid = pid
            if (run.status, run.status_reason) != (new.value, reason):
                run.status = new.value
                run.status_reason = reason
                session.add(StatusEvent(run_id=run_id, status=new.value, reason=reason, at=now))
            if new is RunStatus.running and run.started_at is None:
                run.started_at = now
            if new.finished:
                run.finished_at = now
            session.flush()
            return _load_runs(session, select(Run).where(Run.id == run_id))[0]

        return self._write(work)

    def get_ingest_token(self, run_id: str) -> str | None:
        return self._read(
            lambda session: session.scalar(select(Run.ingest_token).where(Run.id == run_id))
        )

    def get_pid(self, run_id: str) -> int | None:
        return self._read(lambda session: session.scalar(select(Run.pid).where(Run.id == run_id)))

    def set_run_data(self, run_id: str, data: dict[str, Any]) -> None:
        """Store the trainer's `started` payload `data` (no-op for an unknown run)."""
        self._write(
            lambda session: session.execute(update(Run).where(Run.id == run_id).values(data=data))
        )

    def set_summary(self, run_id: str, summary: dict[str, Any]) -> None:
        """Store the trainer's final summary (no-op for an unknown run)."""
        self._write(
            lambda session: session.execute(
                update(Run).where(Run.id == run_id).values(summary=summary)
            )
        )

    def status_events(self, run_id: str) -> list[StatusEventPublic]:
        def work(session: Session) -> list[StatusEventPublic]:
            stmt = (
                select(StatusEvent)
                .where(StatusEvent.run_id == run_id)
                .order_by(StatusEvent.at, StatusEvent.id)
            )
            return [
                StatusEventPublic(run_id=e.run_id, status=e.status, reason=e.reason, at=e.at)
                for e in session.scalars(stmt)
            ]

        return self._read(work)

    # --- metrics -----------------------------------------------------------------------------

    def add_metrics(self, records: Sequence[Mapping[str, Any]]) -> list[bool]:
        """Store validated EpochRecord dicts (any runs) in one transaction.

        Returns, per record, True if stored now and False if (run_id, epoch) was already
        stored, earlier or in this batch. Updates each run's last_epoch / eta_seconds (from
        its highest epoch), best_epoch / f1_at_best / shd_at_best (from its highest epoch
        with is_best) and max_f1_seen / max_f1_epoch (its highest F1). A record that
        violates the schema (a required field null, an unknown run) fails the whole batch
        with StoreError("integrity"): nothing of it is written.
        """
        if not records:
            return []
        rows = [_metric_row(record) for record in records]

        def work(session: Session) -> list[bool]:
            received = utcnow()
            for row in rows:
                row["received_at"] = received
            inserted = _insert_skipping_duplicates(session, _METRICS, rows, ("run_id", "epoch"))
            stored: list[bool] = []
            seen: set[tuple[Any, ...]] = set()
            for row in rows:
                key = (row["run_id"], row["epoch"])
                stored.append(key in inserted and key not in seen)
                seen.add(key)
            _update_run_progress(session, [r for r, ok in zip(rows, stored, strict=True) if ok])
            return stored

        return self._write(work)

    def get_metrics(
        self,
        run_id: str,
        *,
        since_epoch: int = 0,
        until_epoch: int | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The run's records after epoch `since_epoch` up to `until_epoch` (all by default),
        by epoch.

        Each dict has exactly the EpochRecord field names, in its order (or only `fields`,
        plus `epoch`); nulls stay None.
        """
        names = list(METRIC_FIELDS)
        if fields is not None:
            unknown = set(fields) - set(METRIC_FIELDS)
            if unknown:
                raise ValueError(f"fields: unknown {sorted(unknown)}")
            names = [n for n in METRIC_FIELDS if n in fields or n == "epoch"]
        columns = [_METRICS.c[name] for name in names]
        stmt = (
            select(*columns)
            .where(_METRICS.c.run_id == run_id, _METRICS.c.epoch > since_epoch)
            .order_by(_METRICS.c.epoch)
        )
        if until_epoch is not None:
            stmt = stmt.where(_METRICS.c.epoch <= until_epoch)
        return self._read(
            lambda session: [
                dict(zip(names, row, strict=True)) for row in session.execute(stmt)
            ]
        )

    def latest_with(
        self, run_id: str, metrics: Sequence[str], columns: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Per metric, `columns` of the run's newest record in which that metric is not null
        (a metric no record has is absent). One indexed query per metric, one row each: the
        cost of a call does not grow with the run."""
        unknown = (set(metrics) | set(columns)) - set(METRIC_FIELDS)
        if unknown:
            raise ValueError(f"fields: unknown {sorted(unknown)}")
        selected = [_METRICS.c[name] for name in columns]

        def work(session: Session) -> dict[str, dict[str, Any]]:
            latest = {}
            for metric in metrics:
                row = session.execute(
                    select(*selected)
                    .where(_METRICS.c.run_id == run_id, _METRICS.c[metric].is_not(None))
                    .order_by(_METRICS.c.epoch.desc())
                    .limit(1)
                ).first()
                if row is not None:
                    latest[metric] = dict(zip(columns, row, strict=True))
            return latest

        return self._read(work)

    def get_metric(self, run_id: str, epoch: int) -> dict[str, Any] | None:
        """One stored record, as get_metrics gives it; None if that epoch is not stored."""
        found = self.get_metrics(run_id, since_epoch=epoch - 1, until_epoch=epoch)
        return found[0] if found else None

    # --- graphs ------------------------------------------------------------------------------

    def add_graph(self, *, run_id: str, epoch: int, probabilities: list[list[float]]) -> bool:
        """Store one evaluation epoch's edge probabilities; False if already stored."""

        def work(session: Session) -> bool:
            row = {
                "run_id": run_id,
                "epoch": epoch,
                "probabilities": probabilities,
                "received_at": utcnow(),
            }
            return bool(_insert_skipping_duplicates(session, _GRAPHS, [row], ("run_id", "epoch")))

        return self._write(work)

    def get_graph(self, run_id: str, *, epoch: int | None = None) -> dict[str, Any] | None:
        """`{"epoch", "probabilities"}` at `epoch`, or the latest one; None if none yet."""

        def work(session: Session) -> dict[str, Any] | None:
            query = select(Graph).where(Graph.run_id == run_id)
            if epoch is not None:
                query = query.where(Graph.epoch == epoch)
            row = session.scalars(query.order_by(Graph.epoch.desc()).limit(1)).first()
            if row is None:
                return None
            return {"epoch": row.epoch, "probabilities": row.probabilities}

        return self._read(work)

    # --- alerts ------------------------------------------------------------------------------

    def add_alert(
        self,
        *,
        run_id: str,
        rule: str,
        severity: str,
        epoch: int | None,
        message: str,
        cause: str,
        suggested_changes: dict[str, Any],
        evidence: dict[str, Any],
        candidates: list[dict[str, Any]] | None = None,
    ) -> AlertPublic | None:
        """The new alert, or None when `rule` already fired for the run (or the run is unknown).

        Once per rule per run is the UNIQUE (run_id, rule) constraint's job, so two
        concurrent callers cannot both raise it.
        """

        def work(session: Session) -> AlertPublic | None:
            if session.get(Run, run_id) is None:
                return None
            row = {
                "run_id": run_id,
                "rule": rule,
                "severity": severity,
                "epoch": epoch,
                "message": message,
                "cause": cause,
                "suggested_changes": suggested_changes,
                "evidence": evidence,
                "candidates": candidates,
                "created_at": utcnow(),
            }
            if not _insert_skipping_duplicates(session, _ALERTS, [row], ("run_id", "rule")):
                return None
            alert = session.scalars(
                select(Alert).where(Alert.run_id == run_id, Alert.rule == rule)
            ).one()
            return _alert_public(alert)

        return self._write(work)

    def list_alerts(self, run_id: str) -> list[AlertPublic]:
        stmt = select(Alert).where(Alert.run_id == run_id).order_by(Alert.created_at, Alert.id)
        return self._read(lambda session: [_alert_public(alert) for alert in session.scalars(stmt)])

    def get_alert(self, alert_id: int) -> AlertPublic | None:
        def work(session: Session) -> AlertPublic | None:
            alert = session.get(Alert, alert_id)
            return None if alert is None else _alert_public(alert)

        return self._read(work)

    def set_verification(self, alert_id: int, verification: dict[str, Any]) -> AlertPublic | None:
        """Record what the probes of an alert's fixes showed; the alert as it now reads."""

        def work(session: Session) -> AlertPublic | None:
            alert = session.get(Alert, alert_id, with_for_update=True)
            if alert is None:
                return None
            alert.verification = verification
            session.flush()
            return _alert_public(alert)

        return self._write(work)

    def alerts_with_verification(self) -> list[AlertPublic]:
        """Every alert that has (or had) probes, oldest first."""
        stmt = select(Alert).where(Alert.verification.is_not(None)).order_by(Alert.id)
        return self._read(lambda session: [_alert_public(a) for a in session.scalars(stmt)])

    def fired_rules(self, run_id: str) -> set[str]:
        return self._read(
            lambda session: set(session.scalars(select(Alert.rule).where(Alert.run_id == run_id)))
        )

    # --- health ------------------------------------------------------------------------------

    def ping(self) -> str:
        """A trivial query; the dialect's name (sqlite, postgresql) when the database answers."""
        self._read(lambda session: session.execute(text("SELECT 1")).scalar_one())
        return self.engine.dialect.name


# --- helpers (all run inside a Store transaction) ---------------------------------------------


def _status(value: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in RunStatus)
        raise ValueError(f"status: unknown status {value!r}; allowed: {allowed}") from None


def _load_runs(session: Session, stmt: Any) -> list[RunPublic]:
    """Runs selected by `stmt` with their alert counts and children: two queries in all."""
    alert_count = (
        select(func.count()).where(Alert.run_id == Run.id).correlate(Run).scalar_subquery()
    )
    rows = session.execute(stmt.add_columns(alert_count)).all()
    if not rows:
        return []
    ids = [run.id for run, _ in rows]
    children: dict[str, list[str]] = {run_id: [] for run_id in ids}
    child_rows = session.execute(
        # Restarts only: probes are listed by GET /api/runs/{id}/probes.
        select(Run.parent_id, Run.id)
        .where(Run.parent_id.in_(ids), Run.kind == RunKind.run.value)
        .order_by(Run.created_at, Run.id)
    )
    for parent_id, child_id in child_rows:
        children[parent_id].append(child_id)
    return [_run_public(run, children=children[run.id], open_alerts=n) for run, n in rows]


# The runs columns a RunPublic shows as they are (never the pid or the ingest token).
_RUN_COLUMNS_PUBLIC = tuple(
    name for name in RunPublic.model_fields
    if name in Run.__table__.columns and name != "kind"
)


def _run_public(run: Run, *, children: list[str], open_alerts: int) -> RunPublic:
    progress = 0.0
    if run.last_epoch is not None and run.epochs_total > 0:
        progress = min(1.0, run.last_epoch / run.epochs_total)
    # The row's columns by RunPublic's field names; the rest is computed here.
    columns = {name: getattr(run, name) for name in _RUN_COLUMNS_PUBLIC}
    return RunPublic(
        **columns,
        kind=RunKind(run.kind or RunKind.run.value),
        children=children,
        progress=progress,
        open_alerts=open_alerts,
    )


def _alert_public(alert: Alert) -> AlertPublic:
    return AlertPublic(
        id=alert.id,
        run_id=alert.run_id,
        rule=alert.rule,
        severity=alert.severity,
        epoch=alert.epoch,
        message=alert.message,
        cause=alert.cause,
        suggested_changes=alert.suggested_changes,
        evidence=alert.evidence,
        candidates=alert.candidates or [],
        verification=alert.verification,
        created_at=alert.created_at,
    )


def _metric_row(record: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(record) - set(METRIC_FIELDS)
    if unknown:
        raise ValueError(f"record: unknown fields {sorted(unknown)}; expected EpochRecord fields")
    # Every row carries every column: one executemany needs identical keys, and an absent
    # required value must reach the database as NULL to be refused there.
    row = {name: record.get(name) for name in METRIC_FIELDS}
    row["is_best"] = bool(record.get("is_best", False))
    return row


def _insert_skipping_duplicates(
    session: Session, table: Table, rows: list[dict[str, Any]], key: tuple[str, ...]
) -> set[tuple[Any, ...]]:
    """Insert `rows`, skipping any whose `key` (a unique constraint) exists; the keys inserted.

    Other constraint violations still raise, failing the transaction.
    """
    key_columns = [table.c[name] for name in key]
    make_insert = _INSERT_BY_DIALECT.get(session.get_bind().dialect.name)
    if make_insert is not None:
        stmt = (
            make_insert(table)
            .on_conflict_do_nothing(index_elements=key_columns)
            .returning(*key_columns)
        )
        # executemany + RETURNING: SQLAlchemy batches it into multi-row INSERTs.
        return {tuple(row) for row in session.execute(stmt, rows)}
    # Other backends: skip the keys present, then insert. Correct while writers are
    # serialised; a racing duplicate fails the transaction with StoreError("integrity").
    wanted = {tuple(row[name] for name in key) for row in rows}
    present = {
        tuple(row)
        for row in session.execute(select(*key_columns).where(tuple_(*key_columns).in_(wanted)))
    }
    fresh: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        row_key = tuple(row[name] for name in key)
        if row_key not in present:
            fresh.setdefault(row_key, row)
    if fresh:
        session.execute(insert(table), list(fresh.values()))
    return set(fresh)


def _update_run_progress(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Advance each run's last/best epoch from newly stored rows; never moves them back.

    The WHERE clauses compare with what is stored, so records arriving out of order (a
    resend after a reconnect) cannot regress a run's progress.
    """
    latest: dict[str, dict[str, Any]] = {}
    best: dict[str, dict[str, Any]] = {}
    top_f1: dict[str, dict[str, Any]] = {}
    for row in rows:
        run_id = row["run_id"]
        if run_id not in latest or row["epoch"] > latest[run_id]["epoch"]:
            latest[run_id] = row
        if row["is_best"] and (run_id not in best or row["epoch"] > best[run_id]["epoch"]):
            best[run_id] = row
        if row["f1"] is not None and (
            run_id not in top_f1
            or (-row["f1"], row["epoch"]) < (-top_f1[run_id]["f1"], top_f1[run_id]["epoch"])
        ):
            top_f1[run_id] = row
    # One prepared Core statement each, executed for every run at once: an ORM update per
    # run per batch was half of the backend's ingest time.
    if latest:
        session.execute(
            _ADVANCE_LAST,
            [{"rid": r, "epoch": row["epoch"], "eta": row["eta_seconds"]}
             for r, row in latest.items()],
        )
    if best:
        session.execute(
            _ADVANCE_BEST,
            [{"rid": r, "epoch": row["epoch"], "f1": row["f1"], "shd": row["shd"]}
             for r, row in best.items()],
        )
    if top_f1:
        session.execute(
            _ADVANCE_MAX_F1,
            [{"rid": r, "epoch": row["epoch"], "f1": row["f1"]} for r, row in top_f1.items()],
        )
