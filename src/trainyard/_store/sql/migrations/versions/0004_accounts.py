"""Accounts for the team server (users, API tokens, workspace roles), idempotent request keys,
and a client key on metric chunks for deduplicating retried uploads.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ty_users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
        sa.Column("disabled", sa.Boolean, nullable=False, default=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ty_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("ty_users.id"), nullable=True),
        sa.Column("workspace_id", sa.String(36), nullable=True),
        sa.Column("run_id", sa.String(255), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("last_used_at", sa.Float, nullable=True),
    )
    op.create_index("ix_tokens_user", "ty_tokens", ["user_id"])
    op.create_table(
        "ty_role_bindings",
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("ty_workspaces.id"), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("ty_users.id"), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )
    op.create_table(
        "ty_idempotency",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("ty_metric_chunks") as batch:
        batch.add_column(sa.Column("client_key", sa.String(96), nullable=True))
    op.create_index(
        "ux_metric_chunks_client_key", "ty_metric_chunks", ["run_pk", "client_key"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ux_metric_chunks_client_key", "ty_metric_chunks")
    with op.batch_alter_table("ty_metric_chunks") as batch:
        batch.drop_column("client_key")
    op.drop_table("ty_idempotency")
    op.drop_table("ty_role_bindings")
    op.drop_index("ix_tokens_user", "ty_tokens")
    op.drop_table("ty_tokens")
    op.drop_table("ty_users")
