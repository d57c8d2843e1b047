"""metrics: every metric nullable and a `custom` column, for runs fed by the SDK

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

An SDK run's loop logs the subset of the health fields it measures, plus numbers of its
own. The columns that were NOT NULL become nullable (our trainer's records stay complete:
ingest checks them by run kind), and metrics.custom holds the loop's own keys as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns as they were at 0005, frozen here: a migration must not follow later models.
INTEGER_COLUMNS = ("step", "edges_at_05", "edges_tuned", "edges_topk")
FLOAT_COLUMNS = (
    "time", "lr", "loss_total", "loss_recon", "loss_sparse", "loss_acyclic", "loss_disen",
    "share_recon", "share_sparse", "share_acyclic", "share_disen", "clip_pct",
    "grad_norm_mean", "grad_norm_max", "logit_mean", "logit_std", "threshold_tuned",
    "epoch_seconds", "eta_seconds",
)


def _columns() -> list[tuple[str, sa.types.TypeEngine[object]]]:
    return [(n, sa.Integer()) for n in INTEGER_COLUMNS] + [
        (n, sa.Double()) for n in FLOAT_COLUMNS
    ]


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        for name, type_ in _columns():
            batch.alter_column(name, existing_type=type_, nullable=True)
        batch.add_column(sa.Column("custom", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Partial SDK records cannot satisfy NOT NULL: they go, with their run's other rows kept.
    op.execute(
        "DELETE FROM metrics WHERE "
        + " OR ".join(f"{name} IS NULL" for name, _ in _columns())
    )
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("custom")
        for name, type_ in _columns():
            batch.alter_column(name, existing_type=type_, nullable=False)
