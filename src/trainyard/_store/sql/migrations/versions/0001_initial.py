"""Initial schema: workspaces, experiments, runs, status events, tags, properties, metric chunks,
environments, compute targets.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ty_workspaces",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ty_experiments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("ty_workspaces.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("archived", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("run_counter", sa.Integer, nullable=False),
        sa.UniqueConstraint("workspace_id", "name", name="uq_experiment_name"),
    )
    op.create_table(
        "ty_runs",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(255), nullable=False, unique=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("ty_experiments.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("run_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("parent_run_id", sa.String(255), nullable=True),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("target", sa.String(255), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("start_time", sa.Float, nullable=True),
        sa.Column("end_time", sa.Float, nullable=True),
        sa.Column("heartbeat_at", sa.Float, nullable=True),
        sa.Column("definition", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("runtime", sa.Text, nullable=True),
        sa.Column("snapshot_id", sa.String(128), nullable=True),
        sa.Column("submitted_by", sa.String(255), nullable=True),
    )
    op.create_index("ix_runs_experiment_created", "ty_runs", ["experiment_id", "created_at"])
    op.create_index("ix_runs_parent", "ty_runs", ["parent_run_id"])
    op.create_index("ix_runs_status", "ty_runs", ["status"])
    op.create_table(
        "ty_run_status_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_pk", sa.Integer, sa.ForeignKey("ty_runs.pk"), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
    )
    op.create_index("ix_status_events_run", "ty_run_status_events", ["run_pk"])
    for name in ("ty_run_tags", "ty_run_properties"):
        op.create_table(
            name,
            sa.Column("run_pk", sa.Integer, sa.ForeignKey("ty_runs.pk"), primary_key=True),
            sa.Column("key", sa.String(255), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
    op.create_table(
        "ty_metric_chunks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_pk", sa.Integer, sa.ForeignKey("ty_runs.pk"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("dtype", sa.String(1), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("timestamps", sa.LargeBinary, nullable=False),
        sa.Column("vals", sa.LargeBinary, nullable=True),
        sa.Column("steps", sa.LargeBinary, nullable=True),
        sa.Column("data", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
    )
    op.create_index("ix_metric_chunks_run_name", "ty_metric_chunks", ["run_pk", "name"])
    op.create_table(
        "ty_environments",
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("ty_workspaces.id"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ty_compute_targets",
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("ty_workspaces.id"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("target_type", sa.String(64), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "ty_compute_targets",
        "ty_environments",
        "ty_metric_chunks",
        "ty_run_properties",
        "ty_run_tags",
        "ty_run_status_events",
        "ty_runs",
        "ty_experiments",
        "ty_workspaces",
    ):
        op.drop_table(name)
