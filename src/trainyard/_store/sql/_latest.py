"""The ``ty_run_latest_metrics`` table: each run's last numeric value of each metric, kept on write.

``log_metric_chunks`` upserts one row per (run, metric name) it wrote, in its own transaction, so a
runs table sorted on a metric walks ``ix_run_latest_metrics_name_value`` instead of reading the
newest chunk of every run. What a row holds follows what the readers did with chunks before the
table existed: the sort key is the last number of the newest numeric chunk (NaN and ±inf: no
key, sorted last); ``latest_metrics`` answers from the newest scalar chunk, so a name whose newest
scalar chunk is not numeric is ``shadowed`` (left out) while its last number still sorts.

Example::

    upsert_latest(conn, run_pk, chunks, time.time())
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from trainyard._store.entities import MetricChunk
from trainyard._store.sql import schema as s
from trainyard._store.summary import finite_or_none, last_number, last_step_of


def latest_rows(
    run_pk: int, created_at: float, chunks: Sequence[MetricChunk], now: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows ``chunks`` (in write order) leave for run ``run_pk`` (created at ``created_at``):
    those whose numbers changed (every column set) and those only newly shadowed (``shadowed``
    set; the number kept)."""
    numbers: dict[str, dict[str, Any]] = {}
    shadowed: dict[str, bool] = {}
    for c in chunks:
        if c.kind != "scalar":
            continue
        value = last_number(c)
        if value is None:
            shadowed[c.name] = True
            continue
        shadowed[c.name] = False
        numbers[c.name] = {
            "run_pk": run_pk,
            "name": c.name,
            "value": finite_or_none(value),
            "last": struct.pack("<d", value),
            "dtype": c.dtype,
            "step": last_step_of(c),
            "created_at": created_at,
            "updated": now,
        }
    full = [row | {"shadowed": shadowed[name]} for name, row in numbers.items()]
    only_shadow = [
        {"run_pk": run_pk, "name": name, "value": None, "last": None, "dtype": None}
        | {"step": None, "shadowed": True, "created_at": created_at, "updated": now}
        for name, flag in shadowed.items()
        if flag and name not in numbers
    ]
    return full, only_shadow


def upsert_latest(conn: Connection, run_pk: int, chunks: Sequence[MetricChunk], now: float) -> None:
    """Bring ``run_pk``'s latest-metric rows up to date with ``chunks`` just written (SQLite and
    PostgreSQL: ``INSERT … ON CONFLICT DO UPDATE``)."""
    if not any(c.kind == "scalar" for c in chunks):
        return
    created_at = conn.execute(select(s.runs.c.created_at).where(s.runs.c.pk == run_pk)).scalar_one()
    full, only_shadow = latest_rows(run_pk, float(created_at), chunks, now)
    insert: Any = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    table = s.run_latest_metrics
    keys = [table.c.run_pk, table.c.name]
    if full:
        stmt = insert(table)
        changed = ("value", "last", "dtype", "step", "shadowed", "updated")
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=keys, set_={k: stmt.excluded[k] for k in changed}
            ),
            full,
        )
    if only_shadow:
        stmt = insert(table)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=keys,
                set_={"shadowed": stmt.excluded.shadowed, "updated": stmt.excluded.updated},
            ),
            only_shadow,
        )


def decoded(last: bytes | None, dtype: str | None) -> float | int | None:
    """A row's exact last value (an ``int`` for an all-int series), or ``None``."""
    if last is None or len(last) != 8:
        return None
    (value,) = struct.unpack("<d", bytes(last))
    return int(value) if dtype == "i" else float(value)
