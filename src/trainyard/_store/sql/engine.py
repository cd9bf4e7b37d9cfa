"""Engines, transactions with retry, and race-safe schema migration for SQLite and PostgreSQL.

SQLite runs in WAL mode with ``busy_timeout``; write transactions start with ``BEGIN IMMEDIATE`` so
two writers never deadlock on a lock upgrade, and a write that still meets "database is locked" is
retried with jittered backoff, so the message never reaches the user. Migrations are serialised by a
file lock (SQLite) or an advisory lock (PostgreSQL): twenty processes opening a fresh workspace at
once apply the schema exactly once.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from trainyard._compat.platform import FileLock
from trainyard.exceptions import SchemaTooNew, StoreError

#: The head Alembic revision this code expects (tests check it matches the migration scripts).
HEAD_REVISION = "0008"
_MIGRATIONS = Path(__file__).with_name("migrations")
_VERSION_TABLE = "ty_alembic_version"
_PG_LOCK_KEY = 0x7472616E  # "tran"

T = TypeVar("T")

_engines: dict[tuple[str, int], Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str, busy_timeout_ms: int = 60_000) -> Engine:
    """One engine per URL per process (engines own connection pools)."""
    key = (url, busy_timeout_ms)
    with _engines_lock:
        eng = _engines.get(key)
        if eng is None:
            eng = _make_engine(url, busy_timeout_ms)
            _engines[key] = eng
        return eng


def dispose_engines() -> None:
    """Close every pooled connection (after ``fork`` or in tests)."""
    with _engines_lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()


def _forget_pools_after_fork() -> None:
    """In a forked child: new pools, without closing the parent's connections (SQLAlchemy's
    ``dispose(close=False)``): a connection shared by two processes corrupts both."""
    global _engines_lock
    _engines_lock = threading.Lock()
    for eng in list(_engines.values()):
        eng.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


def _make_engine(url: str, busy_timeout_ms: int) -> Engine:
    if url.startswith("sqlite"):
        eng = create_engine(
            url,
            connect_args={"timeout": busy_timeout_ms / 1000.0, "check_same_thread": False},
            pool_size=4,
            max_overflow=8,
        )

        @event.listens_for(eng, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control away from pysqlite so BEGIN IMMEDIATE can be emitted.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(eng, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("ty_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return eng
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _is_retryable(err: BaseException) -> bool:
    msg = str(err).lower()
    if (
        "database is locked" in msg
        or "database is busy" in msg
        or "database table is locked" in msg
    ):
        return True
    orig = getattr(err, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return sqlstate in {"40001", "40P01"}  # serialization failure, deadlock


def run_in_transaction(
    engine: Engine, fn: Callable[[Connection], T], *, write: bool = True, attempts: int = 40
) -> T:
    """Run ``fn(conn)`` in one transaction, retrying lock/serialisation failures with backoff."""
    delay = 0.005
    for attempt in range(attempts):
        try:
            with engine.connect() as conn:
                if write:
                    conn = conn.execution_options(ty_write=True)
                with conn.begin():
                    return fn(conn)
        except IntegrityError:
            raise
        except (OperationalError, DBAPIError) as err:
            if not _is_retryable(err) or attempt == attempts - 1:
                raise StoreError(
                    f"The metadata database failed: {err.__class__.__name__}: {err.orig!r}. "
                    "Check that the database is reachable and not full, then retry.",
                    url=engine.url.render_as_string(hide_password=True),
                ) from err
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")  # pragma: no cover


def current_revision(engine: Engine) -> str | None:
    """The schema revision in the database, or ``None`` for an empty one."""
    try:
        with engine.connect() as conn:
            row = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).first()
            return str(row[0]) if row else None
    except (OperationalError, DBAPIError):
        return None


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection | None]:
    if engine.dialect.name == "sqlite":
        db_path = engine.url.database or ""
        lock_path = Path(db_path + ".migrate.lock") if db_path else None
        if lock_path is None:
            yield None
            return
        with FileLock(lock_path):
            yield None
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
        conn.commit()
        try:
            yield conn
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()


def ensure_schema(engine: Engine) -> None:
    """Bring the database to :data:`HEAD_REVISION` once, however many processes ask at once.

    An unreachable database (or a SQLite path in a missing folder) raises ``StoreError``.
    """
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return
    _refuse_unknown(engine, revision)
    try:
        _migrate(engine)
    except (OperationalError, DBAPIError, OSError) as err:
        detail = err.orig if isinstance(err, DBAPIError) else err
        raise StoreError(
            f"Cannot open the metadata database: {detail}. Check that it is reachable (and, for "
            "SQLite, that its folder exists and is writable), then retry.",
            url=engine.url.render_as_string(hide_password=True),
        ) from err


def known_revisions() -> frozenset[str]:
    """The schema revisions this trainyard's migrations know (``0001`` … :data:`HEAD_REVISION`)."""
    names = (_MIGRATIONS / "versions").glob("[0-9]*_*.py")
    return frozenset(p.name.split("_", 1)[0] for p in names)


def _refuse_unknown(engine: Engine, revision: str | None) -> None:
    """A revision none of our migrations knows is a newer trainyard's: refuse it, typed, before
    Alembic would fail with its own ``CommandError`` ("Can't locate revision")."""
    if revision is None or revision in known_revisions():
        return
    raise SchemaTooNew(
        f"This workspace's metadata database is at schema revision {revision!r}, written by a "
        f"newer trainyard than this one (which knows revisions up to {HEAD_REVISION!r}). "
        "Upgrade trainyard (pip install --upgrade trainyard) to open it; nothing was changed.",
        url=engine.url.render_as_string(hide_password=True),
        revision=revision,
        head=HEAD_REVISION,
    )


def _migrate(engine: Engine) -> None:
    with _migration_lock(engine):
        revision = current_revision(engine)
        if revision == HEAD_REVISION:
            return
        _refuse_unknown(engine, revision)  # a newer trainyard may have migrated meanwhile
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
