"""Reusable pytest fixtures: store URLs and workspaces on SQLite and PostgreSQL.

Load them as a plugin from a ``conftest.py``::

    pytest_plugins = ["trainyard.testing.fixtures"]

    def test_something(workspace):          # runs once on SQLite, once on PostgreSQL
        exp = Experiment(workspace, "demo")

PostgreSQL variants need ``TRAINYARD_TEST_POSTGRES_URL`` (for example
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); without it they are skipped with that
reason. Each test session (each xdist worker) works in its own fresh schema
``ty_test_<random>``, selected through libpq's ``options=-csearch_path=…`` in the URL and dropped
(``CASCADE``) at the end. Tests that need an empty database of their own (a migration race) use
:func:`postgres_schema` or the ``fresh_postgres_url`` fixture.

Fixtures:

* ``sqlite_url``: ``sqlite:///<tmp>/trainyard.db`` (a new file per test).
* ``postgres_url``: the session's PostgreSQL schema URL (skips without the variable).
* ``fresh_postgres_url``: a new, empty schema for this test only.
* ``store_url``: parametrized ``sqlite`` / ``postgres``.
* ``workspace``: a new workspace, parametrized ``sqlite`` / ``postgres`` (PostgreSQL through
  ``Workspace.create(..., tracking_uri=...)``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from trainyard.core.workspace import Workspace

__all__ = [
    "BACKENDS",
    "POSTGRES_URL_ENV",
    "fresh_postgres_url",
    "postgres_base_url",
    "postgres_schema",
    "postgres_url",
    "sqlite_url",
    "store_url",
    "unique_name",
    "with_search_path",
    "workspace",
]

#: The environment variable naming the PostgreSQL server tests may use.
POSTGRES_URL_ENV = "TRAINYARD_TEST_POSTGRES_URL"

#: Parameters for backend-parametrized fixtures; PostgreSQL carries the ``postgres`` marker.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

_SKIP_REASON = (
    f"{POSTGRES_URL_ENV} is not set; export it (e.g. "
    "postgresql+psycopg://postgres@127.0.0.1:5432/test) to run the PostgreSQL variants."
)


def unique_name(prefix: str = "t") -> str:
    """A name no other test (or xdist worker) uses: ``<prefix>_<12 hex>``.

    Example::

        Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    """
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def postgres_base_url(env: Mapping[str, str] | None = None) -> str | None:
    """The server URL from :data:`POSTGRES_URL_ENV` (psycopg 3 driver), or ``None`` when unset.

    Example::

        url = postgres_base_url()   # 'postgresql+psycopg://postgres@127.0.0.1:5432/test'
    """
    from trainyard._context import normalize_store_url

    raw = (os.environ if env is None else env).get(POSTGRES_URL_ENV, "").strip()
    return normalize_store_url(raw) if raw else None


def with_search_path(base_url: str, schema: str) -> str:
    """``base_url`` with libpq ``options=-csearch_path=<schema>`` appended (URL-encoded).

    Example::

        with_search_path("postgresql+psycopg://u@h/db", "s1")
        # 'postgresql+psycopg://u@h/db?options=-csearch_path%3Ds1'
    """
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def postgres_schema(base_url: str, prefix: str = "ty_test_") -> Iterator[str]:
    """Create a fresh schema, yield a URL whose connections use it, then drop it (``CASCADE``).

    Example::

        with postgres_schema(postgres_base_url()) as url:
            store = SqlTrackingStore(url)
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from trainyard._store.sql.engine import get_engine

    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = with_search_path(base_url, schema)
        try:
            yield url
        finally:
            get_engine(url).dispose()  # close pooled connections before dropping their schema
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The session's own PostgreSQL schema URL; skips when the server variable is unset."""
    base = postgres_base_url()
    if base is None:
        pytest.skip(_SKIP_REASON)
    with postgres_schema(base) as url:
        yield url


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL schema for this test alone (for migration tests)."""
    base = postgres_base_url()
    if base is None:
        pytest.skip(_SKIP_REASON)
    with postgres_schema(base) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite URL for a new database file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'trainyard.db'}"


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str:
    """A store URL, once for SQLite and once for PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture(params=BACKENDS)
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    """A new workspace folder; its metadata in SQLite or (``tracking_uri=``) PostgreSQL."""
    from trainyard.core.workspace import Workspace

    uri = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return Workspace.create(unique_name("ws"), path=tmp_path / "workspace", tracking_uri=uri)
