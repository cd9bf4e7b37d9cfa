"""Each run's last value of each metric in its own table, kept on write, indexed by (name, value, creation):
the runs table sorted on a metric walks the index instead of reading the newest chunk of every
run (957 ms at 100,000 runs). Filled here from each (run, name)'s newest chunks, as
``trainyard._store.sql._latest`` would have written it.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import struct
import time

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "ty_run_latest_metrics",
        sa.Column("run_pk", sa.Integer, sa.ForeignKey("ty_runs.pk"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("last", sa.LargeBinary, nullable=True),
        sa.Column("dtype", sa.String(1), nullable=True),
        sa.Column("step", sa.BigInteger, nullable=True),
        sa.Column("shadowed", sa.Boolean, nullable=False, default=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_latest_metrics_up",
        "ty_run_latest_metrics",
        ["name", "value", sa.text("created_at DESC"), sa.text("run_pk DESC")],
    )
    op.create_index(
        "ix_latest_metrics_down",
        "ty_run_latest_metrics",
        ["name", "value", "created_at", "run_pk"],
    )
    _backfill(op.get_bind())


def _backfill(conn: sa.engine.Connection) -> None:
    import math

    chunks = sa.table(
        "ty_metric_chunks",
        *(sa.column(c) for c in ("id", "run_pk", "name", "kind", "dtype", "count", "vals", "steps")),
    )
    latest = sa.table(
        "ty_run_latest_metrics",
        *(sa.column(c) for c in ("run_pk", "name", "value", "last", "dtype", "step")),
        *(sa.column(c) for c in ("shadowed", "created_at", "updated")),
    )
    runs = sa.table("ty_runs", sa.column("pk"), sa.column("created_at"))
    c = chunks.c
    newest_scalar = set(
        conn.execute(
            sa.select(sa.func.max(c.id)).where(c.kind == "scalar").group_by(c.run_pk, c.name)
        ).scalars()
    )
    numeric = (
        sa.select(sa.func.max(c.id).label("id"))
        .where(c.kind == "scalar", c.dtype != "j", c["count"] > 0, c.vals.is_not(None))
        .group_by(c.run_pk, c.name)
        .subquery()
    )
    rows = conn.execute(
        sa.select(
            c.id,
            c.run_pk,
            c.name,
            c.dtype,
            sa.func.substr(c.vals, sa.func.length(c.vals) - 7, 8),
            sa.func.substr(c.steps, sa.func.length(c.steps) - 7, 8),
        ).where(c.id.in_(sa.select(numeric.c.id)))
    ).all()
    now = time.time()
    created = dict(conn.execute(sa.select(runs.c.pk, runs.c.created_at)).all())
    out = []
    seen = set()
    for chunk_id, run_pk, name, dtype, tail, step_tail in rows:
        if tail is None or len(bytes(tail)) != 8:
            continue
        (value,) = struct.unpack("<d", bytes(tail))
        step = struct.unpack("<q", bytes(step_tail))[0] if step_tail is not None else None
        seen.add((run_pk, name))
        out.append(
            {
                "run_pk": run_pk,
                "name": name,
                "value": value if math.isfinite(value) else None,
                "last": bytes(tail),
                "dtype": dtype,
                "step": step,
                "shadowed": chunk_id not in newest_scalar,
                "created_at": created[run_pk],
                "updated": now,
            }
        )
    # Names whose only scalar chunks hold no numbers: a row that says so (nothing to sort on).
    for run_pk, name in conn.execute(
        sa.select(c.run_pk, c.name).where(c.kind == "scalar").group_by(c.run_pk, c.name)
    ).all():
        if (run_pk, name) not in seen:
            out.append(
                {"run_pk": run_pk, "name": name, "value": None, "last": None, "dtype": None}
                | {"step": None, "shadowed": True, "created_at": created[run_pk], "updated": now}
            )
    for start in range(0, len(out), _BATCH):
        conn.execute(sa.insert(latest), out[start : start + _BATCH])


def downgrade() -> None:
    op.drop_index("ix_latest_metrics_down", table_name="ty_run_latest_metrics")
    op.drop_index("ix_latest_metrics_up", table_name="ty_run_latest_metrics")
    op.drop_table("ty_run_latest_metrics")
