"""MetricBuffer: the logging hot path, its background writer, back-pressure and error handling.

The buffer writes through a plain callable; most tests hand it a real SQLite store's
``log_metric_chunks``, a few a recording function to watch exactly what is written when.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from trainyard._store.entities import MetricChunk, NewRun
from trainyard._store.sql.store import SqlTrackingStore
from trainyard._tracking.buffer import MetricBuffer, flush_all
from trainyard._tracking.codec import decode
from trainyard.exceptions import MetricValueError, RunFinishedError, RunNotFound, StoreError


class Recorder:
    """A writer that keeps every batch it is given (optionally failing the first few calls)."""

    def __init__(
        self, fail_first: int = 0, error: Exception | None = None, delay: float = 0.0
    ) -> None:
        self.batches: list[list[MetricChunk]] = []
        self.calls = 0
        self._fail_first = fail_first
        self._error = error or StoreError("database down")
        self._delay = delay
        self.lock = threading.Lock()

    def __call__(self, chunks: Sequence[MetricChunk]) -> None:
        with self.lock:
            self.calls += 1
            if self.calls <= self._fail_first:
                raise self._error
        if self._delay:
            time.sleep(self._delay)
        with self.lock:
            self.batches.append(list(chunks))

    def values(self, name: str) -> list[object]:
        with self.lock:
            chunks = [c for b in self.batches for c in b]
        return [p.value for p in decode(chunks).get(name, ("", []))[1]]


@pytest.fixture
def store_run(tmp_path: Path) -> tuple[SqlTrackingStore, str]:
    store = SqlTrackingStore(f"sqlite:///{tmp_path / 't.db'}")
    ws = store.ensure_workspace("w")
    exp = store.get_or_create_experiment(ws.id, "e")
    store.create_run(NewRun(run_id="r1", experiment_id=exp.id, run_type="x", status="Running"))
    return store, "r1"


def _stored(store: SqlTrackingStore, run_id: str, name: str) -> list[object]:
    return [p.value for p in decode(store.get_metric_chunks(run_id, [name])).get(name, ("", []))[1]]


def test_flush_writes_what_was_logged(store_run: tuple[SqlTrackingStore, str]) -> None:
    store, run_id = store_run
    buf = MetricBuffer(lambda c: store.log_metric_chunks(run_id, c), flush_interval=60)
    for i in range(1000):
        buf.log_number("loss", i / 10, None)
    buf.log_number("batch", 128, None)
    buf.log_json("note", "scalar", "hello")
    assert buf.pending == 1002
    buf.flush()
    assert buf.pending == 0
    assert _stored(store, run_id, "loss") == [i / 10 for i in range(1000)]
    assert _stored(store, run_id, "batch") == [128]
    assert _stored(store, run_id, "note") == ["hello"]
    buf.flush()  # nothing new: writes nothing
    assert len(store.get_metric_chunks(run_id)) == 3
    buf.close()


def test_dtype_follows_the_values() -> None:
    rec = Recorder()
    buf = MetricBuffer(rec, flush_interval=60)
    buf.log_number("ints", 1, None)
    buf.log_number("ints", 2, None)
    buf.log_number("mixed", 1, None)
    buf.log_number("mixed", 2.5, None)
    buf.flush()
    dtypes = {c.name: c.dtype for b in rec.batches for c in b}
    assert dtypes == {"ints": "i", "mixed": "f"}
    assert rec.values("ints") == [1, 2]
    buf.close()


def test_step_must_be_used_for_every_value() -> None:
    rec = Recorder()
    buf = MetricBuffer(rec, flush_interval=60)
    buf.log_number("a", 1.0, 0)
    with pytest.raises(MetricValueError) as info:
        buf.log_number("a", 2.0, None)
    assert "'a'" in str(info.value)
    buf.log_number("b", 1.0, None)
    with pytest.raises(MetricValueError):
        buf.log_number("b", 2.0, 5)
    assert buf.pending == 2  # the rejected points were not buffered
    buf.flush()
    points = decode([c for b in rec.batches for c in b])
    assert [(p.step, p.value) for p in points["a"][1]] == [(0, 1.0)]
    assert [(p.step, p.value) for p in points["b"][1]] == [(0, 1.0)]
    buf.close()


def test_consecutive_json_points_share_a_chunk() -> None:
    rec = Recorder()
    buf = MetricBuffer(rec, flush_interval=60)
    for i in range(5):
        buf.log_json("row", "row", {"i": i})
    buf.log_json("s", "scalar", "x")
    buf.log_json("row", "row", {"i": 5})
    buf.flush()
    (batch,) = rec.batches
    assert [(c.name, c.count) for c in batch] == [("row", 5), ("s", 1), ("row", 1)]
    assert rec.values("row") == [{"i": i} for i in range(6)]
    buf.close()


def test_background_thread_writes_without_flush(store_run: tuple[SqlTrackingStore, str]) -> None:
    store, run_id = store_run
    buf = MetricBuffer(lambda c: store.log_metric_chunks(run_id, c), flush_interval=0.05)
    buf.log_number("x", 1.0, None)
    deadline = time.monotonic() + 5
    while not store.get_metric_chunks(run_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _stored(store, run_id, "x") == [1.0]
    buf.close()


def test_full_batch_wakes_the_writer_early() -> None:
    rec = Recorder()
    buf = MetricBuffer(rec, flush_interval=3600, batch_points=100)
    for i in range(100):
        buf.log_number("x", float(i), None)
    deadline = time.monotonic() + 5
    while not rec.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(rec.values("x")) == 100  # written long before the hour-long interval
    buf.close()


def test_back_pressure_bounds_pending_points() -> None:
    rec = Recorder(delay=0.002)
    buf = MetricBuffer(rec, capacity=1000, flush_interval=0.05)
    most = 0
    for i in range(50_000):
        buf.log_number("x", float(i), None)
        most = max(most, buf.pending)
    assert most <= 1000
    buf.flush()
    assert rec.values("x") == [float(i) for i in range(50_000)]
    assert rec.calls >= 50  # the writer really drained it many times along the way
    buf.close()


def test_concurrent_loggers_lose_nothing(store_run: tuple[SqlTrackingStore, str]) -> None:
    store, run_id = store_run
    buf = MetricBuffer(
        lambda c: store.log_metric_chunks(run_id, c), capacity=5000, flush_interval=0.01
    )

    def log(t: int) -> None:
        for i in range(5000):
            buf.log_number("shared", float(t * 10_000 + i), None)
            if i % 500 == 0:
                buf.log_json("text", "scalar", f"{t}-{i}")

    threads = [threading.Thread(target=log, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    buf.flush()
    assert sorted(_stored(store, run_id, "shared")) == sorted(  # type: ignore[type-var]
        float(t * 10_000 + i) for t in range(4) for i in range(5000)
    )
    assert len(_stored(store, run_id, "text")) == 40
    buf.close()


def test_transient_store_errors_are_retried_without_duplicates() -> None:
    rec = Recorder(fail_first=2)
    buf = MetricBuffer(rec, flush_interval=60)
    for i in range(10):
        buf.log_number("x", float(i), None)
    buf.flush()
    assert rec.calls == 3
    assert rec.values("x") == [float(i) for i in range(10)]
    buf.close()


@pytest.mark.parametrize("error", [RunFinishedError("done"), RunNotFound("gone")])
def test_final_errors_reach_flush(error: Exception) -> None:
    rec = Recorder(fail_first=1, error=error)
    buf = MetricBuffer(rec, flush_interval=60)
    buf.log_number("x", 1.0, None)
    with pytest.raises(type(error)):
        buf.flush()
    assert rec.calls == 1  # not retried forever
    buf.close()


def test_background_failure_is_reported_once(capsys: pytest.CaptureFixture[str]) -> None:
    rec = Recorder(fail_first=10**9, error=RunFinishedError("run is Completed"))
    buf = MetricBuffer(rec, flush_interval=0.01)
    buf.log_number("x", 1.0, None)
    deadline = time.monotonic() + 5
    while rec.calls < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    buf.log_number("x", 2.0, None)
    while rec.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.calls >= 2
    assert buf.pending == 0  # a finished run takes no more points: dropped, not kept forever
    buf.close()
    err = capsys.readouterr().err
    assert err.count("metrics could not be written") == 1 and "run is Completed" in err


def test_flush_all_flushes_live_buffers() -> None:
    recs = [Recorder(), Recorder()]
    bufs = [MetricBuffer(r, flush_interval=3600) for r in recs]
    for i, b in enumerate(bufs):
        b.log_number("x", float(i), None)
    flush_all()
    assert [r.values("x") for r in recs] == [[0.0], [1.0]]
    for b in bufs:
        b.close()


def test_close_flushes_and_stops_the_thread() -> None:
    rec = Recorder()
    buf = MetricBuffer(rec, flush_interval=0.01)
    buf.log_number("x", 1.0, None)
    thread = buf._thread
    buf.log_number("x", 2.0, None)
    buf.close()
    assert rec.values("x") == [1.0, 2.0]
    assert thread is not None
    thread.join(timeout=5)
    assert not thread.is_alive()


# -- durability (issue 11): a failed write keeps its points ----------------------------------------
class Gate:
    """A writer that fails with ``StoreError`` while ``down`` is set, blocks while ``held`` is
    clear, and otherwise keeps every batch (exactly what it was handed, in order)."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.held = threading.Event()
        self.held.set()
        self.entered = threading.Event()
        self.rec = Recorder()

    def __call__(self, chunks: Sequence[MetricChunk]) -> None:
        self.entered.set()
        self.held.wait()
        if self.down.is_set():
            with self.rec.lock:
                self.rec.calls += 1
            raise StoreError("database or disk is full")
        self.rec(chunks)


