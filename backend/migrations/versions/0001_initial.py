"""initial schema: runs, metrics, alerts, status_events

Revision ID: 0001
Revises:
Create Date: 2025-11-24

Written out by hand, not imported from backend/orm.py: a migration must keep describing the
schema of its own day however the models change later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_ID = sa.String(80)
UTC_DATETIME = sa.DateTime(timezone=True)


def _run_fk(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=name, ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", RUN_ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("preset", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("parent_id", RUN_ID, nullable=True),
        sa.Column("parent_alert_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("epochs_total", sa.Integer(), nullable=False),
        sa.Column("last_epoch", sa.Integer(), nullable=True),
        sa.Column("eta_seconds", sa.Double(), nullable=True),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("best_f1", sa.Double(), nullable=True),
        sa.Column("best_shd", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(["parent_id"], ["runs.id"], name="fk_runs_parent_id_runs"),
        # runs <-> alerts is a cycle. Where ALTER can add constraints (PostgreSQL) this one
        # is left out here and added once alerts exists; SQLite takes it inline.
        sa.ForeignKeyConstraint(
            ["parent_alert_id"],
            ["alerts.id"],
            name="fk_runs_parent_alert_id_alerts",
            use_alter=True,
        ),
    )
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_parent_id", "runs", ["parent_id"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("suggested_changes", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        _run_fk("fk_alerts_run_id_runs"),
        sa.UniqueConstraint("run_id", "rule", name="uq_alerts_run_id_rule"),
    )
    if op.get_bind().dialect.supports_alter:
        op.create_foreign_key(
            "fk_runs_parent_alert_id_alerts", "runs", "alerts", ["parent_alert_id"], ["id"]
        )

    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("time", sa.Double(), nullable=False),
        sa.Column("lr", sa.Double(), nullable=False),
        sa.Column("loss_total", sa.Double(), nullable=False),
        sa.Column("loss_recon", sa.Double(), nullable=False),
        sa.Column("loss_sparse", sa.Double(), nullable=False),
        sa.Column("loss_acyclic", sa.Double(), nullable=False),
        sa.Column("loss_disen", sa.Double(), nullable=False),
        sa.Column("share_recon", sa.Double(), nullable=False),
        sa.Column("share_sparse", sa.Double(), nullable=False),
        sa.Column("share_acyclic", sa.Double(), nullable=False),
        sa.Column("share_disen", sa.Double(), nullable=False),
        sa.Column("clip_pct", sa.Double(), nullable=False),
        sa.Column("grad_norm_mean", sa.Double(), nullable=False),
        sa.Column("grad_norm_max", sa.Double(), nullable=False),
        sa.Column("logit_mean", sa.Double(), nullable=False),
        sa.Column("logit_std", sa.Double(), nullable=False),
        sa.Column("edges_at_05", sa.Integer(), nullable=False),
        sa.Column("threshold_tuned", sa.Double(), nullable=False),
        sa.Column("edges_tuned", sa.Integer(), nullable=False),
        sa.Column("edges_topk", sa.Integer(), nullable=False),
        sa.Column("shd", sa.Integer(), nullable=True),
        sa.Column("f1", sa.Double(), nullable=True),
        sa.Column("precision", sa.Double(), nullable=True),
        sa.Column("recall", sa.Double(), nullable=True),
        sa.Column("f1_skeleton", sa.Double(), nullable=True),
        sa.Column("val_recon", sa.Double(), nullable=True),
        sa.Column("is_best", sa.Boolean(), nullable=False),
        sa.Column("epoch_seconds", sa.Double(), nullable=False),
        sa.Column("eta_seconds", sa.Double(), nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metrics"),
        _run_fk("fk_metrics_run_id_runs"),
        # Its unique index is also the (run_id, epoch) lookup index.
        sa.UniqueConstraint("run_id", "epoch", name="uq_metrics_run_id_epoch"),
    )

    op.create_table(
        "status_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_status_events"),
        _run_fk("fk_status_events_run_id_runs"),
    )
    op.create_index("ix_status_events_run_id", "status_events", ["run_id"])


def downgrade() -> None:
    op.drop_table("status_events")
    op.drop_table("metrics")
    if op.get_bind().dialect.supports_alter:
        op.drop_constraint("fk_runs_parent_alert_id_alerts", "runs", type_="foreignkey")
    op.drop_table("alerts")
    op.drop_table("runs")
