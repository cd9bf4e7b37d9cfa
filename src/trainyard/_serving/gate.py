"""The outermost ASGI layer: Host/Origin checks, key check (deny by default), the ``POST /score`` fast
path, the access line.

In order, for every HTTP request:

1. ``Host`` must be accepted by the :class:`~trainyard._serving.hosts.HostPolicy` (loopback, the bind
   address, ``allowed_hosts``), else ``403 HOST_NOT_ALLOWED``: this stops DNS rebinding.
2. An ``Origin`` header must be the service's own origin or an allowed one, else
   ``403 ORIGIN_NOT_ALLOWED``: a page elsewhere cannot make a browser call ``run()``. For allowed
   cross-origin callers, CORS preflights (``OPTIONS``) are answered here and responses carry
   ``Access-Control-Allow-Origin``.
3. With a key store, every request except ``GET``/``HEAD`` of ``/`` and ``/ready`` needs
   ``Authorization: Bearer <key>``, else ``401 {"error":"Unauthorized"}``.
4. ``POST /score`` goes straight to the :class:`~trainyard._serving.scoring.Scorer` (skipping the
   framework's routing, which costs more than the rest of the request); everything else goes to the
   app.

One line per request is written to stdout: ``<UTC time> <METHOD> <path> <status> <ms>ms``. The path
is the decoded one, so a ``%0a`` in a URL would end the line early and let a client forge the next
one: control characters (and spaces) are escaped (``\\x0a``, ``%20``) and long paths cut.

Example::

    app.add_middleware(GateMiddleware, keys=KeyStore([hash_key(k)]), scorer=scorer,
                       hosts=HostPolicy("127.0.0.1"))
"""

from __future__ import annotations

import sys
import time
from typing import Any

from trainyard._serving.auth import KeyStore
from trainyard._serving.errors import HostNotAllowed, OriginNotAllowed, error_payload
from trainyard._serving.hosts import HostPolicy

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
_MAX_LOGGED_CHARS = 1000
_CORS_METHODS = b"GET, HEAD, POST, OPTIONS"
_CORS_HEADERS = b"authorization, content-type"


def safe_for_log(text: str) -> str:
    """``text`` as one log field: control characters escaped (``\\x0a``), spaces as ``%20``,
    backslashes doubled, at most 1,000 characters.

    Example::

        safe_for_log("/a%0aforged".replace("%0a", chr(10)))   # '/a\\x0aforged'
    """
    if text.isprintable() and " " not in text and "\\" not in text:
        if len(text) <= _MAX_LOGGED_CHARS:
            return text
        return text[:_MAX_LOGGED_CHARS] + "..."
    out = []
    for ch in text[:_MAX_LOGGED_CHARS]:
        if ch == " ":
            out.append("%20")
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    if len(text) > _MAX_LOGGED_CHARS:
        out.append("...")
    return "".join(out)


def _refusal(status: int, body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"vary", b"origin"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


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
    ``hosts`` is the Host/Origin policy; ``None`` means a loopback-only server's default policy.

    Example::

        GateMiddleware(app, keys=None, scorer=Scorer(state, max_request_bytes=1024, run_concurrency=1))
    """

    def __init__(
        self,
        app: Any,
        keys: KeyStore | None = None,
        scorer: Any = None,
        hosts: HostPolicy | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.scorer = scorer
        self.hosts = hosts if hosts is not None else HostPolicy("127.0.0.1")
        self._clock = _AccessClock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        method = scope["method"]
        path = scope["path"]
        host = origin = authorization = None
        for name, value in scope["headers"]:
            if name == b"host":
                # Two different Host headers: refuse (b"\x00" never passes) rather than pick one.
                host = b"\x00" if host is not None and value != host else value
            elif name == b"origin":
                origin = value
            elif name == b"authorization":
                authorization = value

        async def send_and_note(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            hosts = self.hosts
            if host is not None and not hosts.host_allowed(host):
                status = 403
                await self._refuse_host(send, host)
            elif origin is not None and not hosts.origin_allowed(origin, host):
                status = 403
                await self._refuse_origin(send, origin)
            elif origin is not None and not hosts.same_origin(origin, host):
                status = await self._cross_origin(scope, receive, send, origin, authorization)
            elif self.keys is not None and not self._allowed(method, path, authorization):
                status = 401
                await send(_UNAUTHORISED_START)
                await send(_UNAUTHORISED_END)
            elif path == "/score" and method == "POST" and self.scorer is not None:
                await self.scorer(scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            sys.stdout.write(
                f"{self._clock.now()} {safe_for_log(method)} {safe_for_log(path)} {status} "
                f"{elapsed_ms:.2f}ms\n"
            )

    def _allowed(self, method: str, path: str, authorization: bytes | None) -> bool:
        if path in _PUBLIC_PATHS and method in _PUBLIC_METHODS:
            return True
        assert self.keys is not None
        return self.keys.check_authorization(authorization)

    async def _refuse_host(self, send: Any, host: bytes) -> None:
        shown = safe_for_log(host.decode("latin-1"))
        err = HostNotAllowed(
            f"Host {shown!r} is not allowed: this service answers only to loopback names, its "
            "bind address and its allowed hosts. Call it by one of those, or start it with "
            "--allowed-host NAME."
        )
        sys.stderr.write(f"trainyard-serving: refused Host {shown!r} (403 {err.code})\n")
        for message in _refusal(403, error_payload(err)):
            await send(message)

    async def _refuse_origin(self, send: Any, origin: bytes) -> None:
        shown = safe_for_log(origin.decode("latin-1"))
        err = OriginNotAllowed(
            f"Origin {shown!r} is not allowed to call this service from a browser; start it with "
            "--allowed-origin ORIGIN to allow that page."
        )
        sys.stderr.write(f"trainyard-serving: refused Origin {shown!r} (403 {err.code})\n")
        for message in _refusal(403, error_payload(err)):
            await send(message)

    async def _cross_origin(
        self, scope: Any, receive: Any, send: Any, origin: bytes, authorization: bytes | None
    ) -> int:
        """An allowed cross-origin request: answer a preflight, or pass on with CORS headers."""
        cors = [(b"access-control-allow-origin", origin), (b"vary", b"origin")]
        method, path = scope["method"], scope["path"]
        if method == "OPTIONS" and any(
            n == b"access-control-request-method" for n, _ in scope["headers"]
        ):
            headers = [
                *cors,
                (b"access-control-allow-methods", _CORS_METHODS),
                (b"access-control-allow-headers", _CORS_HEADERS),
                (b"access-control-max-age", b"600"),
                (b"content-length", b"0"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return 204
        status = 500

        async def send_with_cors(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        if self.keys is not None and not self._allowed(method, path, authorization):
            await send_with_cors(_UNAUTHORISED_START)
            await send(_UNAUTHORISED_END)
        elif path == "/score" and method == "POST" and self.scorer is not None:
            await self.scorer(scope, receive, send_with_cors)
        else:
            await self.app(scope, receive, send_with_cors)
        return status
