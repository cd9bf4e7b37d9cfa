"""Model-registry part of the SQL store (mixed into :class:`SqlTrackingStore`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from trainyard._store.entities import ModelInfo
from trainyard._store.sql import schema as s
from trainyard._store.sql._util import SqlBase
from trainyard.exceptions import ImmutablePropertyError, ModelNotFoundException, StoreError

_m = s.models


def _row_to_model(r: Row[Any]) -> ModelInfo:
    return ModelInfo(
        workspace_id=r.workspace_id,
        name=r.name,
        version=int(r.version),
        description=r.description,
        tags=json.loads(r.tags),
        properties=json.loads(r.properties),
        run_id=r.run_id,
        experiment_name=r.experiment_name,
        framework=r.framework,
        framework_version=r.framework_version,
        created_at=r.created_at,
        storage_prefix=r.storage_prefix,
        model_root=r.model_root,
        files=tuple(json.loads(r.files)),
    )


def _not_found(name: str, version: int | None) -> ModelNotFoundException:
    what = f"{name}:{version}" if version is not None else repr(name)
    return ModelNotFoundException(
        f"No registered model {what}. List models with Model.list(ws) or `trainyard models list`.",
        name=name,
        version=version,
    )


class SqlModelsMixin(SqlBase):
    """create/get/list/update/delete model versions; on the shared engine."""

    def create_model(self, model: ModelInfo) -> ModelInfo:
        """Insert ``model`` as the next version of its name (``model.version`` is ignored).

        Two concurrent registrations of one name never get the same version: the primary key
        rejects the loser, which retries with the next number.
        """

        def tx(conn: Connection) -> int:
            latest = conn.execute(
                select(func.max(_m.c.version)).where(
                    _m.c.workspace_id == model.workspace_id, _m.c.name == model.name
                )
            ).scalar()
            version = int(latest or 0) + 1
            values = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}
            values.update(
                version=version,
                tags=json.dumps(model.tags, sort_keys=True),
                properties=json.dumps(model.properties, sort_keys=True),
                files=json.dumps(list(model.files)),
                deleted=False,
            )
            conn.execute(insert(_m).values(**values))
            return version

        for _ in range(50):
            try:
                version = int(self._tx(tx))
                return self.get_model(model.workspace_id, model.name, version)
            except IntegrityError:
                continue
        # Never let SQLAlchemy's IntegrityError escape the public API (design §5).
        raise StoreError(
            f"Could not allocate a version for model {model.name!r}: 50 concurrent registrations won "
            "the race first. Retry the registration.",
            name=model.name,
        )

    def get_model(self, workspace_id: str, name: str, version: int | None = None) -> ModelInfo:
        q = select(_m).where(
            _m.c.workspace_id == workspace_id, _m.c.name == name, _m.c.deleted.is_(False)
        )
        q = (
            q.where(_m.c.version == version)
            if version is not None
            else q.order_by(_m.c.version.desc())
        )
        row = self._tx(lambda c: c.execute(q.limit(1)).first(), write=False)
        if row is None:
            raise _not_found(name, version)
        return _row_to_model(row)

    def list_models(
        self,
        workspace_id: str,
        name: str | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[ModelInfo]:
        q = select(_m).where(_m.c.workspace_id == workspace_id, _m.c.deleted.is_(False))
        if name is not None:
            q = q.where(_m.c.name == name)
        if run_id is not None:
            q = q.where(_m.c.run_id == run_id)
        rows = self._tx(
            lambda c: c.execute(q.order_by(_m.c.name, _m.c.version.desc())).all(), write=False
        )
        models = [_row_to_model(r) for r in rows]
        if latest:
            seen: set[str] = set()
            models = [m for m in models if not (m.name in seen or seen.add(m.name))]  # type: ignore[func-returns-value]
        return models

    def update_model(
        self,
        workspace_id: str,
        name: str,
        version: int,
        *,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        add_properties: Mapping[str, str] | None = None,
    ) -> ModelInfo:
        def tx(conn: Connection) -> None:
            row = conn.execute(
                select(_m)
                .where(
                    _m.c.workspace_id == workspace_id,
                    _m.c.name == name,
                    _m.c.version == version,
                    _m.c.deleted.is_(False),
                )
                .with_for_update()  # PostgreSQL: concurrent property adds must not lose each other
            ).first()
            if row is None:
                raise _not_found(name, version)
            values: dict[str, Any] = {}
            if tags is not None:
                values["tags"] = json.dumps(dict(tags), sort_keys=True)
            if description is not None:
                values["description"] = description
            if add_properties:
                props = json.loads(row.properties)
                for k, v in add_properties.items():
                    if k in props and props[k] != v:
                        raise ImmutablePropertyError(
                            f"Property {k!r} of model {name}:{version} is already {props[k]!r}; "
                            "model properties are add-only. Use tags for values that change.",
                            key=k,
                        )
                    props[k] = v
                values["properties"] = json.dumps(props, sort_keys=True)
            if values:
                conn.execute(
                    update(_m)
                    .where(
                        _m.c.workspace_id == workspace_id,
                        _m.c.name == name,
                        _m.c.version == version,
                    )
                    .values(**values)
                )

        self._tx(tx)
        return self.get_model(workspace_id, name, version)

    def delete_model(self, workspace_id: str, name: str, version: int) -> ModelInfo:
        info = self.get_model(workspace_id, name, version)
        # A tombstone, not a DELETE: version numbers are never reused.
        self._tx(
            lambda c: c.execute(
                update(_m)
                .where(
                    _m.c.workspace_id == workspace_id, _m.c.name == name, _m.c.version == version
                )
                .values(deleted=True)
            )
        )
        return info
