"""Web-service records of the SQL store (mixed into :class:`SqlTrackingStore`)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from trainyard._store.entities import WebserviceRecord
from trainyard._store.sql import schema as s
from trainyard._store.sql._util import SqlBase
from trainyard.exceptions import AlreadyExistsError, WebserviceNotFound

_w = s.webservices


def _record(row: Any) -> WebserviceRecord:
    return WebserviceRecord(
        workspace_id=row.workspace_id,
        name=row.name,
        state=row.state,
        data=json.loads(row.data),
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
    )


class SqlWebservicesMixin(SqlBase):
    """create/get/list/update/delete service records; on the shared engine."""

    def create_webservice(
        self, workspace_id: str, name: str, state: str, data: Mapping[str, Any]
    ) -> WebserviceRecord:
        """Insert a service record; ``AlreadyExistsError`` if the name is taken."""
        now = time.time()
        try:
            self._tx(
                lambda c: c.execute(
                    insert(_w).values(
                        workspace_id=workspace_id,
                        name=name,
                        state=state,
                        data=json.dumps(dict(data), sort_keys=True),
                        created_at=now,
                        updated_at=now,
                    )
                )
            )
        except IntegrityError:
            raise AlreadyExistsError(
                f"A service named {name!r} already exists.", name=name
            ) from None
        return self.get_webservice(workspace_id, name)

    def get_webservice(self, workspace_id: str, name: str) -> WebserviceRecord:
        """The record; raises ``WebserviceNotFound`` if missing."""
        row = self._tx(
            lambda c: c.execute(
                select(_w).where(_w.c.workspace_id == workspace_id, _w.c.name == name)
            ).first(),
            write=False,
        )
        if row is None:
            raise WebserviceNotFound(
                f"No web service named {name!r} in this workspace. List them with Webservice.list(ws).",
                name=name,
            )
        return _record(row)

    def list_webservices(self, workspace_id: str) -> list[WebserviceRecord]:
        rows = self._tx(
            lambda c: c.execute(
                select(_w).where(_w.c.workspace_id == workspace_id).order_by(_w.c.name)
            ).all(),
            write=False,
        )
        return [_record(r) for r in rows]

    def update_webservice(
        self,
        workspace_id: str,
        name: str,
        *,
        state: str | None = None,
        data: Mapping[str, Any] | None = None,
        only_from: Sequence[str] | None = None,
    ) -> bool:
        """Merge ``data`` into the record and/or set ``state``; with ``only_from`` only when the
        current state is one of those. Returns whether it changed."""

        def tx(conn: Connection) -> bool:
            row = conn.execute(
                select(_w)
                .where(_w.c.workspace_id == workspace_id, _w.c.name == name)
                .with_for_update()  # PostgreSQL: make only_from a real compare-and-set
            ).first()
            if row is None:
                raise WebserviceNotFound(f"No web service named {name!r}.", name=name)
            if only_from is not None and row.state not in only_from:
                return False
            merged = json.loads(row.data)
            merged.update(dict(data or {}))
            conn.execute(
                update(_w)
                .where(_w.c.workspace_id == workspace_id, _w.c.name == name)
                .values(
                    state=state or row.state,
                    data=json.dumps(merged, sort_keys=True),
                    updated_at=time.time(),
                )
            )
            return True

        return bool(self._tx(tx))

    def delete_webservice(self, workspace_id: str, name: str) -> None:
        def tx(conn: Connection) -> None:
            res = conn.execute(
                delete(_w).where(_w.c.workspace_id == workspace_id, _w.c.name == name)
            )
            if res.rowcount == 0:
                raise WebserviceNotFound(
                    f"No web service named {name!r}; it may already be deleted.", name=name
                )

        self._tx(tx)
