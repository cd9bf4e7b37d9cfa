"""The logging hot path: a bounded in-process buffer drained by a background writer thread.

``log`` appends to per-metric ``array('d')`` columns under a lock (well under 2 µs a call) and never
touches the database. A daemon thread writes everything buffered as packed chunks every
``flush_interval`` seconds, or sooner once ``batch_points`` are waiting. When ``capacity`` points are
waiting, ``log`` blocks until the writer catches up (back-pressure instead of unbounded memory).

Buffers are flushed by ``flush()`` (``Run.complete``/``fail``/``flush``), at interpreter exit, and on
SIGTERM inside a submitted run (:func:`install_sigterm_flush`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
import weakref
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from trainyard._store.entities import MetricChunk
from trainyard._tracking.codec import json_chunk, numeric_chunk
from trainyard.exceptions import MetricValueError, RunFinishedError, RunNotFound, TrainyardError

_time = time.time
#: How long an explicit flush (and the exit-time flush) retries an unavailable store.
FLUSH_TIMEOUT_SECONDS = 60.0


class _Series:
    """Buffered numeric points of one metric name (columns swapped out on each drain)."""

    __slots__ = ("all_ints", "description", "stepped", "steps", "ts", "vals")

    def __init__(self, stepped: bool, description: str | None) -> None:
        self.vals: array[float] = array("d")
        self.ts: array[float] = array("d")
        self.steps: array[int] | None = array("q") if stepped else None
        self.stepped = stepped
        self.all_ints = True
        self.description = description


Writer = Callable[[Sequence[MetricChunk]], None]


class MetricBuffer:
    """Buffer for one run in this process. Thread-safe.

    Example::

        buf = MetricBuffer(lambda chunks: store.log_metric_chunks(run_id, chunks))
        buf.log_number("loss", 0.5, None)
        buf.flush()
    """

    def __init__(
        self,
        writer: Writer,
        *,
        capacity: int = 1_000_000,
        flush_interval: float = 0.25,
        batch_points: int = 100_000,
        label: str = "",
    ) -> None:
        self._writer = writer
        self._capacity = capacity
        self._interval = flush_interval
        self._batch = min(batch_points, capacity)
        self._label = label
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._io_lock = threading.Lock()
        self._wake = threading.Event()
        self._series: dict[str, _Series] = {}
        self._other: list[tuple[str, str, Any, int | None, float, str | None]] = []
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failed: BaseException | None = None
        _LIVE.add(self)

    # -- hot path -----------------------------------------------------------------------------
    def log_number(
        self, name: str, value: float, step: int | None, description: str | None = None
    ) -> None:
        """Append one numeric point (the caller has validated name and value)."""
        with self._lock:
            s = self._series.get(name)
            if s is None:
                s = self._new_series(name, step is not None, description)
            elif (step is not None) != s.stepped:
                raise MetricValueError(
                    f"Metric {name!r} was logged {'with' if s.stepped else 'without'} step; "
                    "if step is used for a name it must be used for every value of that name.",
                    metric=name,
                )
            s.vals.append(value)
            s.ts.append(_time())
            if s.steps is not None:
                s.steps.append(step)  # type: ignore[arg-type]
            if s.all_ints and type(value) is not int:
                s.all_ints = False
            self._pending += 1
            if self._pending >= self._batch:
                self._backpressure()
        if self._thread is None:
            self._start()

    def log_json(
        self,
        name: str,
        kind: str,
        value: Any,
        step: int | None = None,
        description: str | None = None,
    ) -> None:
        """Append one JSON-valued point (strings, booleans, lists, rows, tables, images …)."""
        with self._lock:
            self._other.append((name, kind, value, step, _time(), description))
            self._pending += 1
            if self._pending >= self._batch:
                self._backpressure()
        if self._thread is None:
            self._start()

    def _new_series(self, name: str, stepped: bool, description: str | None) -> _Series:
        s = _Series(stepped, description)
        self._series[name] = s
        return s

    def _backpressure(self) -> None:
        # Called with the lock held: wake the writer, and block while the buffer is full.
        self._wake.set()
        while self._pending >= self._capacity and not self._closed and self._failed is None:
            self._drained.wait(1.0)

    # -- writer -------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            t = threading.Thread(
                target=self._loop, name=f"trainyard-metrics{self._label}", daemon=True
            )
            self._thread = t
        t.start()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._write_pending()
            except Exception as err:  # keep logging usable; report once
                self._report(err)

    def _take(self) -> list[MetricChunk]:
        """Swap out everything buffered (lock held) and build chunks."""
        chunks: list[MetricChunk] = []
        with self._lock:
            for name, s in self._series.items():
                if not s.vals:
                    continue
                n = len(s.vals)
                if len(s.ts) != n or (s.steps is not None and len(s.steps) != n):
                    # A signal can interrupt log() between two appends (SIGTERM raises SystemExit
                    # there): keep only the complete points.
                    n = min(n, len(s.ts), len(s.steps) if s.steps is not None else n)
                    del s.vals[n:], s.ts[n:]
                    if s.steps is not None:
                        del s.steps[n:]
                if n:
                    chunks.append(
                        numeric_chunk(name, s.vals, s.ts, s.steps, s.all_ints, s.description)
                    )
                s.vals, s.ts = array("d"), array("d")
                s.steps = array("q") if s.stepped else None
                s.all_ints = True
            other, self._other = self._other, []
            self._pending = 0
            self._drained.notify_all()
        # Group consecutive JSON points of the same (name, kind) into one chunk each.
        i = 0
        while i < len(other):
            name, kind, _, _, _, desc = other[i]
            j = i
            while j < len(other) and other[j][0] == name and other[j][1] == kind:
                j += 1
            chunks.append(json_chunk(name, kind, [(o[2], o[3], o[4]) for o in other[i:j]], desc))
            i = j
        return chunks

    def _write_pending(self, give_up_after: float | None = None) -> None:
        """Write what is buffered; transient store errors are retried (by the background thread
        forever, by an explicit flush for ``give_up_after`` seconds, then raised)."""
        with self._io_lock:
            chunks = self._take()
            if not chunks:
                return
            delay = 0.05
            deadline = None if give_up_after is None else time.monotonic() + give_up_after
            while True:
                try:
                    self._writer(chunks)
                    return
                except (RunFinishedError, RunNotFound):
                    raise
                except TrainyardError:
                    if self._closed or (deadline is not None and time.monotonic() >= deadline):
                        raise
                    time.sleep(delay)  # transient store error: keep the points, retry
                    delay = min(delay * 2, 2.0)

    def _report(self, err: BaseException) -> None:
        if self._failed is None:
            self._failed = err
            print(f"trainyard: metrics could not be written: {err}", file=sys.stderr)

    def flush(self, give_up_after: float = FLUSH_TIMEOUT_SECONDS) -> None:
        """Write everything logged so far, synchronously; raises the store's error if it still
        fails after ``give_up_after`` seconds of retries."""
        self._write_pending(give_up_after)

    def close(self) -> None:
        """Flush and stop the writer thread."""
        try:
            self.flush()
        finally:
            self._closed = True
            self._wake.set()
            with self._lock:
                self._drained.notify_all()
            _LIVE.discard(self)

    @property
    def pending(self) -> int:
        """Points buffered and not yet handed to the writer."""
        return self._pending


_LIVE: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()


def flush_all() -> None:
    """Flush every live buffer of this process (atexit, SIGTERM)."""
    for buf in list(_LIVE):
        with contextlib.suppress(Exception):
            buf.flush()


atexit.register(flush_all)

_sigterm_installed = False


def _die_of_sigterm() -> None:
    flush_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def install_sigterm_flush() -> None:
    """On SIGTERM, flush buffered metrics, then die of SIGTERM as the process would have.

    The handler itself only raises ``SystemExit``: flushing inside it could deadlock, because the
    signal may arrive while the main thread holds a buffer's lock in the middle of ``log``. The
    exception unwinds the user's code (releasing that lock), and an exit hook flushes every buffer
    and re-raises SIGTERM so the exit status still says "killed by SIGTERM". Installed only from the
    main thread and only over the default handler, so user handlers win.
    """
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def _handler(signum: int, _frame: Any) -> None:
        signal.signal(
            signal.SIGTERM, signal.SIG_IGN
        )  # a second SIGTERM must not interrupt the flush
        atexit.register(_die_of_sigterm)  # runs first (atexit is LIFO)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _handler)
    _sigterm_installed = True
