"""A fixed set of threads that run the user's synchronous ``run()`` off the event loop.

``size`` threads pull jobs from one queue, so at most ``size`` calls run at a time and the rest wait in
arrival order. It does the minimum per call (a queue put, a future, one ``call_soon_threadsafe``): about
half the overhead of ``anyio.to_thread.run_sync``, which matters when ``run()`` itself takes tens of
microseconds. Threads start on first use and are daemons (they die with the worker process). A call
whose caller stopped waiting (the run timeout) is skipped if it has not started, and counted as
stuck while it runs on.

Example::

    pool = RunThreads(1)
    result = await pool.call(script.run, '{"data": [1]}')
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any


class _Job:
    """One call: what to run, where to settle it, and how far it got (guarded by the pool's lock)."""

    __slots__ = ("abandoned", "arg", "finished", "func", "future", "loop", "started")

    def __init__(
        self,
        func: Callable[[Any], Any],
        arg: Any,
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.func = func
        self.arg = arg
        self.future = future
        self.loop = loop
        self.started = False
        self.finished = False
        self.abandoned = False


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class RunThreads:
    """``size`` worker threads executing one-argument calls for coroutines on an event loop.

    Exceptions raised by the call (including ``SystemExit``) are re-raised in the awaiting coroutine.
    When the awaiting coroutine is cancelled (a run timeout), a call that has not started yet is
    never started, and one that is running is *abandoned*: Python cannot stop a thread, so it keeps
    its thread until it returns. :attr:`stuck` counts those; when it reaches ``size`` no thread is
    left for new calls (:attr:`saturated`).

    Example::

        pool = RunThreads(2)
        await pool.call(len, "abc")  # 3
    """

    def __init__(self, size: int = 1) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._started = False
        self.stuck = 0

    @property
    def saturated(self) -> bool:
        """Whether every thread is busy with an abandoned call."""
        return self.stuck >= self.size

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            for index in range(self.size):
                threading.Thread(
                    target=self._work, name=f"trainyard-run-{index}", daemon=True
                ).start()
            self._started = True

    def _work(self) -> None:
        get = self._jobs.get
        lock = self._lock
        while True:
            job = get()
            with lock:
                if job.future.cancelled():  # its caller gave up while it waited: never run it
                    job.finished = True
                    continue
                job.started = True
            try:
                value, ok = job.func(job.arg), True
            except BaseException as err:  # handed to the awaiting coroutine
                value, ok = err, False
            with lock:
                job.finished = True
                if job.abandoned:
                    self.stuck -= 1
            try:
                job.loop.call_soon_threadsafe(_settle, job.future, ok, value)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                pass
            del job, value

    async def call(self, func: Callable[[Any], Any], arg: Any) -> Any:
        """Run ``func(arg)`` on one of the threads and return (or raise) its outcome."""
        if not self._started:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        job = _Job(func, arg, future, loop)
        self._jobs.put(job)
        try:
            return await future
        except asyncio.CancelledError:
            with self._lock:
                if job.started and not job.finished:
                    job.abandoned = True
                    self.stuck += 1
            raise
