"""The SQLAlchemy :class:`~trainyard._store.base.TrackingStore` for SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from trainyard._lifecycle import RunStatus, check_transition
from trainyard._store.base import TrackingStore
from trainyard._store.entities import (
    ExperimentInfo,
    NewRun,
    RunInfo,
    StatusEvent,
    WorkspaceInfo,
)
from trainyard._store.limits import check_entries
from trainyard._store.sql import _run_rows
from trainyard._store.sql import schema as s
from trainyard._store.sql._metrics import (
    LATE_FLUSH_GRACE_SECONDS,  # noqa: F401 (re-export)
    SqlMetricsMixin,
)
from trainyard._store.sql._models import SqlModelsMixin
from trainyard._store.sql._registered import SqlRegisteredModelsMixin
from trainyard._store.sql._registry import SqlRegistryMixin
from trainyard._store.sql._search import SqlSearchMixin
from trainyard._store.sql._util import SqlBase, _dumps, _loads
from trainyard._store.sql._webservices import SqlWebservicesMixin
from trainyard._store.sql.engine import ensure_schema, get_engine
from trainyard.exceptions import (
    AlreadyExistsError,
    ExperimentNotFound,
    ImmutablePropertyError,
    RunNotFound,
    WorkspaceNotFound,
)


class SqlTrackingStore(
    SqlSearchMixin,
    SqlMetricsMixin,
    SqlModelsMixin,
    SqlRegisteredModelsMixin,
    SqlWebservicesMixin,
    SqlRegistryMixin,
    SqlBase,
    TrackingStore,
):
    """Tracking store on any SQLAlchemy URL (``sqlite:///…`` or ``postgresql+psycopg://…``).

    Example::

        store = SqlTrackingStore("sqlite:////tmp/ws/trainyard.db")
        ws = store.ensure_workspace("demo")
    """

    def __init__(self, url: str, *, busy_timeout_ms: int = 60_000, migrate: bool = True) -> None:
        self.url = url
        self.engine: Engine = get_engine(url, busy_timeout_ms)
        if migrate:
            ensure_schema(self.engine)

    # -- helpers ------------------------------------------------------------------------------
    # -- workspaces ---------------------------------------------------------------------------
    def ensure_workspace(self, name: str) -> WorkspaceInfo:
        def read(conn: Connection) -> Row[Any] | None:
            return conn.execute(select(s.workspaces).where(s.workspaces.c.name == name)).first()

        row = self._tx(read, write=False)
        if row is None:
            try:
                self._tx(
                    lambda c: c.execute(
                        insert(s.workspaces).values(
                            id=str(uuid.uuid4()), name=name, created_at=time.time()
                        )
                    )
                )
            except IntegrityError:
                pass  # another process created it first
            row = self._tx(read, write=False)
        assert row is not None
        return WorkspaceInfo(id=row.id, name=row.name, created_at=row.created_at)

    def get_workspace(self, name: str) -> WorkspaceInfo:
        row = self._tx(
            lambda c: c.execute(select(s.workspaces).where(s.workspaces.c.name == name)).first(),
            write=False,
        )
        if row is None:
            raise WorkspaceNotFound(f"No workspace named {name!r} in {self.url}.", name=name)
        return WorkspaceInfo(id=row.id, name=row.name, created_at=row.created_at)

    def list_workspaces(self) -> list[WorkspaceInfo]:
        rows = self._tx(
            lambda c: c.execute(select(s.workspaces).order_by(s.workspaces.c.name)).all(),
            write=False,
        )
        return [WorkspaceInfo(id=r.id, name=r.name, created_at=r.created_at) for r in rows]

    # -- experiments --------------------------------------------------------------------------
    @staticmethod
    def _exp(row: Row[Any]) -> ExperimentInfo:
        return ExperimentInfo(
            id=int(row.id),
            workspace_id=row.workspace_id,
            name=row.name,
            archived=bool(row.archived),
            created_at=row.created_at,
        )

    def get_or_create_experiment(self, workspace_id: str, name: str) -> ExperimentInfo:
        try:
            return self.get_experiment(workspace_id, name)
        except ExperimentNotFound:
            pass
        try:
            self._tx(
                lambda c: c.execute(
                    insert(s.experiments).values(
                        workspace_id=workspace_id,
                        name=name,
                        archived=False,
                        created_at=time.time(),
                        run_counter=0,
                    )
                )
            )
        except IntegrityError:
            pass
        return self.get_experiment(workspace_id, name)

    def get_experiment(self, workspace_id: str, name: str) -> ExperimentInfo:
        row = self._tx(
            lambda c: c.execute(
                select(s.experiments).where(
                    s.experiments.c.workspace_id == workspace_id, s.experiments.c.name == name
                )
            ).first(),
            write=False,
        )
        if row is None:
            raise ExperimentNotFound(f"No experiment named {name!r}.", name=name)
        return self._exp(row)

    def get_experiment_by_id(self, experiment_id: int) -> ExperimentInfo:
        row = self._tx(
            lambda c: c.execute(
                select(s.experiments).where(s.experiments.c.id == experiment_id)
            ).first(),
            write=False,
        )
        if row is None:
            raise ExperimentNotFound(f"No experiment with id {experiment_id}.", id=experiment_id)
        return self._exp(row)

    def list_experiments(
        self, workspace_id: str, include_archived: bool = False
    ) -> list[ExperimentInfo]:
        q = select(s.experiments).where(s.experiments.c.workspace_id == workspace_id)
        if not include_archived:
            q = q.where(s.experiments.c.archived.is_(False))
        rows = self._tx(lambda c: c.execute(q.order_by(s.experiments.c.name)).all(), write=False)
        return [self._exp(r) for r in rows]

    def set_experiment_archived(self, experiment_id: int, archived: bool) -> ExperimentInfo:
        self._tx(
            lambda c: c.execute(
                update(s.experiments)
                .where(s.experiments.c.id == experiment_id)
                .values(archived=archived)
            )
        )
        return self.get_experiment_by_id(experiment_id)

    def rename_experiment(self, experiment_id: int, name: str) -> ExperimentInfo:
        exp = self.get_experiment_by_id(experiment_id)
        try:
            self._tx(
                lambda c: c.execute(
                    update(s.experiments)
                    .where(s.experiments.c.id == experiment_id)
                    .values(name=name)
                )
            )
        except IntegrityError:
            raise AlreadyExistsError(
                f"The workspace already has an experiment named {name!r}; pick another name.",
                name=name,
            ) from None
        return dataclasses.replace(exp, name=name)

    # -- runs ---------------------------------------------------------------------------------
    def create_run(self, new: NewRun) -> RunInfo:
        status = RunStatus.parse(new.status).value
        check_entries("Tag", new.tags)
        check_entries("Property", new.properties)
        now = time.time()

        def tx(conn: Connection) -> RunInfo:
            exists = AlreadyExistsError(f"A run with id {new.run_id!r} already exists.")
            if conn.execute(select(s.runs.c.pk).where(s.runs.c.run_id == new.run_id)).first():
                raise exists
            conn.execute(
                update(s.experiments)
                .where(s.experiments.c.id == new.experiment_id)
                .values(run_counter=s.experiments.c.run_counter + 1)
            )
            exp = conn.execute(
                select(
                    s.experiments.c.run_counter, s.experiments.c.name, s.experiments.c.workspace_id
                ).where(s.experiments.c.id == new.experiment_id)
            ).first()
            if exp is None:
                raise ExperimentNotFound(
                    f"No experiment with id {new.experiment_id}.", id=new.experiment_id
                )
            number = int(exp.run_counter)
            try:
                pk = self._insert_run(conn, new, number, status, now)
            except IntegrityError:
                raise exists from None  # a concurrent create with the same id won
            conn.execute(insert(s.run_status_events).values(run_pk=pk, status=status, at=now))
            if new.tags:
                conn.execute(
                    insert(s.run_tags),
                    [{"run_pk": pk, "key": k, "value": str(v)} for k, v in new.tags.items()],
                )
            if new.properties:
                conn.execute(
                    insert(s.run_properties),
                    [{"run_pk": pk, "key": k, "value": str(v)} for k, v in new.properties.items()],
                )
            # The run as created, from what was just written (no read back).
            return _run_rows.as_created(new, exp.name, exp.workspace_id, number, status, now)

        result: RunInfo = self._tx(tx)
        return result

    @staticmethod
    def _insert_run(conn: Connection, new: NewRun, number: int, status: str, now: float) -> int:
        pk = conn.execute(
            insert(s.runs).values(
                run_id=new.run_id,
                experiment_id=new.experiment_id,
                number=number,
                run_type=new.run_type,
                status=status,
                parent_run_id=new.parent_run_id,
                display_name=new.display_name,
                description=new.description,
                target=new.target,
                created_at=now,
                start_time=now if status == RunStatus.RUNNING.value else None,
                definition=_dumps(new.definition or {}),
                runtime=_dumps({}),
                snapshot_id=new.snapshot_id,
                submitted_by=new.submitted_by,
            )
        ).inserted_primary_key
        assert pk is not None
        return int(pk[0])

    def _select_runs(self) -> Any:
        return _run_rows.select_runs()

    @staticmethod
    def _kv(conn: Connection, table: Any, pks: list[int]) -> dict[int, dict[str, str]]:
        return _run_rows.key_values(conn, table, pks)

    def _hydrate(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[RunInfo]:
        return _run_rows.hydrate(conn, rows)

    def _top_level(self) -> Any:
        """The filter for runs without a parent. Nearly every run is one, but SQLite's planner
        (no statistics) takes ``parent_run_id IS NULL`` for a selective use of ix_runs_parent and
        then sorts the whole table for a page: there the filter is written so no index serves it.
        PostgreSQL's statistics know better, and need the plain form to estimate it."""
        if self.engine.dialect.name == "sqlite":
            return func.coalesce(s.runs.c.parent_run_id, "") == ""
        return s.runs.c.parent_run_id.is_(None)

    def _read_run(self, conn: Connection, run_id: str) -> RunInfo:
        row = conn.execute(self._select_runs().where(s.runs.c.run_id == run_id)).first()
        if row is None:
            raise RunNotFound(f"No run with id {run_id!r} in this workspace.", run_id=run_id)
        return self._hydrate(conn, [row])[0]

    def get_run(self, run_id: str) -> RunInfo:
        result: RunInfo = self._tx(lambda conn: self._read_run(conn, run_id), write=False)
        return result

    def list_runs(
        self,
        experiment_id: int | None = None,
        *,
        workspace_id: str | None = None,
        run_type: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str | None] | None = None,
        statuses: Sequence[str] | None = None,
        parent_run_id: str | None = None,
        include_children: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[RunInfo], str | None]:
        q = self._select_runs()
        if experiment_id is not None:
            q = q.where(s.runs.c.experiment_id == experiment_id)
        if workspace_id is not None:
            # As an IN over the workspace's experiments, so each experiment's run index
            # (experiment_id, created_at) yields its newest rows first and a page reads ~limit rows
            # per experiment instead of sorting every run of the workspace.
            q = q.where(
                s.runs.c.experiment_id.in_(
                    select(s.experiments.c.id).where(s.experiments.c.workspace_id == workspace_id)
                )
            )
        if run_type is not None:
            q = q.where(s.runs.c.run_type == run_type)
        if statuses:
            q = q.where(s.runs.c.status.in_(list(statuses)))
        if parent_run_id is not None:
            q = q.where(s.runs.c.parent_run_id == parent_run_id)
        elif not include_children:
            q = q.where(self._top_level())
        for table, filt in ((s.run_tags, tags), (s.run_properties, properties)):
            for key, value in (filt or {}).items():
                cond = and_(table.c.run_pk == s.runs.c.pk, table.c.key == key)
                if value is not None:
                    cond = and_(cond, table.c.value == str(value))
                q = q.where(select(table.c.run_pk).where(cond).exists())
        if cursor:
            c_created, c_pk = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
            q = q.where(
                or_(
                    s.runs.c.created_at < c_created,
                    and_(s.runs.c.created_at == c_created, s.runs.c.pk < c_pk),
                )
            )
        q = q.order_by(s.runs.c.created_at.desc(), s.runs.c.pk.desc()).limit(limit + 1)

        def tx(conn: Connection) -> tuple[list[RunInfo], str | None]:
            rows = conn.execute(q).all()
            nxt = None
            if len(rows) > limit:
                rows = rows[:limit]
                last = rows[-1]
                nxt = base64.urlsafe_b64encode(
                    json.dumps([last.created_at, int(last.pk)]).encode()
                ).decode()
            return self._hydrate(conn, rows), nxt

        result: tuple[list[RunInfo], str | None] = self._tx(tx, write=False)
        return result

    def update_run_status(
        self,
        run_id: str,
        status: str,
        *,
        error: Mapping[str, Any] | None = None,
        reason: str | None = None,
        only_from: Sequence[str] | None = None,
    ) -> RunInfo:
        new = RunStatus.parse(status)

        def tx(conn: Connection) -> RunInfo:
            pk, current, _ = self._run_pk(conn, run_id, lock=True)
            if only_from is not None and current not in {
                RunStatus.parse(x).value for x in only_from
            }:
                return self._read_run(conn, run_id)
            if current == new.value:
                check_transition(current, new, run_id)  # raises for terminal → same
                return self._read_run(conn, run_id)
            check_transition(current, new, run_id)
            now = time.time()
            values: dict[str, Any] = {"status": new.value}
            if new == RunStatus.RUNNING:
                values["start_time"] = func.coalesce(s.runs.c.start_time, now)
            if new.is_terminal():
                values["end_time"] = now
            if error is not None:
                values["error"] = _dumps(dict(error))
            conn.execute(update(s.runs).where(s.runs.c.pk == pk).values(**values))
            conn.execute(
                insert(s.run_status_events).values(
                    run_pk=pk, status=new.value, at=now, reason=reason
                )
            )
            return self._read_run(conn, run_id)

        result: RunInfo = self._tx(tx)
        return result

    def update_run(
        self,
        run_id: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        definition: Mapping[str, Any] | None = None,
        runtime: Mapping[str, Any] | None = None,
        target: str | None = None,
        snapshot_id: str | None = None,
    ) -> RunInfo:
        values: dict[str, Any] = {}
        if display_name is not None:
            values["display_name"] = display_name
        if description is not None:
            values["description"] = description
        if definition is not None:
            values["definition"] = _dumps(dict(definition))
        if target is not None:
            values["target"] = target
        if snapshot_id is not None:
            values["snapshot_id"] = snapshot_id

        def tx(conn: Connection) -> None:
            pk, _, _ = self._run_pk(conn, run_id, lock=True)
            if runtime is not None:
                old = conn.execute(select(s.runs.c.runtime).where(s.runs.c.pk == pk)).scalar_one()
                merged = _loads(old, {})
                merged.update(dict(runtime))
                values["runtime"] = _dumps(merged)
            if values:
                conn.execute(update(s.runs).where(s.runs.c.pk == pk).values(**values))

        self._tx(tx)
        return self.get_run(run_id)

    def heartbeat(self, run_id: str) -> None:
        def tx(conn: Connection) -> None:
            res = conn.execute(
                update(s.runs).where(s.runs.c.run_id == run_id).values(heartbeat_at=time.time())
            )
            if res.rowcount == 0:
                raise RunNotFound(f"No run with id {run_id!r}.", run_id=run_id)

        self._tx(tx)

    def status_history(self, run_id: str) -> list[StatusEvent]:
        def tx(conn: Connection) -> list[StatusEvent]:
            pk, _, _ = self._run_pk(conn, run_id)
            rows = conn.execute(
                select(s.run_status_events)
                .where(s.run_status_events.c.run_pk == pk)
                .order_by(s.run_status_events.c.id)
            ).all()
            return [StatusEvent(status=r.status, at=r.at, reason=r.reason) for r in rows]

        result: list[StatusEvent] = self._tx(tx, write=False)
        return result

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        check_entries("Tag", tags)

        def tx(conn: Connection) -> None:
            pk, _, _ = self._run_pk(conn, run_id, lock=True)
            if not tags:
                return
            conn.execute(
                delete(s.run_tags).where(
                    s.run_tags.c.run_pk == pk, s.run_tags.c.key.in_(list(tags))
                )
            )
            conn.execute(
                insert(s.run_tags), [{"run_pk": pk, "key": k, "value": v} for k, v in tags.items()]
            )

        self._tx(tx)

    def remove_tags(self, run_id: str, keys: Sequence[str]) -> None:
        def tx(conn: Connection) -> None:
            pk, _, _ = self._run_pk(conn, run_id, lock=True)
            conn.execute(
                delete(s.run_tags).where(
                    s.run_tags.c.run_pk == pk, s.run_tags.c.key.in_(list(keys))
                )
            )

        self._tx(tx)

    def add_properties(self, run_id: str, properties: Mapping[str, str]) -> None:
        check_entries("Property", properties)

        def tx(conn: Connection) -> None:
            pk, _, _ = self._run_pk(conn, run_id, lock=True)
            existing = {
                r.key: r.value
                for r in conn.execute(
                    select(s.run_properties.c.key, s.run_properties.c.value).where(
                        s.run_properties.c.run_pk == pk,
                        s.run_properties.c.key.in_(list(properties)),
                    )
                )
            }
            clash = {
                k: (existing[k], v)
                for k, v in properties.items()
                if k in existing and existing[k] != v
            }
            if clash:
                key, (old, newv) = next(iter(clash.items()))
                raise ImmutablePropertyError(
                    f"Property {key!r} of run {run_id!r} is already {old!r} and cannot change to "
                    f"{newv!r}: properties are add-only. Use tags for values that change.",
                    run_id=run_id,
                    key=key,
                )
            fresh = [
                {"run_pk": pk, "key": k, "value": v}
                for k, v in properties.items()
                if k not in existing
            ]
            if fresh:
                conn.execute(insert(s.run_properties), fresh)

        self._tx(tx)

    # -- metrics ------------------------------------------------------------------------------
