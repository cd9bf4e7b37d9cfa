"""A fixed set of threads that run the user's synchronous ``run()`` off the event loop.

``size`` threads pull jobs from one queue, so at most ``size`` calls run at a time and the rest wait in
arrival order. It does the minimum per call (a queue put, a future, one ``call_soon_threadsafe``): about
half the overhead of ``anyio.to_thread.run_sync``, which matters when ``run()`` itself takes tens of
microseconds. Threads start on first use and are daemons (they die with the worker process).

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

_Job = tuple[Callable[[Any], Any], Any, "asyncio.Future[Any]", asyncio.AbstractEventLoop]


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
        while True:
            func, arg, future, loop = get()
            try:
                value, ok = func(arg), True
            except BaseException as err:  # handed to the awaiting coroutine
                value, ok = err, False
            try:
                loop.call_soon_threadsafe(_settle, future, ok, value)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                pass
            del func, arg, future, loop, value

    async def call(self, func: Callable[[Any], Any], arg: Any) -> Any:
        """Run ``func(arg)`` on one of the threads and return (or raise) its outcome."""
        if not self._started:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((func, arg, future, loop))
        return await future
