"""Environment and compute-target records of the SQL store (mixed into :class:`SqlTrackingStore`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from trainyard._store.sql import schema as s
from trainyard._store.sql._util import _dumps, _loads
from trainyard.exceptions import ComputeTargetException, EnvironmentNotFound


class SqlRegistryMixin:
    """Registered environments and compute targets; needs ``_tx``."""

    def _tx(self, fn: Any, write: bool = True) -> Any:  # provided by the store
        raise NotImplementedError

    # -- environments -------------------------------------------------------------------------
    def register_environment(
        self, workspace_id: str, name: str, spec: Mapping[str, Any], spec_hash: str
    ) -> int:
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

        for _ in range(20):
            try:
                return int(self._tx(tx))
            except IntegrityError:
                continue  # a concurrent registration took that version; take the next
        return int(self._tx(tx))

    def get_environment(
        self, workspace_id: str, name: str, version: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        e = s.environments
        q = select(e.c.version, e.c.spec).where(e.c.workspace_id == workspace_id, e.c.name == name)
        q = q.where(e.c.version == version) if version is not None else q.order_by(e.c.version.desc())
        row = self._tx(lambda c: c.execute(q.limit(1)).first(), write=False)
        if row is None:
            what = f"{name!r} version {version}" if version is not None else repr(name)
            raise EnvironmentNotFound(
                f"No registered environment {what}. Register it with env.register(ws) or list them "
                "with Environment.list(ws).",
                name=name,
                version=version,
            )
        return int(row.version), _loads(row.spec, {})

    def list_environments(self, workspace_id: str) -> dict[str, tuple[int, dict[str, Any]]]:
        e = s.environments
        latest = (
            select(e.c.name, func.max(e.c.version).label("v"))
            .where(e.c.workspace_id == workspace_id)
            .group_by(e.c.name)
            .subquery()
        )
        q = select(e.c.name, e.c.version, e.c.spec).join(
            latest, and_(e.c.name == latest.c.name, e.c.version == latest.c.v)
        ).where(e.c.workspace_id == workspace_id)
        rows = self._tx(lambda c: c.execute(q.order_by(e.c.name)).all(), write=False)
        return {r.name: (int(r.version), _loads(r.spec, {})) for r in rows}

    # -- compute targets ----------------------------------------------------------------------
    def put_compute_target(
        self, workspace_id: str, name: str, target_type: str, config: Mapping[str, Any]
    ) -> None:
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
                return
            except IntegrityError:
                continue  # a concurrent put inserted the same name first (PostgreSQL); redo
        self._tx(tx)

    def get_compute_target(self, workspace_id: str, name: str) -> tuple[str, dict[str, Any]]:
        t = s.compute_targets
        row = self._tx(
            lambda c: c.execute(
                select(t).where(t.c.workspace_id == workspace_id, t.c.name == name)
            ).first(),
            write=False,
        )
        if row is None:
            raise ComputeTargetException(
                f"Compute target {name!r} does not exist in this workspace. Create it with "
                "ComputeTarget.create(...) or use 'local'.",
                name=name,
            )
        return row.target_type, _loads(row.config, {})

    def list_compute_targets(self, workspace_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
        t = s.compute_targets
        rows = self._tx(
            lambda c: c.execute(
                select(t).where(t.c.workspace_id == workspace_id).order_by(t.c.name)
            ).all(),
            write=False,
        )
        return {r.name: (r.target_type, _loads(r.config, {})) for r in rows}

    def delete_compute_target(self, workspace_id: str, name: str) -> None:
        t = s.compute_targets

        def tx(conn: Connection) -> None:
            res = conn.execute(delete(t).where(t.c.workspace_id == workspace_id, t.c.name == name))
            if res.rowcount == 0:
                raise ComputeTargetException(f"Compute target {name!r} does not exist.", name=name)

        self._tx(tx)
