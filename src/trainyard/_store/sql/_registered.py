"""Registered-model records and whole-name operations of the SQL store (mixed into
:class:`SqlTrackingStore`): a name's description, tags and aliases, renaming a name with all its
versions, deleting a name with all its versions."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from trainyard._store.entities import RegisteredModelRecord
from trainyard._store.sql import schema as s
from trainyard._store.sql._util import SqlBase
from trainyard.exceptions import AlreadyExistsError, ModelNotFoundException

_r = s.registered_models
_m = s.models


def _row_to_record(r: Row[Any]) -> RegisteredModelRecord:
    return RegisteredModelRecord(
        workspace_id=r.workspace_id,
        name=r.name,
        description=r.description,
        tags=json.loads(r.tags),
        aliases={k: int(v) for k, v in json.loads(r.aliases).items()},
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _missing(name: str) -> ModelNotFoundException:
    return ModelNotFoundException(
        f"No registered model {name!r}. List models with Model.list(ws) or `trainyard models "
        "list`.",
        name=name,
    )


def _where(table: Any, workspace_id: str, name: str) -> Any:
    return (table.c.workspace_id == workspace_id) & (table.c.name == name)


def _has_versions(conn: Connection, workspace_id: str, name: str, live_only: bool) -> bool:
    q = select(_m.c.version).where(_where(_m, workspace_id, name))
    if live_only:
        q = q.where(_m.c.deleted.is_(False))
    return conn.execute(q.limit(1)).first() is not None


class SqlRegisteredModelsMixin(SqlBase):
    """put/get/list registered-model records; rename and delete a name with its versions."""

    def put_registered_model(
        self,
        workspace_id: str,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        aliases: Mapping[str, int] | None = None,
        create: bool = False,
    ) -> RegisteredModelRecord:
        def tx(conn: Connection) -> None:
            row = conn.execute(select(_r).where(_where(_r, workspace_id, name))).first()
            now = time.time()
            if create and (row is not None or _has_versions(conn, workspace_id, name, True)):
                raise AlreadyExistsError(
                    f"Registered model {name!r} already exists; pick another name or add a "
                    "version to it.",
                    name=name,
                )
            values: dict[str, Any] = {"updated_at": now}
            if description is not None:
                values["description"] = description
            if tags is not None:
                values["tags"] = json.dumps(dict(tags), sort_keys=True)
            if aliases is not None:
                values["aliases"] = json.dumps({k: int(v) for k, v in aliases.items()})
            if row is None:
                values.setdefault("tags", "{}")
                values.setdefault("aliases", "{}")
                conn.execute(
                    insert(_r).values(
                        workspace_id=workspace_id, name=name, created_at=now, **values
                    )
                )
            else:
                conn.execute(update(_r).where(_where(_r, workspace_id, name)).values(**values))

        try:
            self._tx(tx)
        except IntegrityError:  # a concurrent create of the same name won
            raise AlreadyExistsError(
                f"Registered model {name!r} already exists.", name=name
            ) from None
        return self.get_registered_model(workspace_id, name)

    def get_registered_model(self, workspace_id: str, name: str) -> RegisteredModelRecord:
        row = self._tx(
            lambda c: c.execute(select(_r).where(_where(_r, workspace_id, name))).first(),
            write=False,
        )
        if row is None:
            raise _missing(name)
        return _row_to_record(row)

    def list_registered_models(self, workspace_id: str) -> list[RegisteredModelRecord]:
        q = select(_r).where(_r.c.workspace_id == workspace_id).order_by(_r.c.name)
        rows = self._tx(lambda c: c.execute(q).all(), write=False)
        return [_row_to_record(r) for r in rows]

    def rename_model(self, workspace_id: str, name: str, new_name: str) -> None:
        def tx(conn: Connection) -> None:
            has_record = conn.execute(select(_r.c.name).where(_where(_r, workspace_id, name)))
            found = has_record.first() is not None
            if not found and not _has_versions(conn, workspace_id, name, True):
                raise _missing(name)
            taken = conn.execute(select(_r.c.name).where(_where(_r, workspace_id, new_name)))
            if taken.first() is not None or _has_versions(conn, workspace_id, new_name, False):
                raise AlreadyExistsError(
                    f"Registered model {new_name!r} already exists (or had versions once: "
                    "version numbers are never reused); pick another name.",
                    name=new_name,
                )
            now = time.time()
            conn.execute(update(_m).where(_where(_m, workspace_id, name)).values(name=new_name))
            if found:
                conn.execute(
                    update(_r)
                    .where(_where(_r, workspace_id, name))
                    .values(name=new_name, updated_at=now)
                )

        try:
            self._tx(tx)
        except IntegrityError:
            raise AlreadyExistsError(
                f"Registered model {new_name!r} already exists.", name=new_name
            ) from None

    def delete_registered_model(self, workspace_id: str, name: str) -> None:
        def tx(conn: Connection) -> None:
            gone = conn.execute(delete(_r).where(_where(_r, workspace_id, name))).rowcount
            versions = conn.execute(
                update(_m)
                .where(_where(_m, workspace_id, name), _m.c.deleted.is_(False))
                .values(deleted=True)
            ).rowcount
            if not gone and not versions:
                raise _missing(name)

        self._tx(tx)
