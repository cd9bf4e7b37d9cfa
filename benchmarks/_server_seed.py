"""Seeding many runs straight into each server's SQL store, in bulk, for the run-list benchmark.

Both stores get the same shape of run: finished (``Completed`` / ``FINISHED``), no tags, no params,
no metrics, one a second apart. trainyard's rows go through its SQLAlchemy Core tables
(``trainyard._store.sql.schema``); MLflow's through its own tables, reflected from the database its
server migrated (``runs``), so both servers read rows exactly as they lay them out.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

_BATCH = 10_000


def seed_trainyard(store_url: str, workspace_id: str, experiment: str, n: int) -> int:
    """Insert ``n`` runs into ``experiment`` (created if needed); returns its id."""
    from sqlalchemy import insert, update

    from trainyard._context import normalize_store_url
    from trainyard._store.sql import schema as s
    from trainyard._store.sql.store import SqlTrackingStore

    store = SqlTrackingStore(normalize_store_url(store_url))
    exp = store.get_or_create_experiment(workspace_id, experiment)
    base = time.time() - n
    with store.engine.begin() as conn:
        for lo in range(0, n, _BATCH):
            rows: list[dict[str, Any]] = [
                {
                    "run_id": f"{experiment}_{i}_{uuid.uuid4().hex[:8]}",
                    "experiment_id": exp.id,
                    "number": i + 1,
                    "run_type": "interactive",
                    "status": "Completed",
                    "parent_run_id": None,
                    "display_name": None,
                    "description": None,
                    "target": "local",
                    "created_at": base + i,
                    "start_time": base + i,
                    "end_time": base + i + 0.5,
                    "heartbeat_at": None,
                    "definition": "{}",
                    "error": None,
                    "runtime": "{}",
                    "snapshot_id": None,
                    "submitted_by": "bench",
                }
                for i in range(lo, min(lo + _BATCH, n))
            ]
            conn.execute(insert(s.runs), rows)
        conn.execute(
            update(s.experiments)
            .where(s.experiments.c.id == exp.id)
            .values(run_counter=s.experiments.c.run_counter + n)
        )
    _analyze(store.engine, ("ty_runs", "ty_experiments"))
    store.engine.dispose()
    return exp.id


def _analyze(engine: Any, tables: tuple[str, ...]) -> None:
    """PostgreSQL: refresh the planner's statistics, as autovacuum would shortly after a bulk
    load (a real 100,000-run database has them). SQLite: nothing — neither trainyard nor MLflow
    runs ANALYZE there, so the benchmark leaves its planner as users get it."""
    from sqlalchemy import text

    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in tables:  # in the schema the URL's search_path names
                conn.execute(text(f"ANALYZE {table}"))


def seed_mlflow(backend_uri: str, experiment_id: str, artifact_root: str, n: int) -> None:
    """Insert ``n`` finished runs into MLflow experiment ``experiment_id`` (its ``runs`` table)."""
    from sqlalchemy import MetaData, Table, create_engine, insert

    engine = create_engine(backend_uri)
    runs = Table("runs", MetaData(), autoload_with=engine)
    columns = set(runs.c.keys())
    base_ms = int((time.time() - n) * 1000)
    with engine.begin() as conn:
        for lo in range(0, n, _BATCH):
            rows = []
            for i in range(lo, min(lo + _BATCH, n)):
                run_uuid = uuid.uuid4().hex
                row: dict[str, Any] = {
                    "run_uuid": run_uuid,
                    "name": f"seed-{i}",
                    "source_type": "LOCAL",
                    "source_name": "",
                    "entry_point_name": "",
                    "user_id": "bench",
                    "status": "FINISHED",
                    "start_time": base_ms + i * 1000,
                    "end_time": base_ms + i * 1000 + 500,
                    "deleted_time": None,
                    "source_version": "",
                    "lifecycle_stage": "active",
                    "artifact_uri": f"{artifact_root}/{experiment_id}/{run_uuid}/artifacts",
                    "experiment_id": int(experiment_id),
                }
                rows.append({k: v for k, v in row.items() if k in columns})
            conn.execute(insert(runs), rows)
    _analyze(engine, ("runs", "experiments"))
    engine.dispose()
