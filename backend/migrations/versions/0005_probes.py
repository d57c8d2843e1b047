"""probes: runs.kind, alerts' candidate fixes and their verification, metrics.grad_norm_p90

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

- runs.kind: "run" (a user's) or "probe" (a short run the backend starts to try an alert's
  candidate fix, linked by parent_id and parent_alert_id); every existing run is a "run".
- alerts.candidates: the rule's fixes in its order of preference, each with what it expects;
  alerts.verification: what the probes of those fixes showed. NULL for alerts stored before.
- metrics.grad_norm_p90: the epoch's 90th-percentile pre-clip gradient norm; NULL before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.add_column(sa.Column("grad_norm_p90", sa.Double(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="run")
        )
        batch.create_index("ix_runs_kind", ["kind"])
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("candidates", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("verification", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("verification")
        batch.drop_column("candidates")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_kind")
        batch.drop_column("kind")
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("grad_norm_p90")
