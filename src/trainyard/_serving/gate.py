"""The outermost ASGI layer: key check (deny by default), the ``POST /score`` fast path, the access line.

With a key store, every request except ``GET``/``HEAD`` of ``/`` and ``/ready`` needs
``Authorization: Bearer <key>``; anything else gets ``401 {"error":"Unauthorized"}`` and nothing more.
``POST /score`` goes straight to the :class:`~trainyard._serving.scoring.Scorer` (skipping the
framework's routing, which costs more than the rest of the request); everything else goes to the app.
One line per request is written to stdout: ``<UTC time> <METHOD> <path> <status> <ms>ms``.

Example::

    app.add_middleware(GateMiddleware, keys=KeyStore([hash_key(k)]), scorer=scorer)
"""

from __future__ import annotations

import sys
import time
from typing import Any

from trainyard._serving.auth import KeyStore

_PUBLIC_PATHS = frozenset({"/", "/ready"})
_PUBLIC_METHODS = frozenset({"GET", "HEAD"})
_UNAUTHORISED_BODY = b'{"error":"Unauthorized"}'
_UNAUTHORISED_START = {
    "type": "http.response.start",
    "status": 401,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_UNAUTHORISED_BODY)).encode("ascii")),
        (b"www-authenticate", b"Bearer"),
    ],
}
_UNAUTHORISED_END = {"type": "http.response.body", "body": _UNAUTHORISED_BODY}


class _AccessClock:
    """A second-resolution UTC timestamp, formatted once per second rather than once per request."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self._text


class GateMiddleware:
    """Pure ASGI middleware (see the module docstring).

    ``scorer`` is any ASGI callable that handles ``POST /score``; ``None`` leaves that path to the app.

    Example::

        GateMiddleware(app, keys=None, scorer=Scorer(state, max_request_bytes=1024, run_concurrency=1))
    """

    def __init__(self, app: Any, keys: KeyStore | None = None, scorer: Any = None) -> None:
        self.app = app
        self.keys = keys
        self.scorer = scorer
        self._clock = _AccessClock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method = scope["method"]
        path = scope["path"]
        try:
            if self.keys is not None and not self._allowed(scope, method, path):
                status = 401
                await send(_UNAUTHORISED_START)
                await send(_UNAUTHORISED_END)
            elif path == "/score" and method == "POST" and self.scorer is not None:
                await self.scorer(scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            sys.stdout.write(f"{self._clock.now()} {method} {path} {status} {elapsed_ms:.2f}ms\n")

    def _allowed(self, scope: Any, method: str, path: str) -> bool:
        if path in _PUBLIC_PATHS and method in _PUBLIC_METHODS:
            return True
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        assert self.keys is not None
        return self.keys.check_authorization(header)
