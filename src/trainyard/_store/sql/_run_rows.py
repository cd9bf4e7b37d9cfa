"""Rows of the SQL store's runs into ``RunInfo``: the hydration every run read goes through, and
the run as created (built from what ``create_run`` wrote, with no read back)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Row

from trainyard._lifecycle import RunStatus
from trainyard._store.entities import NewRun, RunInfo
from trainyard._store.sql import schema as s
from trainyard._store.sql._util import _dumps, _loads

#: The columns of a select_runs() row that hydrate reads, in the order it unpacks them.
_RUN_COLUMNS = (
    "pk",
    "run_id",
    "experiment_id",
    "experiment_name",
    "workspace_id",
    "number",
    "run_type",
    "status",
    "parent_run_id",
    "display_name",
    "description",
    "target",
    "created_at",
    "start_time",
    "end_time",
    "heartbeat_at",
    "definition",
    "error",
    "runtime",
    "snapshot_id",
    "submitted_by",
)


def select_runs() -> Any:
    """Runs joined with their experiment's name and workspace (what :func:`hydrate` reads)."""
    return select(
        s.runs, s.experiments.c.name.label("experiment_name"), s.experiments.c.workspace_id
    ).join(s.experiments, s.runs.c.experiment_id == s.experiments.c.id)


_WHERE = {name: i for i, name in enumerate(select_runs().selected_columns.keys())}
_GET = operator.itemgetter(*(_WHERE[c] for c in _RUN_COLUMNS))


def key_values(conn: Connection, table: Any, pks: list[int]) -> dict[int, dict[str, str]]:
    """``{run pk: {key: value}}`` of a tags or properties table, for every pk (500 a query)."""
    out: dict[int, dict[str, str]] = {pk: {} for pk in pks}
    for i in range(0, len(pks), 500):
        part = pks[i : i + 500]
        for run_pk, key, value in conn.execute(
            select(table.c.run_pk, table.c.key, table.c.value).where(table.c.run_pk.in_(part))
        ):
            out[run_pk][key] = value
    return out


def hydrate(conn: Connection, rows: Sequence[Row[Any]]) -> list[RunInfo]:
    """The ``RunInfo`` of each row of the store's run select (runs joined with experiments)."""
    # Read by position: a search hydrates thousands of rows, and attribute access on a Row
    # costs more than the rest of building the RunInfo.
    values = [_GET(r) for r in rows]
    pks = [int(v[0]) for v in values]
    tags = key_values(conn, s.run_tags, pks)
    props = key_values(conn, s.run_properties, pks)
    return [
        RunInfo(
            run_id=run_id,
            experiment_id=int(experiment_id),
            experiment_name=experiment_name,
            workspace_id=workspace_id,
            number=int(number),
            run_type=run_type,
            status=status,
            parent_run_id=parent_run_id,
            display_name=display_name,
            description=description,
            target=target,
            created_at=created_at,
            start_time=start_time,
            end_time=end_time,
            heartbeat_at=heartbeat_at,
            definition=_loads(definition, {}),
            error=_loads(error),
            runtime=_loads(runtime, {}),
            snapshot_id=snapshot_id,
            submitted_by=submitted_by,
            tags=tags[pk],
            properties=props[pk],
        )
        for pk, (
            _,
            run_id,
            experiment_id,
            experiment_name,
            workspace_id,
            number,
            run_type,
            status,
            parent_run_id,
            display_name,
            description,
            target,
            created_at,
            start_time,
            end_time,
            heartbeat_at,
            definition,
            error,
            runtime,
            snapshot_id,
            submitted_by,
        ) in zip(pks, values, strict=True)
    ]


def as_created(
    new: NewRun, experiment_name: str, workspace_id: str, number: int, status: str, now: float
) -> RunInfo:
    """The ``RunInfo`` a read would give of a run just inserted from ``new`` (``create_run``)."""
    return RunInfo(
        run_id=new.run_id,
        experiment_id=new.experiment_id,
        experiment_name=experiment_name,
        workspace_id=workspace_id,
        number=number,
        run_type=new.run_type,
        status=status,
        parent_run_id=new.parent_run_id,
        display_name=new.display_name,
        description=new.description,
        target=new.target,
        created_at=now,
        start_time=now if status == RunStatus.RUNNING.value else None,
        end_time=None,
        heartbeat_at=None,
        definition=_loads(_dumps(new.definition or {}), {}),
        error=None,
        runtime={},
        snapshot_id=new.snapshot_id,
        submitted_by=new.submitted_by,
        tags={k: str(v) for k, v in new.tags.items()},
        properties={k: str(v) for k, v in new.properties.items()},
    )
