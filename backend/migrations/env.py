"""Alembic environment, driven by backend.db.migrate (the engine arrives in config.attributes).

Offline mode (`--sql`) renders the SQL for the URL in the config, for a DBA to review.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from backend.db import WRITE_TX, make_engine
from backend.orm import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    is_sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if is_sqlite:
            # Batch mode rebuilds a table (create copy, drop, rename); with foreign keys
            # enforced the drop would cascade or fail. The pragma only takes effect outside
            # a transaction, hence on the raw connection before BEGIN.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")
        try:
            context.configure(
                connection=connection.execution_options(**{WRITE_TX: True}),
                target_metadata=target_metadata,
                render_as_batch=is_sqlite,
                # backend.db emits BEGIN itself for SQLite, so DDL is transactional there too:
                # a failed migration leaves the previous revision intact.
                transactional_ddl=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if is_sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys = ON")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
