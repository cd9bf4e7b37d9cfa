"""Metric buffer against real stores that fail: every acknowledged point is counted back.

Issue 11, item 1: a flush that failed used to drop the points it had taken from the buffer. Here the
store is real and fails for real: SQLite on a tmpfs that is filled up (needs root for ``mount``;
skipped with the reason otherwise), PostgreSQL refusing inserts with its own ``disk_full`` error (a
trigger) and PostgreSQL with the metric table locked by another session (the write hangs, ``flush``
must still return at its timeout).
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from trainyard._store.entities import NewRun
from trainyard._store.sql.engine import get_engine
from trainyard._store.sql.store import SqlTrackingStore
from trainyard._tracking.buffer import MetricBuffer
from trainyard._tracking.codec import decode
from trainyard.exceptions import StoreError

pytestmark = pytest.mark.reliability

BEFORE = 1_000
DURING = 200_000  # the scale: 94,026 of these were lost


def _new_run(store: SqlTrackingStore) -> str:
    ws = store.ensure_workspace("w")
    exp = store.get_or_create_experiment(ws.id, "e")
    store.create_run(NewRun(run_id="r1", experiment_id=exp.id, run_type="x", status="Running"))
    return "r1"


def _stored(store: SqlTrackingStore, run_id: str, name: str) -> list[object]:
    chunks = store.get_metric_chunks(run_id, [name])
    return [p.value for p in decode(chunks).get(name, ("", []))[1]]


def _log(buf: MetricBuffer, start: int, stop: int) -> None:
    for i in range(start, stop):
        buf.log_number("loss", float(i), None)
        if i % 10_000 == 0:
            buf.log_json("phase", "scalar", f"at {i}")


def _expected_phases(stop: int) -> list[object]:
    return [f"at {i}" for i in range(0, stop, 10_000)]


# -- SQLite on a full disk ----------------------------------------------------------------------
def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    block = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError as err:
            assert err.errno == errno.ENOSPC
    with open(filler, "ab", buffering=0) as fh:  # the last partial megabyte too
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_sqlite_disk_full_then_freed_keeps_every_point(small_disk: Path) -> None:
    url = f"sqlite:///{small_disk / 'trainyard.db'}"
    store = SqlTrackingStore(url)
    run_id = _new_run(store)
    buf = MetricBuffer(lambda c: store.log_metric_chunks(run_id, c), flush_interval=3600)
    try:
        _log(buf, 0, BEFORE)
        buf.flush()
        filler = _fill(small_disk)
        _log(buf, BEFORE, BEFORE + DURING)
        with pytest.raises(StoreError) as info:
            buf.flush(2.0)
        assert "full" in str(info.value.__cause__) and "flush() again" in str(info.value)
        assert buf.pending == DURING + DURING // 10_000
        filler.unlink()
        buf.flush()
        assert buf.pending == 0
        assert _stored(store, run_id, "loss") == [float(i) for i in range(BEFORE + DURING)]
        assert _stored(store, run_id, "phase") == _expected_phases(BEFORE + DURING)
    finally:
        with contextlib.suppress(StoreError):
            buf.close(5.0)
        get_engine(url).dispose()  # no open files left on the mount


# -- PostgreSQL ---------------------------------------------------------------------------------
@pytest.fixture
def pg(fresh_postgres_url: str) -> Iterator[tuple[SqlTrackingStore, str, object]]:
    store = SqlTrackingStore(fresh_postgres_url)
    admin = create_engine(fresh_postgres_url, poolclass=NullPool)
    try:
        yield store, _new_run(store), admin
    finally:
        admin.dispose()


FAIL_FULL = """
CREATE FUNCTION ty_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
END $$;
CREATE TRIGGER ty_test_disk_full BEFORE INSERT ON ty_metric_chunks
  FOR EACH STATEMENT EXECUTE FUNCTION ty_test_disk_full();
"""


@pytest.mark.postgres
def test_postgres_disk_full_then_freed_keeps_every_point(
    pg: tuple[SqlTrackingStore, str, object],
) -> None:
    store, run_id, admin = pg
    buf = MetricBuffer(lambda c: store.log_metric_chunks(run_id, c), flush_interval=0.05)
    try:
        _log(buf, 0, BEFORE)
        buf.flush()
        with admin.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text(FAIL_FULL))
        _log(buf, BEFORE, BEFORE + DURING)
        with pytest.raises(StoreError) as info:
            buf.flush(2.0)
        assert "No space left" in str(info.value)
        with admin.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text("DROP TRIGGER ty_test_disk_full ON ty_metric_chunks"))
        buf.flush()
        assert _stored(store, run_id, "loss") == [float(i) for i in range(BEFORE + DURING)]
        assert _stored(store, run_id, "phase") == _expected_phases(BEFORE + DURING)
    finally:
        buf.close(5.0)


@pytest.mark.postgres
def test_postgres_locked_table_flush_returns_at_its_timeout(
    pg: tuple[SqlTrackingStore, str, object],
) -> None:
    store, run_id, admin = pg
    buf = MetricBuffer(lambda c: store.log_metric_chunks(run_id, c), flush_interval=0.05)
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with admin.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text("LOCK TABLE ty_metric_chunks IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            release.wait(120)

    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    try:
        assert locked.wait(30)
        _log(buf, 0, BEFORE)
        # The write hangs on the lock; the old flush waited on the writer for as long as it hung.
        with pytest.raises(StoreError) as info:
            buf.flush(1.0)
        assert "still in progress" in str(info.value)
        _log(buf, BEFORE, 2 * BEFORE)
        release.set()
        holder.join(30)
        buf.flush()
        assert _stored(store, run_id, "loss") == [float(i) for i in range(2 * BEFORE)]
    finally:
        release.set()
        buf.close(5.0)


_SCRIPT = """
import sys
from trainyard._store.sql.store import SqlTrackingStore
from trainyard._tracking.buffer import MetricBuffer
from trainyard.exceptions import StoreError
store = SqlTrackingStore(sys.argv[1])
buf = MetricBuffer(lambda c: store.log_metric_chunks(sys.argv[2], c), flush_interval=0.01)
for i in range(1000):
    buf.log_number("loss", float(i), None)
buf.flush()
print("stored", flush=True)
sys.stdin.readline()  # the parent now holds the database's write lock
for i in range(1000, 3000):
    buf.log_number("loss", float(i), None)
try:
    buf.flush(1.0)
except StoreError as err:
    print("timed out:", err, flush=True)
sys.stdin.readline()  # the lock is released; exit without flushing: the exit hook must
"""


def test_exit_flush_stores_points_kept_through_a_locked_database(tmp_path: Path) -> None:
    """A script's process meets a SQLite database whose write lock another process holds: its
    flush returns at the timeout, and once the lock is gone the exit-time flush stores it all."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    store = SqlTrackingStore(url)
    run_id = _new_run(store)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, url, run_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "stored"
        holder = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        proc.stdin.write("go\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line.startswith("timed out:") and "2000 metric points" in line, line
        holder.execute("COMMIT")
        holder.close()
        proc.stdin.write("exit\n")
        proc.stdin.flush()
        assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _stored(store, run_id, "loss") == [float(i) for i in range(3000)]