def test_failed_flush_keeps_the_points_and_the_next_flush_writes_them() -> None:
    gate = Gate()
    buf = MetricBuffer(gate, flush_interval=3600)
    for i in range(1000):
        buf.log_number("x", float(i), None)
    buf.flush()
    gate.down.set()
    for i in range(1000, 5000):
        buf.log_number("x", float(i), None)
        if i % 1000 == 0:
            buf.log_json("note", "scalar", f"n{i}")
    with pytest.raises(StoreError) as info:
        buf.flush(0.3)
    assert "4004 metric points" in str(info.value) and "flush() again" in str(info.value)
    assert buf.pending == 4004  # kept, not dropped
    gate.down.clear()
    buf.flush()
    assert buf.pending == 0
    assert gate.rec.values("x") == [float(i) for i in range(5000)]  # in order, none twice
    assert gate.rec.values("note") == [f"n{i}" for i in range(1000, 5000, 1000)]
    buf.close()


def test_writer_failing_n_times_then_succeeding_loses_and_duplicates_nothing() -> None:
    rec = Recorder(fail_first=5)
    buf = MetricBuffer(rec, flush_interval=0.001, batch_points=50)
    for i in range(2000):
        buf.log_number("a", float(i), None)
        buf.log_number("b", i, i)
    buf.flush()
    assert rec.calls > 5
    assert rec.values("a") == [float(i) for i in range(2000)]
    assert rec.values("b") == list(range(2000))
    buf.close()


