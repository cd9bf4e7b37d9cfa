"""``POST /score`` as a bare ASGI handler: read the body (capped), call ``run()`` off the loop, reply.

This is the hot path, so it speaks ASGI messages directly (no request/response objects). The body is
counted while it streams in and refused with 413 as soon as it passes the limit (or at once when
``Content-Length`` already says so). ``run()`` goes to one of ``run_concurrency`` threads of this
worker; an ``async def run`` is awaited on the loop. The reply is ``json.dumps(result)`` with compact
separators, so ``[7]`` is sent as exactly ``[7]`` (aml-reference §11 quirk 6).

Deadlines (one timer per request, moved from one phase to the next):

* the whole body must arrive within ``body_timeout_s`` of the handler starting, else ``408
  BODY_TIMEOUT`` and the connection is closed (a client trickling its body holds nothing for long);
* ``run()`` must return within ``run_timeout_s`` (time waiting for a free thread included), else
  ``504 SCORING_TIMEOUT``. A synchronous call cannot be stopped: it keeps its thread until it
  returns, and while every thread is held so, requests get ``503 SCORING_OVERLOADED`` at once.

Each refusal is also one ``trainyard-serving:`` line on stderr.

Example::

    scorer = Scorer(state, max_request_bytes=10 * 1024 * 1024, run_concurrency=1)
    status, body, headers = await scorer.respond(scope, receive)
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from trainyard._serving.errors import (
    RequestBodyTimeout,
    ScoringOverloaded,
    ScoringTimeout,
    error_payload,
)
from trainyard._serving.loader import user_traceback
from trainyard._serving.state import ServiceState
from trainyard._serving.threads import RunThreads

JSON_MEDIA_TYPE = "application/json"
Headers = list[tuple[bytes, bytes]]

_RETRY_AFTER: Headers = [(b"retry-after", b"1")]
_CLOSE: Headers = [(b"connection", b"close")]
_NOT_READY = b'{"error":"Service is initializing"}'


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of ``value``; numpy arrays/scalars (anything with ``tolist``) become lists.

    Example::

        dumps([7])  # b'[7]'
    """
    return json.dumps(value, separators=(",", ":"), default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def error_body(message: str) -> bytes:
    """``{"error": message}`` as compact JSON bytes."""
    return dumps({"error": message})


def describe(exc: BaseException) -> str:
    """``"<ExceptionType>: <message>"`` (just the type when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BodyTooLarge(Exception):
    """The request body passed the limit (raised while reading, before it is all in memory)."""


class ClientGone(Exception):
    """The client disconnected before sending the whole body."""


async def read_body(scope: Any, receive: Any, limit: int) -> bytes:
    """The whole request body, or :class:`BodyTooLarge` once more than ``limit`` bytes are declared or
    received, or :class:`ClientGone` on disconnect.

    Example::

        body = await read_body(scope, receive, 10 * 1024 * 1024)
    """
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise BodyTooLarge
            break
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            total += len(chunk)
            if total > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


class Scorer:
    """The ``POST /score`` handler for one worker.

    :meth:`respond` returns ``(status, body, extra_headers)``; calling the instance as an ASGI app sends
    that as an ``application/json`` response. Synchronous ``run()`` calls go to a
    :class:`~trainyard._serving.threads.RunThreads` of ``run_concurrency`` threads.

    Example::

        scorer = Scorer(state, max_request_bytes=1024, run_concurrency=1)
        await scorer(scope, receive, send)
    """

    def __init__(
        self,
        state: ServiceState,
        *,
        max_request_bytes: int,
        run_concurrency: int,
        body_timeout_s: float | None = None,
        run_timeout_s: float | None = None,
    ) -> None:
        self.state = state
        self.limit = max_request_bytes
        self.threads = RunThreads(run_concurrency)
        self.body_timeout_s = body_timeout_s
        self.run_timeout_s = run_timeout_s
        self._too_large = error_body(f"Request body exceeds {max_request_bytes} bytes")
        self._body_timeout = error_payload(
            RequestBodyTimeout(
                f"The request body did not arrive within {body_timeout_s:g}s; send the whole "
                "body promptly (the connection is closed)."
                if body_timeout_s
                else "The request body did not arrive in time."
            )
        )
        self._run_timeout = error_payload(
            ScoringTimeout(
                f"run() did not return within {run_timeout_s:g}s (the service's run timeout); "
                "send smaller inputs or deploy with a longer scoring timeout."
                if run_timeout_s
                else "run() did not return in time."
            )
        )
        self._overloaded = error_payload(
            ScoringOverloaded(
                f"All {run_concurrency} run() thread(s) are still busy with calls that passed the "
                "run timeout; retry later, or restart the service if they never return."
            )
        )

    async def respond(self, scope: Any, receive: Any) -> tuple[int, bytes, Headers]:
        """Score one request: read, decode, ``run()``, serialise."""
        script = self.state.script
        if script is None:
            return 503, _NOT_READY, _RETRY_AFTER
        if self.threads.stuck and self.threads.saturated and not script.run_is_async:
            sys.stderr.write(
                "trainyard-serving: POST /score refused (503): every run() thread is held by a "
                "call that passed the run timeout\n"
            )
            return 503, self._overloaded, _RETRY_AFTER
        in_body = True
        deadline = asyncio.timeout(self.body_timeout_s)
        try:
            async with deadline:
                try:
                    body = await read_body(scope, receive, self.limit)
                except BodyTooLarge:
                    return 413, self._too_large, []
                except ClientGone:
                    return 400, error_body("Client disconnected"), []
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    return 400, error_body("Request body is not valid UTF-8"), []
                in_body = False
                if self.run_timeout_s is not None or self.body_timeout_s is not None:
                    deadline.reschedule(
                        None
                        if self.run_timeout_s is None
                        else asyncio.get_running_loop().time() + self.run_timeout_s
                    )
                try:
                    if script.run_is_async:
                        result = await script.run(text)
                    else:
                        result = await self.threads.call(script.run, text)
                    payload = dumps(result)
                except (Exception, SystemExit) as err:
                    sys.stderr.write(f"trainyard-serving: run() raised:\n{user_traceback(err)}")
                    return 500, error_body(describe(err)), []
        except TimeoutError:
            if not deadline.expired():  # pragma: no cover - run()'s own errors are caught above
                raise
            return self._timed_out(in_body)
        return 200, payload, []

    def _timed_out(self, in_body: bool) -> tuple[int, bytes, Headers]:
        if in_body:
            sys.stderr.write(
                f"trainyard-serving: POST /score refused (408): the body did not arrive within "
                f"{self.body_timeout_s:g}s; closing the connection\n"
            )
            return 408, self._body_timeout, _CLOSE
        sys.stderr.write(
            f"trainyard-serving: POST /score failed (504): run() did not return within "
            f"{self.run_timeout_s:g}s; a synchronous run() keeps its thread until it returns\n"
        )
        return 504, self._run_timeout, []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        status, payload, extra = await self.respond(scope, receive)
        headers: Headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode("ascii")),
        ]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
