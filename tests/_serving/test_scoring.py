"""Tests for the POST /score handler's pieces, fed real ASGI messages."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from trainyard._serving.scoring import (
    BodyTooLarge,
    ClientGone,
    describe,
    dumps,
    read_body,
)


def _receiver(messages: list[dict[str, Any]]) -> tuple[Any, list[int]]:
    calls = [0]

    async def receive() -> dict[str, Any]:
        calls[0] += 1
        return messages.pop(0)

    return receive, calls


def _scope(content_length: int | None = None) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {"type": "http", "headers": headers}


def test_dumps_is_compact_and_handles_numpy() -> None:
    assert dumps([7]) == b"[7]"
    assert dumps({"a": 1, "b": [1, 2]}) == b'{"a":1,"b":[1,2]}'
    assert dumps("seven") == b'"seven"'
    assert dumps(np.array([[1, 2]])) == b"[[1,2]]"
    assert dumps([np.int64(7), np.float32(0.5)]) == b"[7,0.5]"
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps(object())


def test_describe() -> None:
    assert describe(ValueError("x")) == "ValueError: x"
    assert describe(KeyError()) == "KeyError"


def test_read_body_joins_chunks() -> None:
    receive, _ = _receiver(
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"cd", "more_body": False},
        ]
    )
    assert asyncio.run(read_body(_scope(), receive, 4)) == b"abcd"


def test_declared_length_over_limit_is_refused_before_reading() -> None:
    receive, calls = _receiver([{"type": "http.request", "body": b"x" * 10}])
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body(_scope(content_length=10), receive, 9))
    assert calls[0] == 0


def test_streamed_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    chunks = [{"type": "http.request", "body": b"x" * 4, "more_body": True} for _ in range(100)]
    receive, calls = _receiver(chunks)
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body(_scope(), receive, 10))
    assert calls[0] == 3  # 4 + 4 + 4 > 10: stopped at the third chunk, 97 never read


def test_disconnect_while_reading() -> None:
    receive, _ = _receiver(
        [{"type": "http.request", "body": b"a", "more_body": True}, {"type": "http.disconnect"}]
    )
    with pytest.raises(ClientGone):
        asyncio.run(read_body(_scope(), receive, 100))


class _Script:
    """Just what the Scorer uses of a loaded scoring script."""

    def __init__(self, run: Any, run_is_async: bool = False) -> None:
        self.run = run
        self.run_is_async = run_is_async


def _ready(run: Any, run_is_async: bool = False) -> Any:
    from trainyard._serving.state import READY, ServiceState

    state = ServiceState()
    state.script = _Script(run, run_is_async)  # type: ignore[assignment]
    state.phase = READY
    return state


def test_a_body_that_never_completes_gets_408_and_closes_the_connection() -> None:
    from trainyard._serving.scoring import Scorer

    scorer = Scorer(
        _ready(lambda d: d), max_request_bytes=100, run_concurrency=1, body_timeout_s=0.05
    )
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()  # a client that sent its headers and then stalls
        raise AssertionError("unreachable")

    status, body, headers = asyncio.run(scorer.respond(_scope(), receive))
    assert status == 408 and b'"code":"BODY_TIMEOUT"' in body
    assert (b"connection", b"close") in headers


def test_run_timeout_gives_504_then_503_while_the_thread_is_held() -> None:
    import threading

    from trainyard._serving.scoring import Scorer

    release = threading.Event()

    def run(data: str) -> str:
        if data == "slow":
            release.wait(30)
        return data

    scorer = Scorer(_ready(run), max_request_bytes=100, run_concurrency=1, run_timeout_s=0.05)

    def body(text: bytes) -> Any:
        receive, _ = _receiver([{"type": "http.request", "body": text}])
        return receive

    async def main() -> None:
        status, payload, _ = await scorer.respond(_scope(), body(b"slow"))
        assert status == 504 and b'"code":"SCORING_TIMEOUT"' in payload
        status, payload, headers = await scorer.respond(_scope(), body(b"next"))
        assert status == 503 and b'"code":"SCORING_OVERLOADED"' in payload
        assert (b"retry-after", b"1") in headers
        release.set()
        while scorer.threads.stuck:
            await asyncio.sleep(0.01)
        assert await scorer.respond(_scope(), body(b"next")) == (200, b'"next"', [])

    asyncio.run(main())


def test_async_run_is_cancelled_at_the_timeout() -> None:
    from trainyard._serving.scoring import Scorer

    cancelled = []

    async def run(data: str) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(data)
            raise
        return data

    scorer = Scorer(
        _ready(run, run_is_async=True), max_request_bytes=100, run_concurrency=1, run_timeout_s=0.05
    )
    receive, _ = _receiver([{"type": "http.request", "body": b"x"}])
    status, _, _ = asyncio.run(scorer.respond(_scope(), receive))
    assert status == 504 and cancelled == ["x"]


def test_run_raising_timeout_error_itself_is_a_500_not_a_504() -> None:
    from trainyard._serving.scoring import Scorer

    def run(data: str) -> str:
        raise TimeoutError("the model's own backend timed out")

    scorer = Scorer(_ready(run), max_request_bytes=100, run_concurrency=1, run_timeout_s=30)
    receive, _ = _receiver([{"type": "http.request", "body": b"x"}])
    status, payload, _ = asyncio.run(scorer.respond(_scope(), receive))
    assert status == 500 and b"TimeoutError: the model" in payload
