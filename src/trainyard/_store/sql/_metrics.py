"""Metric chunks of the SQL store (mixed into :class:`SqlTrackingStore`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from trainyard._lifecycle import RunStatus
from trainyard._store.entities import ChunkSummary, MetricChunk
from trainyard._store.sql import schema as s
from trainyard._store.sql._latest import upsert_latest
from trainyard._store.sql._util import SqlBase
from trainyard._store.summary import summarize
from trainyard.exceptions import RunFinishedError

#: Metrics flushed this long after a run ended are still accepted (a finishing process's last batch).
LATE_FLUSH_GRACE_SECONDS = 30.0


class SqlMetricsMixin(SqlBase):
    """Append and read packed metric chunks, on the shared engine."""

    def log_metric_chunks(self, run_id: str, chunks: Sequence[MetricChunk]) -> None:
        if not chunks:
            return
        # Outside the transaction: a writer holds SQLite's lock only for the inserts.
        summaries = {id(c): summarize(c) for c in chunks}

        def tx(conn: Connection) -> None:
            pk, status, end_time = self._run_pk(conn, run_id)
            if RunStatus.parse(status).is_terminal() and (
                end_time is None or time.time() - end_time > LATE_FLUSH_GRACE_SECONDS
            ):
                raise RunFinishedError(
                    f"Run {run_id!r} is {status}; it takes no more metrics. Start a new run.",
                    run_id=run_id,
                )
            todo = list(chunks)
            keys = [c.client_key for c in todo if c.client_key]
            if keys:
                # A retried upload of the same chunks (same client keys) is stored once.
                seen = set(
                    conn.execute(
                        select(s.metric_chunks.c.client_key).where(
                            s.metric_chunks.c.run_pk == pk,
                            s.metric_chunks.c.client_key.in_(keys),
                        )
                    ).scalars()
                )
                todo = [c for c in todo if not c.client_key or c.client_key not in seen]
                if not todo:
                    return
            ids = (
                conn.execute(
                    insert(s.metric_chunks).returning(
                        s.metric_chunks.c.id, sort_by_parameter_order=True
                    ),
                    [
                        {
                            "run_pk": pk,
                            "name": c.name,
                            "kind": c.kind,
                            "dtype": c.dtype,
                            "count": c.count,
                            "timestamps": c.timestamps,
                            "vals": c.values,
                            "steps": c.steps,
                            "data": c.data,
                            "description": c.description,
                            "client_key": c.client_key,
                        }
                        for c in todo
                    ],
                )
                .scalars()
                .all()
            )
            rows = [
                {"chunk_id": chunk_id, "run_pk": pk, "name": c.name} | found
                for chunk_id, c in zip(ids, todo, strict=True)
                if (found := summaries[id(c)]) is not None
            ]
            if rows:
                conn.execute(insert(s.metric_summaries), rows)
            upsert_latest(conn, pk, todo, time.time())

        self._tx(tx)

    def metric_chunks_of_runs(self, run_ids: Sequence[str]) -> dict[str, list[MetricChunk]]:
        """Every chunk of many runs in a few queries (run id → chunks in logging order); runs
        that do not exist or logged nothing are absent. Not part of the store seam: a fast path
        for servers that list many runs with their metrics."""

        def tx(conn: Connection) -> dict[str, list[MetricChunk]]:
            out: dict[str, list[MetricChunk]] = {}
            ids = list(dict.fromkeys(run_ids))
            for start in range(0, len(ids), 500):
                q = (
                    select(s.runs.c.run_id, s.metric_chunks)
                    .join(s.runs, s.runs.c.pk == s.metric_chunks.c.run_pk)
                    .where(s.runs.c.run_id.in_(ids[start : start + 500]))
                    .order_by(s.metric_chunks.c.id)
                )
                for r in conn.execute(q).all():
                    out.setdefault(str(r.run_id), []).append(_chunk(r))
            return out

        found: dict[str, list[MetricChunk]] = self._tx(tx, write=False)
        return found

    def chart_chunks(
        self, run_id: str, name: str, axis: str, after_seq: int = 0
    ) -> list[MetricChunk]:
        c = s.metric_chunks.c
        wanted = c.timestamps if axis == "time" else c.steps

        def tx(conn: Connection) -> list[MetricChunk]:
            pk, _, _ = self._run_pk(conn, run_id)
            q = (
                select(c.kind, c.dtype, c["count"], c.vals, wanted, c.id)
                .where(c.run_pk == pk, c.name == name, c.id > after_seq)
                .order_by(c.id)
            )
            out = []
            for kind, dtype, count, vals, other, seq in conn.execute(q).all():
                out.append(
                    MetricChunk(
                        name=name,
                        kind=kind,
                        dtype=dtype,
                        count=int(count),
                        timestamps=bytes(other) if axis == "time" else b"",
                        values=None if vals is None else bytes(vals),
                        steps=None if axis == "time" or other is None else bytes(other),
                        seq=int(seq),
                    )
                )
            return out

        result: list[MetricChunk] = self._tx(tx, write=False)
        return result

    def chart_summaries(self, run_id: str, name: str, after_seq: int = 0) -> list[ChunkSummary]:
        c, m = s.metric_chunks.c, s.metric_summaries.c

        def tx(conn: Connection) -> list[ChunkSummary]:
            pk, _, _ = self._run_pk(conn, run_id)
            q = (
                select(c.id, c["count"], m.first_step, m.last_step, m.first_time, m.last_time)
                .add_columns(m.blocks)
                .outerjoin(s.metric_summaries, m.chunk_id == c.id)
                .where(c.run_pk == pk, c.name == name, c.id > after_seq, c.kind == "scalar")
                .where(c.dtype != "j", c["count"] > 0)
                .order_by(c.id)
            )
            return [
                ChunkSummary(
                    seq=int(seq),
                    count=int(count),
                    first_step=first_step,
                    last_step=last_step,
                    first_time=first_time,
                    last_time=last_time,
                    blocks=None if blocks is None else bytes(blocks),
                )
                for seq, count, first_step, last_step, first_time, last_time, blocks in conn.execute(
                    q
                ).all()
            ]

        result: list[ChunkSummary] = self._tx(tx, write=False)
        return result

    def get_metric_chunks(
        self, run_id: str, names: Sequence[str] | None = None
    ) -> list[MetricChunk]:
        def tx(conn: Connection) -> list[MetricChunk]:
            pk, _, _ = self._run_pk(conn, run_id)
            q = select(s.metric_chunks).where(s.metric_chunks.c.run_pk == pk)
            if names is not None:
                q = q.where(s.metric_chunks.c.name.in_(list(names)))
            rows = conn.execute(q.order_by(s.metric_chunks.c.id)).all()
            return [_chunk(r) for r in rows]

        result: list[MetricChunk] = self._tx(tx, write=False)
        return result


def _chunk(r: Any) -> MetricChunk:
    return MetricChunk(
        name=r.name,
        kind=r.kind,
        dtype=r.dtype,
        count=int(r._mapping["count"]),
        timestamps=bytes(r.timestamps),
        values=None if r.vals is None else bytes(r.vals),
        steps=None if r.steps is None else bytes(r.steps),
        data=r.data,
        description=r.description,
        seq=int(r.id),
    )
