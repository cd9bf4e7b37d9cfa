"""Environment and compute-target records of the SQL store (mixed into :class:`SqlTrackingStore`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from trainyard._store.entities import ComputeTargetRecord, EnvironmentRecord
from trainyard._store.sql import schema as s
from trainyard._store.sql._util import SqlBase, _dumps, _loads
from trainyard.exceptions import ComputeTargetNotFound, EnvironmentNotFound


def _env(workspace_id: str, row: Any) -> EnvironmentRecord:
    return EnvironmentRecord(
        workspace_id=workspace_id,
        name=row.name,
        version=int(row.version),
        spec=_loads(row.spec, {}),
        spec_hash=row.spec_hash,
        created_at=float(row.created_at),
    )


def _target(row: Any) -> ComputeTargetRecord:
    return ComputeTargetRecord(
        workspace_id=row.workspace_id,
        name=row.name,
        target_type=row.target_type,
        config=_loads(row.config, {}),
        created_at=float(row.created_at),
    )


class SqlRegistryMixin(SqlBase):
    """Registered environments and compute targets; on the shared engine."""

    # -- environments -------------------------------------------------------------------------
    def register_environment(
        self, workspace_id: str, name: str, spec: Mapping[str, Any], spec_hash: str
    ) -> EnvironmentRecord:
        e = s.environments

        def tx(conn: Connection) -> int:
            latest = conn.execute(
                select(e.c.version, e.c.spec_hash)
                .where(e.c.workspace_id == workspace_id, e.c.name == name)
                .order_by(e.c.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.spec_hash == spec_hash:
                return int(latest.version)
            version = 1 if latest is None else int(latest.version) + 1
            conn.execute(
                insert(e).values(
                    workspace_id=workspace_id,
                    name=name,
                    version=version,
                    spec=_dumps(dict(spec)),
                    spec_hash=spec_hash,
                    created_at=time.time(),
                )
            )
            return version

        version = None
        for _ in range(20):
            try:
                version = int(self._tx(tx))
                break
            except IntegrityError:
                continue  # a concurrent registration took that version; take the next
        if version is None:
            version = int(self._tx(tx))
        return self.get_environment(workspace_id, name, version)

    def get_environment(
        self, workspace_id: str, name: str, version: int | None = None
    ) -> EnvironmentRecord:
        e = s.environments
        q = select(e).where(e.c.workspace_id == workspace_id, e.c.name == name)
        q = (
            q.where(e.c.version == version)
            if version is not None
            else q.order_by(e.c.version.desc())
        )
        row = self._tx(lambda c: c.execute(q.limit(1)).first(), write=False)
        if row is None:
            what = f"{name!r} version {version}" if version is not None else repr(name)
            raise EnvironmentNotFound(
                f"No registered environment {what}. Register it with env.register(ws) or list them "
                "with Environment.list(ws).",
                name=name,
                version=version,
            )
        return _env(workspace_id, row)

    def list_environments(self, workspace_id: str) -> list[EnvironmentRecord]:
        e = s.environments
        latest = (
            select(e.c.name, func.max(e.c.version).label("v"))
            .where(e.c.workspace_id == workspace_id)
            .group_by(e.c.name)
            .subquery()
        )
        q = (
            select(e)
            .join(latest, and_(e.c.name == latest.c.name, e.c.version == latest.c.v))
            .where(e.c.workspace_id == workspace_id)
        )
        rows = self._tx(lambda c: c.execute(q.order_by(e.c.name)).all(), write=False)
        return [_env(workspace_id, r) for r in rows]

    # -- compute targets ----------------------------------------------------------------------
    def put_compute_target(
        self, workspace_id: str, name: str, target_type: str, config: Mapping[str, Any]
    ) -> ComputeTargetRecord:
        t = s.compute_targets

        def tx(conn: Connection) -> None:
            conn.execute(delete(t).where(t.c.workspace_id == workspace_id, t.c.name == name))
            conn.execute(
                insert(t).values(
                    workspace_id=workspace_id,
                    name=name,
                    target_type=target_type,
                    config=_dumps(dict(config)),
                    created_at=time.time(),
                )
            )

        for _ in range(20):
            try:
                self._tx(tx)
                break
            except IntegrityError:
                continue  # a concurrent put inserted the same name first (PostgreSQL); redo
        else:
            self._tx(tx)
        return self.get_compute_target(workspace_id, name)

    def get_compute_target(self, workspace_id: str, name: str) -> ComputeTargetRecord:
        t = s.compute_targets
        row = self._tx(
            lambda c: c.execute(
                select(t).where(t.c.workspace_id == workspace_id, t.c.name == name)
            ).first(),
            write=False,
        )
        if row is None:
            raise ComputeTargetNotFound(
                f"Compute target {name!r} does not exist in this workspace. Create it with "
                "ComputeTarget.create(...) or use 'local'.",
                name=name,
            )
        return _target(row)

    def list_compute_targets(self, workspace_id: str) -> list[ComputeTargetRecord]:
        t = s.compute_targets
        rows = self._tx(
            lambda c: c.execute(
                select(t).where(t.c.workspace_id == workspace_id).order_by(t.c.name)
            ).all(),
            write=False,
        )
        return [_target(r) for r in rows]

    def delete_compute_target(self, workspace_id: str, name: str) -> None:
        t = s.compute_targets

        def tx(conn: Connection) -> None:
            res = conn.execute(delete(t).where(t.c.workspace_id == workspace_id, t.c.name == name))
            if res.rowcount == 0:
                raise ComputeTargetNotFound(f"Compute target {name!r} does not exist.", name=name)

        self._tx(tx)
