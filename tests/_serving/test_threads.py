"""Tests for the run() thread pool."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from trainyard._serving.threads import RunThreads


def test_results_and_exceptions_come_back() -> None:
    pool = RunThreads(1)

    def boom(x: object) -> object:
        raise ValueError(f"bad {x}")

    async def main() -> None:
        assert await pool.call(len, "abcd") == 4
        with pytest.raises(ValueError, match="bad 3"):
            await pool.call(boom, 3)
        with pytest.raises(SystemExit):
            await pool.call(lambda x: exit(x), 2)
        assert await pool.call(str.upper, "still works") == "STILL WORKS"

    asyncio.run(main())


def test_runs_off_the_event_loop_thread() -> None:
    pool = RunThreads(1)

    async def main() -> None:
        name = await pool.call(lambda _: threading.current_thread().name, None)
        assert name == "trainyard-run-0"

    asyncio.run(main())


@pytest.mark.parametrize("size", [1, 3])
def test_at_most_size_calls_in_flight(size: int) -> None:
    pool = RunThreads(size)
    lock = threading.Lock()
    active = 0
    peak = 0

    def work(_: object) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1

    async def main() -> None:
        await asyncio.gather(*(pool.call(work, i) for i in range(12)))

    asyncio.run(main())
    assert peak == size


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RunThreads(0)


def test_a_call_whose_caller_gave_up_before_it_started_never_runs() -> None:
    pool = RunThreads(1)
    release = threading.Event()
    ran: list[str] = []

    def block(_: object) -> None:
        release.wait(30)

    async def main() -> None:
        first = asyncio.ensure_future(pool.call(block, None))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(pool.call(ran.append, "second"))
        await asyncio.sleep(0)
        second.cancel()  # still queued behind the blocked call
        with pytest.raises(asyncio.CancelledError):
            await second
        release.set()
        await first
        assert await pool.call(ran.append, "third") is None

    asyncio.run(main())
    assert ran == ["third"]


def test_abandoned_running_calls_count_as_stuck_until_they_return() -> None:
    pool = RunThreads(2)
    started = threading.Event()
    release = threading.Event()

    def block(_: object) -> str:
        started.set()
        release.wait(30)
        return "late"

    async def main() -> None:
        task = asyncio.ensure_future(pool.call(block, None))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.stuck == 1 and not pool.saturated
        release.set()
        assert await pool.call(str.upper, "ok") == "OK"  # the other thread serves meanwhile
        while pool.stuck:
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert pool.stuck == 0
