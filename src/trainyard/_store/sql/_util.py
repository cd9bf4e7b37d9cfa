"""What the SQL store's modules share: JSON columns and the engine-holding base class."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from trainyard._store.sql import schema as s
from trainyard._store.sql.engine import run_in_transaction
from trainyard.exceptions import RunNotFound


def _dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, sort_keys=True, default=str)


def _loads(raw: str | None, default: Any = None) -> Any:
    return default if raw is None else json.loads(raw)


class SqlBase:
    """Holds the engine; every aggregate module of the SQL store derives from it."""

    url: str
    engine: Engine

    def _tx(self, fn: Callable[[Any], Any], write: bool = True) -> Any:
        return run_in_transaction(self.engine, fn, write=write)

    @staticmethod
    def _run_pk(
        conn: Connection, run_id: str, *, lock: bool = False
    ) -> tuple[int, str, float | None]:
        q = select(s.runs.c.pk, s.runs.c.status, s.runs.c.end_time).where(s.runs.c.run_id == run_id)
        if lock:
            # PostgreSQL: serialise read-check-write changes of one run (status compare-and-set,
            # add-only properties, tag replacement). SQLite already serialises writers.
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is None:
            raise RunNotFound(
                f"No run with id {run_id!r} in this workspace. List runs with "
                "`trainyard runs list` or Experiment.get_runs().",
                run_id=run_id,
            )
        return int(row.pk), str(row.status), row.end_time
