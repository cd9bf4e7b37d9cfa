"""Alembic migrations: the schema they build is exactly ``schema.metadata``, the code's head revision
is the scripts' head, and many processes opening a fresh database at once migrate it exactly once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, Table, func, inspect, select, text
from sqlalchemy.engine import Engine

from trainyard._store.sql import schema
from trainyard._store.sql.engine import (
    _MIGRATIONS,
    _VERSION_TABLE,
    HEAD_REVISION,
    current_revision,
    ensure_schema,
    get_engine,
    known_revisions,
)
from trainyard._store.sql.store import SqlTrackingStore
from trainyard.exceptions import SchemaTooNew, TrainyardError
from trainyard.testing.fixtures import BACKENDS, unique_name

PROCESSES = 20


def _diff(engine: Engine, metadata: MetaData) -> list[object]:
    def include(name: str | None, type_: str, _parents: object) -> bool:
        return not (type_ == "table" and name == _VERSION_TABLE)

    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={"include_name": include, "compare_type": True, "compare_server_default": True},
        )
        return list(compare_metadata(ctx, metadata))


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest) -> str:
    """A URL of a database (SQLite file or PostgreSQL schema) nothing has touched yet."""
    name = "sqlite_url" if request.param == "sqlite" else "fresh_postgres_url"
    url: str = request.getfixturevalue(name)
    return url


def test_head_revision_is_the_scripts_head() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    assert script.get_heads() == [HEAD_REVISION]
    assert script.get_current_head() == HEAD_REVISION


def test_empty_database_has_no_revision(empty_db_url: str) -> None:
    assert current_revision(get_engine(empty_db_url)) is None


def test_migrated_schema_matches_metadata(empty_db_url: str) -> None:
    engine = SqlTrackingStore(empty_db_url).engine
    assert current_revision(engine) == HEAD_REVISION
    assert _diff(engine, schema.metadata) == []
    tables = set(inspect(engine).get_table_names())
    assert tables == set(schema.metadata.tables) | {_VERSION_TABLE}


def test_comparison_sees_a_difference(empty_db_url: str) -> None:
    # Guards the test above: a metadata that differs from the migrated schema must show a diff.
    engine = SqlTrackingStore(empty_db_url).engine
    changed = MetaData()
    for table in schema.metadata.tables.values():
        table.to_metadata(changed)
    Table("ty_extra", changed, Column("id", Integer, primary_key=True))
    diff = _diff(engine, changed)
    assert [d[0] for d in diff if isinstance(d, tuple)] == ["add_table"]


def test_ensure_schema_is_idempotent(empty_db_url: str) -> None:
    store = SqlTrackingStore(empty_db_url)
    ws = store.ensure_workspace("kept")
    ensure_schema(store.engine)
    ensure_schema(store.engine)
    assert current_revision(store.engine) == HEAD_REVISION
    assert SqlTrackingStore(empty_db_url).get_workspace("kept") == ws


def test_known_revisions_are_the_scripts() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    assert known_revisions() == {r.revision for r in script.walk_revisions()}


def test_a_newer_schema_is_refused_typed_and_untouched(empty_db_url: str) -> None:
    """Issue 11 item 8: a database a newer trainyard migrated says to upgrade trainyard (it was
    Alembic's CommandError "Can't locate revision"), on both databases, and is left as it was."""
    store = SqlTrackingStore(empty_db_url)
    store.ensure_workspace("kept")
    with store.engine.begin() as conn:
        conn.execute(text(f"UPDATE {_VERSION_TABLE} SET version_num = '0999'"))
    with pytest.raises(SchemaTooNew) as info:
        ensure_schema(store.engine)
    err = info.value
    assert isinstance(err, TrainyardError) and err.code == "SCHEMA_TOO_NEW"
    assert "Upgrade trainyard" in err.message and "'0999'" in err.message
    assert err.details["revision"] == "0999" and err.details["head"] == HEAD_REVISION
    assert current_revision(store.engine) == "0999"


def test_a_workspace_from_a_newer_trainyard_says_to_upgrade(tmp_path: Path) -> None:
    from trainyard.core.workspace import Workspace

    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    db = tmp_path / "ws" / "trainyard.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE {_VERSION_TABLE} SET version_num = '0999'")
    code = f"""
import sys
from trainyard.core.workspace import Workspace
from trainyard.exceptions import SchemaTooNew
try:
    Workspace.get({ws.name!r}, path=sys.argv[1])
except SchemaTooNew as err:
    print("refused:", err.message)
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "refused:" in out.stdout and "Upgrade trainyard" in out.stdout, out.stderr[-2000:]


def test_store_without_migrate_does_not_create_tables(empty_db_url: str) -> None:
    store = SqlTrackingStore(empty_db_url, migrate=False)
    assert current_revision(store.engine) is None
    assert inspect(store.engine).get_table_names() == []


# -- many processes at once -----------------------------------------------------------------------

_GATE = """
import pathlib, sys, time
gate = pathlib.Path(sys.argv[1]); me = sys.argv[2]
(gate / f"ready-{me}").touch()
deadline = time.time() + 60
while not (gate / "go").exists():
    if time.time() > deadline:
        sys.exit("the test never opened the gate")
    time.sleep(0.002)
