"""Engine, SQLite pragmas, Alembic migrations and the managed session every store call uses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

# The package folder, not the working directory: migrations ship inside the installed package.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DB_FILENAME = "causalwatch.db"
DEFAULT_BUSY_TIMEOUT_MS = 10_000

# Execution option asking for a write transaction; SQLite then takes the write lock up front.
WRITE_TX = "causalwatch_write"

_BUSY_MARKERS = (
    "database is locked",
    "database table is locked",
    "database is busy",
    "deadlock detected",
    "could not serialize access",
    "could not obtain lock",
)


class StoreError(Exception):
    """A database failure in domain terms; `code` is one of:

    - ``integrity``: a constraint refused the write (NOT NULL, foreign key, unique);
    - ``busy``: the database stayed locked by another writer (retry later; HTTP 503);
    - ``unavailable``: the database cannot be used (missing file, disk full, bad schema);
    - ``database``: any other driver error.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code == "busy"


def to_store_error(err: SQLAlchemyError) -> StoreError:
    """Map a SQLAlchemy error to the one domain exception (the driver's message kept)."""
    lines = str(getattr(err, "orig", None) or err).strip().splitlines()
    detail = lines[0] if lines else type(err).__name__
    if isinstance(err, IntegrityError):
        return StoreError("integrity", detail)
    if isinstance(err, OperationalError):
        if any(marker in detail.lower() for marker in _BUSY_MARKERS):
            return StoreError("busy", detail)
        return StoreError("unavailable", detail)
    return StoreError("database", detail)


def default_sqlite_url(runs_dir: Path) -> str:
    """The default database: one SQLite file beside the runs' logs."""
    path = (Path(runs_dir).expanduser().resolve() / DB_FILENAME).as_posix()
    return f"sqlite:///{path}"


def make_engine(url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Engine:
    """An engine for `url`; SQLite files get WAL, a busy timeout and enforced foreign keys.

    Any other URL (PostgreSQL via DATABASE_URL) is passed to SQLAlchemy unchanged.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    _configure_sqlite(engine, busy_timeout_ms)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # sqlite3 would otherwise open transactions lazily (only before DML) and never for
        # SELECT/DDL; SQLAlchemy emits BEGIN itself below so each session is one transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # First, so that switching to WAL waits for a concurrent writer instead of failing.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() not in ("wal", "memory"):
                # WAL: the dashboard's readers never block the ingest writer (and vice versa).
                cursor.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; FULL costs an fsync
            # per commit, which the per-epoch ingest does not need.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        # A write takes the lock at BEGIN, where busy_timeout applies; a deferred transaction
        # that reads and then writes can instead fail at once when another writer got there
        # first (SQLITE_BUSY_SNAPSHOT, no busy wait).
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_TX) else "BEGIN")


@contextmanager
def managed_session(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, else roll back; SQLAlchemy errors become StoreError.

    `write=True` marks a transaction that will write (SQLite takes the write lock at BEGIN).
    """
    session = Session(engine, expire_on_commit=False, autoflush=False)
    try:
        if write:
            session.connection(execution_options={WRITE_TX: True})
        yield session
        session.commit()
    except SQLAlchemyError as err:
        session.rollback()
        raise to_store_error(err) from err
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic configured in code (no alembic.ini): the packaged scripts, this engine."""
    config = Config()
    # configparser interpolates '%': escape it in paths and URLs.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if engine is not None:
        config.attributes["engine"] = engine
        url = engine.url.render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest); a no-op when already there."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except SQLAlchemyError as err:
        raise to_store_error(err) from err
