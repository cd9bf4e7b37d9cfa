"""Web-service records of the SQL store (mixed into :class:`SqlTrackingStore`)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from trainyard._store.sql import schema as s
from trainyard.exceptions import AlreadyExistsError, WebserviceException

_w = s.webservices


class SqlWebservicesMixin:
    """create/get/list/update/delete service records; needs ``_tx``."""

    def _tx(self, fn: Any, write: bool = True) -> Any:  # provided by the store
        raise NotImplementedError

    def create_webservice(self, workspace_id: str, name: str, state: str, data: Mapping[str, Any]) -> None:
        """Insert a service record; ``AlreadyExistsError`` if the name is taken."""
        now = time.time()
        try:
            self._tx(
                lambda c: c.execute(
                    insert(_w).values(
                        workspace_id=workspace_id, name=name, state=state,
                        data=json.dumps(dict(data), sort_keys=True), created_at=now, updated_at=now,
                    )
                )
            )
        except IntegrityError:
            raise AlreadyExistsError(f"A service named {name!r} already exists.", name=name) from None

    def get_webservice(self, workspace_id: str, name: str) -> tuple[str, dict[str, Any]]:
        """(state, data); raises ``WebserviceException`` if missing."""
        row = self._tx(
            lambda c: c.execute(select(_w).where(_w.c.workspace_id == workspace_id, _w.c.name == name)).first(),
            write=False,
        )
        if row is None:
            raise WebserviceException(
                f"No web service named {name!r} in this workspace. List them with Webservice.list(ws).",
                name=name,
            )
        return row.state, json.loads(row.data)

    def list_webservices(self, workspace_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
        rows = self._tx(
            lambda c: c.execute(select(_w).where(_w.c.workspace_id == workspace_id).order_by(_w.c.name)).all(),
            write=False,
        )
        return {r.name: (r.state, json.loads(r.data)) for r in rows}

    def update_webservice(
        self, workspace_id: str, name: str, *, state: str | None = None, data: Mapping[str, Any] | None = None,
        only_from: tuple[str, ...] | None = None,
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
                raise WebserviceException(f"No web service named {name!r}.", name=name)
            if only_from is not None and row.state not in only_from:
                return False
            merged = json.loads(row.data)
            merged.update(dict(data or {}))
            conn.execute(
                update(_w)
                .where(_w.c.workspace_id == workspace_id, _w.c.name == name)
                .values(state=state or row.state, data=json.dumps(merged, sort_keys=True), updated_at=time.time())
            )
            return True

        return bool(self._tx(tx))

    def delete_webservice(self, workspace_id: str, name: str) -> None:
        def tx(conn: Connection) -> None:
            res = conn.execute(delete(_w).where(_w.c.workspace_id == workspace_id, _w.c.name == name))
            if res.rowcount == 0:
                raise WebserviceException(f"No web service named {name!r}; it may already be deleted.", name=name)

        self._tx(tx)
