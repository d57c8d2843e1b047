"""metrics: per-term gradient norms and update_ratio; runs: F1 at the best checkpoint vs max F1

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

- metrics gains the EpochRecord's optional `grad_norm_{recon,sparse,acyclic,disen}` and
  `update_ratio`; records stored before have none (NULL), as the trainer never measured them.
- runs.best_f1 / best_shd become f1_at_best / shd_at_best: they always were the scores at the
  label-free best checkpoint (lowest val_recon), and were read as "the best F1 ever seen".
- runs gains max_f1_seen / max_f1_epoch, the highest F1 of any evaluation (first epoch to
  reach it), kept on ingest; existing runs get it computed from their stored metrics here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

METRIC_COLUMNS = (
    "grad_norm_recon",
    "grad_norm_sparse",
    "grad_norm_acyclic",
    "grad_norm_disen",
    "update_ratio",
)
RENAMED = (("best_f1", "f1_at_best"), ("best_shd", "shd_at_best"))


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        for name in METRIC_COLUMNS:
            batch.add_column(sa.Column(name, sa.Double(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        for old, new in RENAMED:
            batch.alter_column(old, new_column_name=new)
        batch.add_column(sa.Column("max_f1_seen", sa.Double(), nullable=True))
        batch.add_column(sa.Column("max_f1_epoch", sa.Integer(), nullable=True))
    # Correlated subqueries, valid on SQLite and PostgreSQL alike; each probes the
    # (run_id, epoch) unique index, so this costs one pass over the metrics.
    op.execute(
        "UPDATE runs SET max_f1_seen = "
        "(SELECT MAX(m.f1) FROM metrics m WHERE m.run_id = runs.id)"
    )
    op.execute(
        "UPDATE runs SET max_f1_epoch = (SELECT MIN(m.epoch) FROM metrics m "
        "WHERE m.run_id = runs.id AND m.f1 = runs.max_f1_seen) "
        "WHERE max_f1_seen IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("max_f1_epoch")
        batch.drop_column("max_f1_seen")
        for old, new in RENAMED:
            batch.alter_column(new, new_column_name=old)
    with op.batch_alter_table("metrics") as batch:
        for name in reversed(METRIC_COLUMNS):
            batch.drop_column(name)
