"""uvicorn's httptools protocol with a deadline for a request's headers (slowloris).

uvicorn closes idle keep-alive connections, but a connection that has sent nothing yet, or sends its
headers a byte at a time, is kept open for ever: a few hundred of those exhaust a worker's file
descriptors. :class:`HeaderTimeoutProtocol` arms one timer when a connection opens and when a
request starts, and disarms it once the headers are complete; a connection still short of its
headers when it fires is answered ``408`` and closed, with one ``trainyard-serving:`` line on
stderr. The body has its own deadline, in :mod:`trainyard._serving.scoring`.

The deadline is process-wide (one server per process): :func:`configure` sets it in the launcher
and in each worker.

Example::

    configure(10.0)
    uvicorn.Config(app, http=protocol_class())
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

_header_timeout_s: float | None = None
_TIMEOUT_BODY = (
    b'{"error":"The request headers did not arrive in time; the connection is closed.",'
    b'"code":"HEADER_TIMEOUT"}'
)
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode("ascii") + b"\r\n\r\n" + _TIMEOUT_BODY
)


def configure(header_timeout_s: float | None) -> None:
    """Set this process's header deadline in seconds (``None``: none)."""
    global _header_timeout_s
    _header_timeout_s = header_timeout_s


def protocol_class() -> Any:
    """:class:`HeaderTimeoutProtocol`, or ``"auto"`` when uvicorn's httptools protocol is missing
    (then requests have no header deadline)."""
    return HeaderTimeoutProtocol if HeaderTimeoutProtocol is not None else "auto"


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - the serving extra installs httptools
    HeaderTimeoutProtocol: Any = None
else:

    class HeaderTimeoutProtocol(HttpToolsProtocol):  # type: ignore[no-redef]
        """httptools protocol that closes connections whose headers are late (module docstring)."""

        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head_timer()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_head_timer()

        def on_headers_complete(self) -> None:
            timer = self._head_timer
            if timer is not None:
                timer.cancel()
                self._head_timer = None
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            timer = self._head_timer
            if timer is not None:
                timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

        def _arm_head_timer(self) -> None:
            if self._head_timer is None and _header_timeout_s is not None:
                self._head_timer = self.loop.call_later(_header_timeout_s, self._head_timed_out)

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            client = self.client
            who = f"{client[0]}:{client[1]}" if client else "a client"
            sys.stderr.write(
                f"trainyard-serving: closed the connection of {who} (408): its request headers "
                f"did not arrive within {_header_timeout_s:g}s\n"
            )
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()
