"""HTTP/1.1 to a trainyard server with the standard library only.

The REST client also runs *inside* users' training scripts, in environments whose packages trainyard
must not constrain, so it speaks HTTP through :mod:`http.client` rather than a third-party client:
one keep-alive connection per thread, ``Authorization: Bearer <token>``, retries with jittered
exponential backoff on connection errors, 429 and 502/503/504 (and, for calls that are not safe to
repeat, an ``Idempotency-Key`` the server answers a repeat from), and errors that come back as the
exception tree's classes (the server sends ``{"error": {"code", "message", "details"}}``).

A URL is ``http://host:port``, ``https://host:port`` or ``unix:///path/to/socket`` (a local socket,
as a run's supervisor offers its script).

Example::

    t = Transport("http://127.0.0.1:8765", token="ty_…")
    t.call_json("POST", "/api/v1/store/get_run", {"run_id": "r1"})
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any
from urllib.parse import quote, urlsplit

from trainyard.exceptions import ConfigError, ServerUnreachable, StoreError, TrainyardError

#: Statuses worth another try: the server is busy or restarting.
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_CONNECT_ERRORS = (ConnectionError, socket.timeout, http.client.RemoteDisconnected, OSError)
_CHUNK = 1 << 20


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


class Transport:
    """A thread-safe HTTP client for one server (see the module docstring)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 120.0,
        retry_seconds: float = 60.0,
        user_agent: str = "trainyard",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "unix"):
            raise ConfigError(
                f"Server URL {url!r} must start with http://, https:// or unix://.", url=url
            )
        self.url = url.rstrip("/")
        self._parts = parts
        self._token = token
        self._timeout = timeout
        self._retry_seconds = retry_seconds
        self._agent = user_agent
        self._local = threading.local()

    @property
    def token(self) -> str | None:
        """The bearer token this transport sends (to hand to a process started on its behalf)."""
        return self._token

    def with_retry(self, retry_seconds: float) -> Transport:
        """A transport to the same server with the same token that retries for ``retry_seconds``."""
        return Transport(
            self.url,
            self._token,
            timeout=self._timeout,
            retry_seconds=retry_seconds,
            user_agent=self._agent,
        )

    # -- connections ----------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            p = self._parts
            if p.scheme == "unix":
                conn = _UnixConnection(p.path, self._timeout)
            elif p.scheme == "https":
                conn = http.client.HTTPSConnection(
                    p.hostname or "localhost",
                    p.port,
                    timeout=self._timeout,
                    context=ssl.create_default_context(),
                )
            else:
                conn = http.client.HTTPConnection(
                    p.hostname or "localhost", p.port, timeout=self._timeout
                )
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def close(self) -> None:
        """Close this thread's connection."""
        self._drop()

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"User-Agent": self._agent, "Host": self._parts.netloc or "localhost"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        headers.update(extra or {})
        return headers

    # -- requests -------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: bytes | IO[bytes] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        resume: Callable[[], Mapping[str, str]] | None = None,
    ) -> http.client.HTTPResponse:
        """Send one request, retrying what may be retried; returns a 2xx response (the caller
        reads it) or raises the server's error as its trainyard class.

        ``resume`` (for a streamed body) is called before each retry instead of rewinding the body
        to its start: it positions the body where the server wants it and returns the headers
        that say so (a resumable upload sends only what the server lacks)."""
        hdrs = self._headers(headers)
        if not idempotent:
            hdrs.setdefault("Idempotency-Key", uuid.uuid4().hex)
        rewindable = body is None or isinstance(body, bytes) or _seekable(body)
        start = body.tell() if (body is not None and not isinstance(body, bytes)) else 0
        deadline = time.monotonic() + self._retry_seconds
        delay = 0.05
        retry = False
        while True:
            conn = self._connection()
            try:
                if resume is not None and retry:
                    hdrs.update(resume())
                    conn = self._connection()
                elif body is not None and not isinstance(body, bytes):
                    body.seek(start)
                retry = True
                conn.request(method, path, body=body, headers=hdrs, encode_chunked=False)
                resp = conn.getresponse()
            except BaseException as err:
                self._drop()  # a request cut short leaves the connection unusable
                if not isinstance(err, _CONNECT_ERRORS):
                    raise
                self._drop()
                if not rewindable or time.monotonic() + delay > deadline:
                    raise ServerUnreachable(
                        f"Cannot reach the trainyard server at {self.url}: {err}. Check that "
                        "`trainyard server` is running and the URL is right; the call is retried "
                        f"for {self._retry_seconds:g} s before this error.",
                        url=self.url,
                    ) from err
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
                continue
            if (
                resp.status in _RETRY_STATUSES
                and rewindable
                and time.monotonic() + delay < deadline
            ):
                wait = _retry_after(resp) or delay * (1 + random.random())
                resp.read()
                time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 2.0)
                continue
            if 200 <= resp.status < 300:
                return resp
            raise _error_from(resp, self.url)

    def call_json(
        self, method: str, path: str, payload: Any = None, *, idempotent: bool = True
    ) -> Any:
        """Send ``payload`` as JSON and return the decoded JSON answer."""
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        resp = self.request(method, path, body, headers=headers, idempotent=idempotent)
        data = resp.read()
        if not data:
            return None
        try:
            return json.loads(data)
        except json.JSONDecodeError as err:
            raise StoreError(f"The server at {self.url} answered with invalid JSON.") from err

    def stream(self, path: str, headers: Mapping[str, str] | None = None) -> Iterator[bytes]:
        """GET ``path`` and yield its body in chunks (the connection is kept for the next call
        once the body is read to the end)."""
        resp = self.request("GET", path, headers=headers)
        while True:
            chunk = resp.read(_CHUNK)
            if not chunk:
                return
            yield chunk


def quote_path(path: str) -> str:
    """``path`` percent-encoded for a URL (``/`` kept)."""
    return quote(path, safe="/")


def _seekable(body: IO[bytes]) -> bool:
    try:
        return bool(body.seekable())
    except (AttributeError, OSError):
        return False


def _retry_after(resp: http.client.HTTPResponse) -> float | None:
    raw = resp.getheader("Retry-After")
    try:
        return None if raw is None else max(0.0, float(raw))
    except ValueError:
        return None


def _error_from(resp: http.client.HTTPResponse, url: str) -> TrainyardError:
    raw = resp.read()
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return TrainyardError.from_dict(payload["error"])
    code = resp.getheader("X-Trainyard-Error-Code")
    if code:  # HEAD answers carry the error's code in a header (they have no body)
        return TrainyardError.from_dict(
            {"code": code, "message": f"{resp.status} {resp.reason} from {url}"}
        )
    text = raw[:500].decode("utf-8", "replace")
    return StoreError(
        f"The trainyard server at {url} answered {resp.status} {resp.reason}: {text}",
        status=resp.status,
    )
