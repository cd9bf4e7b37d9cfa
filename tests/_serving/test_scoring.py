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
