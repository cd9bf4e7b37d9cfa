"""The runs table of the SQL store: sorted, filtered and paged in the database (mixed into
:class:`~trainyard._store.sql.store.SqlTrackingStore`).

A first page of 100,000 runs sorted by creation reads ~``limit`` rows through
``ix_runs_experiment_created``; other sort keys sort in the database, never in Python. A sort on a
metric and the last value of every metric of a page of runs read ``ty_run_latest_metrics``, kept
on write (``_latest.py``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, and_, case, cast, func, literal, not_, null, or_, select
from sqlalchemy.engine import Connection, Row

from trainyard._store.entities import RunInfo, RunPage
from trainyard._store.search import NUMBER_PATTERN, check_search
from trainyard._store.sql import schema as s
from trainyard._store.sql._latest import decoded
from trainyard._store.sql._util import SqlBase


class SqlSearchMixin(SqlBase):
    """``search_runs`` and ``latest_metrics`` on the shared engine."""

    if TYPE_CHECKING:  # provided by SqlTrackingStore

        def _select_runs(self) -> Any: ...

        def _hydrate(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[RunInfo]: ...

        def _top_level(self) -> Any: ...

    def search_runs(
        self,
        workspace_id: str,
        *,
        experiment_id: int | None = None,
        parent_run_id: str | None = None,
        include_children: bool = False,
        statuses: Sequence[str] | None = None,
        text: str | None = None,
        submitted_by: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str | None] | None = None,
        order_by: str = "created_at",
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> RunPage:
        check_search(order_by, offset, limit)
        runs = s.runs
        conds: list[Any] = []
        if experiment_id is not None:
            conds.append(runs.c.experiment_id == experiment_id)
        else:
            conds.append(
                runs.c.experiment_id.in_(
                    select(s.experiments.c.id).where(s.experiments.c.workspace_id == workspace_id)
                )
            )
        if parent_run_id is not None:
            conds.append(runs.c.parent_run_id == parent_run_id)
        elif not include_children:
            conds.append(self._top_level())
        if statuses:
            conds.append(runs.c.status.in_(list(statuses)))
        if submitted_by is not None:
            conds.append(runs.c.submitted_by == submitted_by)
        if text:
            pattern = f"%{_escape_like(text.lower())}%"
            conds.append(
                or_(
                    func.lower(runs.c.run_id).like(pattern, escape="\\"),
                    func.lower(func.coalesce(runs.c.display_name, "")).like(pattern, escape="\\"),
                )
            )
        for table, filt in ((s.run_tags, tags), (s.run_properties, properties)):
            for key, value in (filt or {}).items():
                cond = and_(table.c.run_pk == runs.c.pk, table.c.key == key)
                if value is not None:
                    cond = and_(cond, table.c.value == str(value))
                conds.append(select(table.c.run_pk).where(cond).exists())

        if order_by.startswith("metric:"):
            return self._search_by_metric(conds, order_by[7:], descending, offset, limit)
        q = self._select_runs().where(*conds)
        sort_key = _sort_column(order_by, descending, time.time())
        if sort_key is not None:
            if order_by.startswith(("tag:", "property:")):
                table = s.run_tags if order_by.startswith("tag:") else s.run_properties
                kv = table.alias("sort_kv")
                q = q.outerjoin(
                    kv, and_(kv.c.run_pk == runs.c.pk, kv.c.key == order_by.partition(":")[2])
                )
                sort_key = kv.c.value
                number = self._as_number(kv.c.value)
                q = q.order_by(
                    sort_key.is_(None),
                    number.is_(None),  # numbers first, numerically, then text
                    number.desc() if descending else number.asc(),
                )
            q = q.order_by(
                sort_key.is_(None),  # missing values last, both directions, on both databases
                sort_key.desc() if descending else sort_key.asc(),
            )
        q = q.order_by(runs.c.created_at.desc(), runs.c.pk.desc()).offset(offset).limit(limit)
        count = select(func.count()).select_from(runs).where(*conds)

        def tx(conn: Connection) -> RunPage:
            rows = conn.execute(q).all()
            total = int(conn.execute(count).scalar_one())
            return RunPage(runs=self._hydrate(conn, rows), total=total)

        page: RunPage = self._tx(tx, write=False)
        return page

    def _as_number(self, text: Any) -> Any:
        """SQL: ``text`` as a float where it reads as a number (:data:`NUMBER_PATTERN`), else
        NULL. PostgreSQL matches the pattern; SQLite has no regular expressions, so a value
        with a digit and only number characters counts (``1.2.3`` sorts as 1.2 there)."""
        if self.engine.dialect.name == "postgresql":
            is_number = text.op("~", is_comparison=True)(NUMBER_PATTERN)
        else:
            is_number = and_(
                text.op("GLOB", is_comparison=True)("*[0-9]*"),
                not_(text.op("GLOB", is_comparison=True)("*[^0-9.eE+-]*")),
            )
        return case((is_number, cast(text, Float)), else_=null())

    def _search_by_metric(
        self, conds: list[Any], name: str, descending: bool, offset: int, limit: int
    ) -> RunPage:
        """A page sorted on the last value of metric ``name`` (``ty_run_latest_metrics``): the runs
        with a finite value in the order of an index on ``(name, value, created_at, run_pk)``,
        then those without one, newest first; each part is one query that reads about a page of
        rows (an offset deep into the table walks that far, as every offset page does)."""
        runs, lm = s.runs, s.run_latest_metrics
        has_value = and_(lm.c.run_pk == runs.c.pk, lm.c.name == name, lm.c.value.is_not(None))
        # Ties newest first, on the table's own copy of the creation time: one index serves it.
        if descending:
            order = [lm.c.value.desc(), lm.c.created_at.desc(), lm.c.run_pk.desc()]
        else:
            order = [lm.c.value.asc(), lm.c.created_at.desc(), lm.c.run_pk.desc()]
        present = (
            self._select_runs()
            .join(lm, lm.c.run_pk == runs.c.pk)
            .where(lm.c.name == name, lm.c.value.is_not(None), *conds)
            .order_by(*order)
        )
        missing = (
            self._select_runs()
            .where(*conds, not_(select(lm.c.run_pk).where(has_value).exists()))
            .order_by(runs.c.created_at.desc(), runs.c.pk.desc())
        )
        n_present = (
            select(func.count())
            .select_from(lm)
            .join(runs, runs.c.pk == lm.c.run_pk)
            .where(lm.c.name == name, lm.c.value.is_not(None), *conds)
        )
        count = select(func.count()).select_from(runs).where(*conds)

        def tx(conn: Connection) -> RunPage:
            rows = list(conn.execute(present.offset(offset).limit(limit)).all())
            if len(rows) < limit:
                # The page runs past the runs with a value: how many there are says where the
                # rest of it starts among the others.
                before = offset + len(rows) if rows else int(conn.execute(n_present).scalar_one())
                rest = conn.execute(
                    missing.offset(max(0, offset - before)).limit(limit - len(rows))
                ).all()
                rows.extend(rest)
            total = int(conn.execute(count).scalar_one())
            return RunPage(runs=self._hydrate(conn, rows), total=total)

        page: RunPage = self._tx(tx, write=False)
        return page

    def latest_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        lm = s.run_latest_metrics

        def tx(conn: Connection) -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {}
            ids = list(dict.fromkeys(run_ids))
            for start in range(0, len(ids), 500):
                q = (
                    select(s.runs.c.run_id, lm.c.name, lm.c["last"], lm.c.dtype)
                    .join(s.runs, s.runs.c.pk == lm.c.run_pk)
                    .where(s.runs.c.run_id.in_(ids[start : start + 500]), lm.c.shadowed.is_(False))
                )
                for run_id, name, last, dtype in conn.execute(q).all():
                    value = decoded(last, dtype)
                    if value is not None:
                        out.setdefault(str(run_id), {})[name] = value
            return out

        found: dict[str, dict[str, Any]] = self._tx(tx, write=False)
        return found


def _sort_column(order_by: str, descending: bool, now: float) -> Any:
    """The SQL expression a sort field names (``tag:``/``property:`` are joined by the caller)."""
    runs = s.runs
    if order_by == "created_at" and descending:
        return None  # the tie-break order is this one (served by the creation indexes)
    if order_by == "duration":
        return func.coalesce(runs.c.end_time, literal(now)) - runs.c.start_time
    if order_by.startswith(("tag:", "property:")):
        return literal(0)  # replaced by the joined value
    return runs.c[order_by]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
