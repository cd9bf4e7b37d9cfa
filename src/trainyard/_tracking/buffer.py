"""The logging hot path: a bounded in-process buffer drained by a background writer thread.

``log`` appends to per-metric ``array('d')`` columns under a lock (about 1 µs a call) and never
touches the database. One daemon thread does all the writing: every ``flush_interval`` seconds, or
sooner once ``batch_points`` are waiting, it moves what is buffered into its *in-flight batch* and
hands that batch to the writer as packed chunks.

Durability rules (issue 11):

* Points leave the buffer only once the writer returned. A write that raised changed nothing (the
  store contract: writes are transactional), so the batch is kept and written again, together with
  what was logged since, first in the same call: order per metric holds and no point is written twice.
* A store error (``StoreError``, anything unexpected) is retried with backoff, forever, by the thread.
  While it is down, kept plus buffered points are bounded by ``capacity``: ``log`` then blocks
  (back-pressure) until the store is back, rather than dropping points or growing without bound.
* A permanent refusal (the run finished or is gone, a user error) drops that batch: retrying cannot
  help. It is reported once on stderr and raised by the ``flush`` that covers those points.
* ``flush(timeout)`` never writes itself: it wakes the thread (cutting a retry's backoff short) and
  waits at most ``timeout`` seconds for everything logged before it to be stored. A write can take a
  long time (SQLite's ``busy_timeout``, the store's own lock retries), and waiting instead of writing
  is what keeps the timeout honest.

Buffers are flushed by ``flush()`` (``Run.complete``/``fail``/``flush``), at interpreter exit, and on
SIGTERM inside a submitted run or an interactive run's process (:func:`install_sigterm_flush`).
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
from trainyard.exceptions import (
    MetricValueError,
    NotFoundError,
    StoreError,
    TrainyardError,
    UserErrorException,
)

_time = time.time
#: How long an explicit flush (and the exit-time flush) waits for the store by default.
FLUSH_TIMEOUT_SECONDS = 60.0
#: Backoff between retries of a failed write: first delay, then doubled up to the cap.
RETRY_FIRST_DELAY_S = 0.05
RETRY_MAX_DELAY_S = 2.0
#: Refusals that a retry cannot fix (run finished or gone, a bad value): the batch is dropped.
PERMANENT_ERRORS: tuple[type[TrainyardError], ...] = (UserErrorException, NotFoundError)


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
_Taken = tuple[str, "array[float]", "array[float]", "array[int] | None", bool, "str | None"]
_Other = tuple[str, str, Any, "int | None", float, "str | None"]


def _fresh(err: BaseException) -> BaseException:
    """A new instance of a trainyard error (one instance raised in many threads would collect
    everyone's traceback frames); other exceptions are returned as they are."""
    if isinstance(err, TrainyardError):
        with contextlib.suppress(TypeError):  # a subclass with its own signature: reuse it
            return type(err)(err.message, **err.details)
    return err


class MetricBuffer:
    """Buffer for one run in this process. Thread-safe; see the module docstring for durability.

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
        #: Notified whenever points are stored or dropped, or a write failed (flush, back-pressure).
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()  # hot path: a batch is full
        self._retry = threading.Event()  # flush/close: write now, even in a retry's backoff
        self._series: dict[str, _Series] = {}
        self._other: list[_Other] = []
        # Counters (lock held): points in the columns, points in the in-flight batch, points stored
        # or dropped since the start. The hot path compares ``_buffered`` with ``_threshold`` before
        # appending: one less than min(batch, room left beside the in-flight batch), so that a
        # single comparison both wakes the writer as the batch fills and stops at the capacity.
        self._buffered = 0
        self._inflight_n = 0
        self._resolved = 0
        self._threshold = self._batch - 1
        # Writer thread only: the chunks of the in-flight batch.
        self._inflight: list[MetricChunk] = []
        self._last_error: BaseException | None = None
        self._dropped_at = 0  # value of _resolved just after the latest dropped batch
        self._dropped_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._reported_permanent = False
        self._outage_reported = False
        _LIVE.add(self)

    def _restart_after_fork(self) -> None:
        """Empty, with fresh locks and no writer (see :func:`_forget_after_fork`)."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._retry = threading.Event()
        self._series = {}
        self._other = []
        self._buffered = self._inflight_n = self._resolved = 0
        self._threshold = self._batch - 1
        self._inflight = []
        self._last_error = self._dropped_error = None
        self._dropped_at = 0
        self._thread = None

    # -- hot path -----------------------------------------------------------------------------
    def log_number(
        self,
        name: str,
        value: float,
        step: int | None,
        description: str | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Append one numeric point (the caller has validated name and value); ``timestamp``:
        seconds since the epoch, now by default."""
        with self._lock:
            if self._buffered >= self._threshold:
                self._backpressure()
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
            s.ts.append(_time() if timestamp is None else timestamp)
            if s.steps is not None:
                s.steps.append(step)  # type: ignore[arg-type]
            if s.all_ints and type(value) is not int:
                s.all_ints = False
            self._buffered += 1
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
            if self._buffered >= self._threshold:
                self._backpressure()
            self._other.append((name, kind, value, step, _time(), description))
            self._buffered += 1
        if self._thread is None:
            self._start()

    def _new_series(self, name: str, stepped: bool, description: str | None) -> _Series:
        s = _Series(stepped, description)
        self._series[name] = s
        return s

    def _backpressure(self) -> None:
        # Lock held, before appending: wake the writer, and wait while buffered plus in-flight
        # points fill the capacity (checking before the append keeps the bound exact with many
        # logging threads). A closed buffer has no writer left to wait for.
        if not self._wake.is_set():
            self._wake.set()
        while self._buffered + self._inflight_n >= self._capacity and not self._closed:
            self._changed.wait(1.0)

    # -- writer thread ------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            t = threading.Thread(
                target=self._loop, name=f"trainyard-metrics{self._label}", daemon=True
            )
            self._thread = t
        t.start()

    def _loop(self) -> None:
        delay = 0.0
        while not self._closed:
            if delay:
                self._retry.wait(delay)
            else:
                self._wake.wait(self._interval)
                self._wake.clear()
            if self._closed:
                return
            try:
                ok = self._attempt()
            except Exception as err:  # a bug here must not kill the thread and strand the points
                ok = self._failed(err)
            delay = 0.0 if ok else min(max(delay * 2, RETRY_FIRST_DELAY_S), RETRY_MAX_DELAY_S)

    def _attempt(self) -> bool:
        """Write the in-flight batch plus everything buffered, in one call; whether it went well
        (or was dropped for good) as opposed to failing in a way worth retrying."""
        self._retry.clear()
        taken, other = self._take()
        if taken or other:
            chunks, bad, err = _chunks(taken, other)
            self._inflight.extend(chunks)
            if err is not None:
                self._drop_unencodable(bad, err)
        if not self._inflight:
            return True
        try:
            self._writer(self._inflight)
        except Exception as err:
            return self._failed(err)
        self._settle(stored=True)
        return True

    def _take(self) -> tuple[list[_Taken], list[_Other]]:
        """Swap the columns out (lock held only for the swap; chunks are packed outside it)."""
        taken: list[_Taken] = []
        with self._lock:
            if not self._buffered:
                return taken, []
            for name, s in self._series.items():
                n = len(s.vals)
                if not n:
                    continue
                if len(s.ts) != n or (s.steps is not None and len(s.steps) != n):
                    # A signal can interrupt log() between two appends (SIGTERM raises SystemExit
                    # there): keep only the complete points.
                    n = min(n, len(s.ts), len(s.steps) if s.steps is not None else n)
                    del s.vals[n:], s.ts[n:]
                    if s.steps is not None:
                        del s.steps[n:]
                if n:
                    taken.append((name, s.vals, s.ts, s.steps, s.all_ints, s.description))
                s.vals, s.ts = array("d"), array("d")
                s.steps = array("q") if s.stepped else None
                s.all_ints = True
            other, self._other = self._other, []
            moved = sum(len(t[1]) for t in taken) + len(other)
            # Points lost to an interrupted append were counted by log(): forget them here.
            self._buffered = 0
            self._inflight_n += moved
            self._threshold = max(0, min(self._batch, self._capacity - self._inflight_n) - 1)
        return taken, other

    def _settle(self, *, stored: bool, error: BaseException | None = None) -> None:
        """The in-flight batch is done with: stored, or dropped because of ``error``."""
        recovered = False
        with self._lock:
            self._resolved += self._inflight_n
            self._inflight_n = 0
            self._threshold = self._batch - 1
            if stored:
                recovered = self._last_error is not None and self._outage_reported
                self._last_error = None
            else:
                self._dropped_at, self._dropped_error = self._resolved, error
            self._changed.notify_all()
        self._inflight = []
        if recovered:
            self._outage_reported = False
            print("trainyard: metrics store reachable again; kept points written", file=sys.stderr)

    def _drop_unencodable(self, count: int, err: BaseException) -> None:
        typed = MetricValueError(
            f"{count} metric points could not be encoded ({type(err).__name__}: {err}) and were "
            "dropped; log numbers, strings, booleans, lists or dicts of those."
        )
        with self._lock:
            self._inflight_n -= count
            self._resolved += count
            self._dropped_at, self._dropped_error = self._resolved, typed
            self._threshold = max(0, min(self._batch, self._capacity - self._inflight_n) - 1)
            self._changed.notify_all()
        print(f"trainyard: {typed}", file=sys.stderr)

    def _failed(self, err: BaseException) -> bool:
        if isinstance(err, PERMANENT_ERRORS):
            count = self._inflight_n
            self._settle(stored=False, error=err)
            if not self._reported_permanent:
                self._reported_permanent = True
                print(
                    f"trainyard: metrics could not be written: {err} ({count} points dropped)",
                    file=sys.stderr,
                )
            return True
        with self._lock:
            self._last_error = err
            count = self._inflight_n
            self._changed.notify_all()
        if not self._outage_reported:
            self._outage_reported = True
            print(
                f"trainyard: metrics could not be written yet: {err}; {count} points are kept "
                "and retried in the background",
                file=sys.stderr,
            )
        return False

    # -- flush / close -------------------------------------------------------------------------
    def flush(self, timeout: float = FLUSH_TIMEOUT_SECONDS) -> None:
        """Wait until everything logged so far is stored, at most ``timeout`` seconds.

        Raises :class:`~trainyard.exceptions.StoreError` when the store is still failing (or the
        write still running) at the deadline; the points stay buffered and the next flush, or the
        background thread, writes them. Raises the store's own error (``RunFinishedError``,
        ``RunNotFound`` …) when it refused some of these points for good.

        Example::

            buf.flush(timeout=10)
        """
        with self._lock:
            start = self._resolved
            target = start + self._buffered + self._inflight_n
            if target == start:
                return
        thread = self._thread
        if thread is None or not thread.is_alive():  # never started, or lost in a fork
            self._start()
        self._wake.set()
        self._retry.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._resolved < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    raise self._not_stored(target - self._resolved, timeout, self._last_error)
                self._changed.wait(remaining)
            dropped = self._dropped_error if self._dropped_at > start else None
        if dropped is not None:
            raise _fresh(dropped) from dropped

    def _not_stored(self, missing: int, timeout: float, cause: BaseException | None) -> StoreError:
        why = f": {cause}" if cause is not None else " (a write is still in progress)"
        err = StoreError(
            f"{missing} metric points{self._label and ' of run ' + self._label[1:]} are not stored "
            f"after {timeout:g}s{why}. They are kept in memory and retried in the background; "
            "fix the store (space, connectivity) and call flush() again.",
            pending=missing,
            timeout_s=timeout,
        )
        err.__cause__ = cause
        return err

    def close(self, timeout: float = FLUSH_TIMEOUT_SECONDS) -> None:
        """Flush (see :meth:`flush`), then stop the writer thread whatever the outcome."""
        try:
            self.flush(timeout)
        finally:
            with self._lock:
                self._closed = True
                self._changed.notify_all()
            self._wake.set()
            self._retry.set()
            _LIVE.discard(self)

    @property
    def pending(self) -> int:
        """Points logged and not yet stored (buffered, or in a write that has not succeeded)."""
        return self._buffered + self._inflight_n


def _chunks(
    taken: list[_Taken], other: list[_Other]
) -> tuple[list[MetricChunk], int, Exception | None]:
    """The chunks, plus how many points could not be encoded and why (those are left out: values
    that cannot be encoded can never be stored, and must not hold back the others)."""
    chunks = [numeric_chunk(*t) for t in taken]
    bad, error = 0, None
    # Group consecutive JSON points of the same (name, kind) into one chunk each.
    i = 0
    while i < len(other):
        name, kind, _, _, _, desc = other[i]
        j = i
        while j < len(other) and other[j][0] == name and other[j][1] == kind:
            j += 1
        try:
            chunks.append(json_chunk(name, kind, [(o[2], o[3], o[4]) for o in other[i:j]], desc))
        except (TypeError, ValueError) as err:
            bad, error = bad + j - i, err
        i = j
    return chunks, bad, error


_LIVE: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()


def flush_all() -> None:
    """Flush every live buffer of this process (atexit, SIGTERM)."""
    for buf in list(_LIVE):
        with contextlib.suppress(Exception):
            buf.flush()


atexit.register(flush_all)


def _forget_after_fork() -> None:
    """In a forked child: the points buffered before the fork are the parent's to write (writing
    them here too would store them twice), and a lock another thread held at the fork would never
    be released — every buffer starts over, empty, with fresh locks and no writer thread."""
    for buf in list(_LIVE):
        buf._restart_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)

_sigterm_installed = False
_terminated_by: int | None = None
#: Called with the signal number after the exit-time flush of a SIGTERM, before the process dies
#: of it (interactive runs record how they ended there).
_termination_hooks: list[Callable[[int], None]] = []


def terminating_signal() -> int | None:
    """The signal (SIGTERM) this process is ending of, once :func:`install_sigterm_flush`'s handler
    ran; ``None`` otherwise."""
    return _terminated_by


def on_termination(hook: Callable[[int], None]) -> None:
    """Run ``hook(signum)`` when this process ends of a SIGTERM caught by the flush handler."""
    if hook not in _termination_hooks:
        _termination_hooks.append(hook)


def _die_of_sigterm() -> None:
    flush_all()
    for hook in list(_termination_hooks):
        try:
            hook(signal.SIGTERM)
        except Exception as err:
            print(f"trainyard: at SIGTERM: {type(err).__name__}: {err}", file=sys.stderr)
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
        global _terminated_by
        _terminated_by = signum
        signal.signal(
            signal.SIGTERM, signal.SIG_IGN
        )  # a second SIGTERM must not interrupt the flush
        atexit.register(_die_of_sigterm)  # runs first (atexit is LIFO)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _handler)
    _sigterm_installed = True
