"""Model registry.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ty_models",
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("ty_workspaces.id"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("properties", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(255), nullable=True),
        sa.Column("experiment_name", sa.String(255), nullable=True),
        sa.Column("framework", sa.String(64), nullable=True),
        sa.Column("framework_version", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("storage_prefix", sa.Text, nullable=False),
        sa.Column("model_root", sa.Text, nullable=False),
        sa.Column("files", sa.Text, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_models_run", "ty_models", ["run_id"])


def downgrade() -> None:
    op.drop_table("ty_models")
