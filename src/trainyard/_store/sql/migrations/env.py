"""Alembic environment: runs on the connection trainyard hands it (``config.attributes['connection']``)."""

from __future__ import annotations

from alembic import context

from trainyard._store.sql.schema import metadata

target_metadata = metadata


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        version_table="ty_alembic_version",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