def test_unexpected_writer_errors_keep_the_points_too() -> None:
    rec = Recorder(fail_first=3, error=OSError("No space left on device"))
    buf = MetricBuffer(rec, flush_interval=3600)
    buf.log_number("x", 1.0, None)
    buf.flush()
    assert rec.values("x") == [1.0]
    buf.close()


def test_flush_honours_its_timeout_while_a_write_hangs() -> None:
    gate = Gate()
    gate.held.clear()  # the write blocks, like a database lock held elsewhere
    buf = MetricBuffer(gate, flush_interval=0.01)
    buf.log_number("x", 1.0, None)
    assert gate.entered.wait(5)
    with pytest.raises(StoreError) as info:
        buf.flush(0.2)  # the old buffer waited for the writer's lock, for as long as it was held
    assert "still in progress" in str(info.value)
    buf.log_number("x", 2.0, None)
    gate.held.set()
    buf.flush()
    assert gate.rec.values("x") == [1.0, 2.0]
    buf.close()


def test_back_pressure_holds_the_bound_while_the_store_is_down() -> None:
    gate = Gate()
    gate.down.set()
    buf = MetricBuffer(gate, capacity=1000, batch_points=100, flush_interval=0.001)
    logged = 0
    blocked = threading.Event()

    def log() -> None:
        nonlocal logged
        for i in range(3000):
            buf.log_number("x", float(i), None)
            logged += 1
        blocked.set()

    t = threading.Thread(target=log, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while buf.pending < 1000 and time.monotonic() < deadline:
        time.sleep(0.01)
    calls = gate.rec.calls
    while gate.rec.calls < calls + 2 and time.monotonic() < deadline:  # more failed attempts
        time.sleep(0.01)
    assert gate.rec.calls >= calls + 2
    assert logged == 1000 and buf.pending == 1000 and not blocked.is_set()  # log() is blocked
    gate.down.clear()
    t.join(10)
    buf.flush()
    assert gate.rec.values("x") == [float(i) for i in range(3000)]
    buf.close()


@pytest.mark.parametrize("error", [RunFinishedError("done"), RunNotFound("gone")])
def test_permanent_refusals_drop_the_batch_and_reach_the_covering_flush(error: Exception) -> None:
    rec = Recorder(fail_first=1, error=error)
    buf = MetricBuffer(rec, flush_interval=3600)
    buf.log_number("x", 1.0, None)
    with pytest.raises(type(error)):
        buf.flush()
    assert buf.pending == 0
    buf.log_number("x", 2.0, None)
    buf.flush()  # later points are not blamed for the earlier refusal
    assert rec.values("x") == [2.0]
    buf.close()


def test_recovery_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    rec = Recorder(fail_first=2)
    buf = MetricBuffer(rec, flush_interval=3600)
    buf.log_number("x", 1.0, None)
    buf.flush()
    buf.close()
    err = capsys.readouterr().err
    assert "could not be written yet" in err and "1 points are kept" in err
    assert "reachable again" in err


def test_values_that_cannot_be_encoded_are_dropped_with_a_typed_error() -> None:
    rec = Recorder()
    buf = MetricBuffer(rec, flush_interval=3600)
    buf.log_number("x", 1.0, None)
    buf.log_json("bad", "scalar", object())  # the callers validate; this one slipped through
    buf.log_json("note", "scalar", "fine")
    with pytest.raises(MetricValueError, match="1 metric points could not be encoded"):
        buf.flush()
    assert buf.pending == 0
    buf.log_number("x", 2.0, None)
    buf.flush()
    assert rec.values("x") == [1.0, 2.0] and rec.values("note") == ["fine"]
    buf.close()


def test_a_forked_child_does_not_write_its_parents_points_again() -> None:
    """Data-loader workers and the like fork after logging: the parent's buffered points are the
    parent's to write; the child writes only what it logs itself (with fresh locks: one held by
    the parent's writer thread at the fork would never be released in the child)."""
    import os

    written: list[MetricChunk] = []
    buf = MetricBuffer(written.extend, flush_interval=60)
    buf.log_number("loss", 1.0, None)
    buf.log_number("loss", 2.0, None)  # still buffered at the fork
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's exit code carries the result
        code = 3
        try:
            buf.log_number("child", 7, None)
            buf.flush(timeout=20)
            code = 0 if [(c.name, c.count) for c in written] == [("child", 1)] else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    buf.flush()
    assert [p.value for p in decode(written)["loss"][1]] == [1.0, 2.0]
    assert set(decode(written)) == {"loss"}
