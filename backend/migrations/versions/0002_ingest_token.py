"""runs.ingest_token: the secret a run's trainer presents on the ingest websocket

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, so rows of runs created before this revision stay valid as they are.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("ingest_token", sa.String(128), nullable=True))


def downgrade() -> None:
    # SQLite rebuilds the table here (batch mode): the env disables foreign keys for it.
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("ingest_token")
