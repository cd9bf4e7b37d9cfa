"""Summaries of numeric metric chunks: each chunk's step and time range and, per block of 256
points, its min, max and last value (``trainyard._store.summary``), so a cold chart of 10,000,000
points reads 1.6 MB of summaries instead of 160 MB of blobs. A table of their own: SQLite reads a
column stored after a row's blobs by walking the blobs' overflow pages. Existing chunks are
summarised here, in batches (NumPy where installed; pure Python otherwise).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Chunks read per batch of the backfill (100,000-point chunks: ~240 MB of blobs at most).
_BATCH = 100


def upgrade() -> None:
    op.create_table(
        "ty_metric_summaries",
        sa.Column(
            "chunk_id", sa.Integer, sa.ForeignKey("ty_metric_chunks.id"), primary_key=True
        ),
        sa.Column("run_pk", sa.Integer, sa.ForeignKey("ty_runs.pk"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_step", sa.BigInteger, nullable=True),
        sa.Column("last_step", sa.BigInteger, nullable=True),
        sa.Column("first_time", sa.Float, nullable=False),
        sa.Column("last_time", sa.Float, nullable=False),
        sa.Column("blocks", sa.LargeBinary, nullable=False),
    )
    op.create_index(
        "ix_metric_summaries_run_name", "ty_metric_summaries", ["run_pk", "name", "chunk_id"]
    )
    _backfill(op.get_bind())


def _backfill(conn: sa.engine.Connection) -> None:
    from trainyard._store.entities import MetricChunk
    from trainyard._store.summary import summarize

    names = ("id", "run_pk", "name", "kind", "dtype", "count", "timestamps", "vals", "steps")
    chunks = sa.table("ty_metric_chunks", *(sa.column(c) for c in names))
    summaries = sa.table(
        "ty_metric_summaries",
        *(sa.column(c) for c in ("chunk_id", "run_pk", "name", "count", "first_step")),
        *(sa.column(c) for c in ("last_step", "first_time", "last_time", "blocks")),
    )
    c = chunks.c
    after = 0
    while True:
        rows = conn.execute(
            sa.select(*(c[n] for n in names))
            .where(c.id > after, c.kind == "scalar", c.dtype != "j")
            .order_by(c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        out = []
        for r in rows:
            chunk = MetricChunk(
                name=r.name,
                kind=r.kind,
                dtype=r.dtype,
                count=int(r[5]),
                timestamps=bytes(r.timestamps),
                values=None if r.vals is None else bytes(r.vals),
                steps=None if r.steps is None else bytes(r.steps),
            )
            found = summarize(chunk)
            if found is not None:
                out.append({"chunk_id": r.id, "run_pk": r.run_pk, "name": r.name} | found)
        if out:
            conn.execute(sa.insert(summaries), out)
        after = rows[-1].id


def downgrade() -> None:
    op.drop_index("ix_metric_summaries_run_name", table_name="ty_metric_summaries")
    op.drop_table("ty_metric_summaries")