"""

_OPEN_WORKSPACE = (
    """
import sys
import alembic.command  # imported before the gate so the race is about the database only
from trainyard.core.experiment import Experiment
from trainyard.core.workspace import Workspace
"""
    + _GATE
    + """
name, path, uri = sys.argv[3], sys.argv[4], sys.argv[5] or None
ws = Workspace.create(name, path=path, exist_ok=True, tracking_uri=uri)
with Experiment(ws, "race").start_logging() as run:
    run.log("me", int(me))
print("WS", ws.context.workspace_id)
"""
)

_OPEN_STORE = (
    """
import sys
import alembic.command
from trainyard._store.entities import NewRun
from trainyard._store.sql.store import SqlTrackingStore
from array import array
from trainyard._tracking.codec import numeric_chunk
"""
    + _GATE
    + """
url, name = sys.argv[3], sys.argv[4]
store = SqlTrackingStore(url)
ws = store.ensure_workspace(name)
exp = store.get_or_create_experiment(ws.id, "race")
run = store.create_run(NewRun(run_id=f"run-{me}", experiment_id=exp.id, run_type="x", status="Running"))
point = numeric_chunk("me", array("d", [int(me)]), array("d", [time.time()]), None, True)
store.log_metric_chunks(run.run_id, [point])
print("WS", ws.id)
"""
)


def _race_processes(tmp_path: Path, script: str, args: list[str]) -> list[str]:
    """Start PROCESSES interpreters, release them together, return each one's workspace id."""
    gate = tmp_path / "gate"
    gate.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), str(gate), str(i), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    try:
        deadline = time.time() + 120
        while len(list(gate.glob("ready-*"))) < PROCESSES:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.time() < deadline, "children did not start"
            time.sleep(0.01)
        (gate / "go").touch()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    ids: list[str] = []
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "database is locked" not in err, err
        ids.extend(line.split()[1] for line in out.splitlines() if line.startswith("WS "))
    assert len(ids) == PROCESSES
    return ids


def _check_one_workspace(url: str, name: str, ids: list[str]) -> None:
    engine = get_engine(url)
    assert current_revision(engine) == HEAD_REVISION
    with engine.connect() as conn:
        rows = conn.execute(
            select(schema.workspaces.c.id).where(schema.workspaces.c.name == name)
        ).all()
        assert [r.id for r in rows] == [ids[0]]
        version_table = Table(_VERSION_TABLE, MetaData(), autoload_with=conn)
        assert conn.execute(select(func.count()).select_from(version_table)).scalar_one() == 1
    assert set(ids) == {ids[0]}
    store = SqlTrackingStore(url)
    exp = store.get_experiment(ids[0], "race")
    runs, _ = store.list_runs(exp.id, limit=1000)
    assert sorted(r.number for r in runs) == list(range(1, PROCESSES + 1))
    assert sorted(_first_value(store, r.run_id) for r in runs) == list(range(PROCESSES))


def _first_value(store: SqlTrackingStore, run_id: str) -> int:
    from trainyard._tracking.codec import decode

    (point,) = decode(store.get_metric_chunks(run_id, ["me"]))["me"][1]
    return int(point.value)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_processes_creating_one_workspace_at_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """20 processes call Workspace.create(name, path=same, exist_ok=True) on a fresh workspace."""
    name = unique_name("ws")
    path = tmp_path / "ws"
    uri = request.getfixturevalue("fresh_postgres_url") if backend == "postgres" else ""
    ids = _race_processes(tmp_path, _OPEN_WORKSPACE, [name, str(path), uri])
    url = uri or f"sqlite:///{path / 'trainyard.db'}"
    _check_one_workspace(url, name, ids)


@pytest.mark.slow
def test_processes_migrating_one_database_at_once(empty_db_url: str, tmp_path: Path) -> None:
    """20 processes open the same brand-new database directly: the migration itself races."""
    name = unique_name("ws")
    ids = _race_processes(tmp_path, _OPEN_STORE, [empty_db_url, name])
    _check_one_workspace(empty_db_url, name, ids)
