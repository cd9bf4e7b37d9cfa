"""Registered models: what a model name carries beyond its versions (description, tags, aliases),
so an MLflow client's registered model, empty or not, is a trainyard record.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ty_registered_models",
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("ty_workspaces.id"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("aliases", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ty_registered_models")
