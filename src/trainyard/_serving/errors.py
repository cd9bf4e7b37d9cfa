"""The scoring server's refusals, as typed errors with stable codes and the HTTP status they answer.

Each is a :class:`~trainyard.exceptions.WebserviceException` (v1's name for web-service errors), so
client code that catches that keeps working. On the wire a refusal is compact JSON
``{"error": "<message>", "code": "<CODE>"}``: the ``error`` key is what v1 clients read, ``code`` is
for programs. The messages say what to change.

::

    WebserviceException
    ├── HostNotAllowed          HOST_NOT_ALLOWED     403
    ├── OriginNotAllowed        ORIGIN_NOT_ALLOWED   403
    ├── RequestBodyTimeout      BODY_TIMEOUT         408
    ├── ScoringTimeout          SCORING_TIMEOUT      504
    └── ScoringOverloaded       SCORING_OVERLOADED   503

Example::

    from trainyard._serving.errors import ScoringTimeout, error_payload
    error_payload(ScoringTimeout("run() did not return within 60s"))
    # b'{"error":"run() did not return within 60s","code":"SCORING_TIMEOUT"}'
"""

from __future__ import annotations

import json

from trainyard.exceptions import WebserviceException


class HostNotAllowed(WebserviceException):
    """The ``Host`` header names neither loopback, the bind address nor an allowed host.

    This is what a DNS-rebinding page looks like: its own domain, resolved to this machine.
    """

    code = "HOST_NOT_ALLOWED"
    http_status = 403


class OriginNotAllowed(WebserviceException):
    """A browser sent the request from a page of another origin that is not allowed."""

    code = "ORIGIN_NOT_ALLOWED"
    http_status = 403


class RequestBodyTimeout(WebserviceException):
    """The client did not send the whole request body in time (a stalled or slowloris client)."""

    code = "BODY_TIMEOUT"
    http_status = 408


class ScoringTimeout(WebserviceException):
    """``run()`` did not return within the service's run timeout."""

    code = "SCORING_TIMEOUT"
    http_status = 504


class ScoringOverloaded(WebserviceException):
    """Every ``run()`` thread is still busy with a call that already timed out."""

    code = "SCORING_OVERLOADED"
    http_status = 503


def error_payload(err: WebserviceException) -> bytes:
    """``{"error": message, "code": code}`` as compact JSON bytes.

    Example::

        error_payload(HostNotAllowed("Host 'evil.example' is not allowed"))
    """
    return json.dumps({"error": err.message, "code": err.code}, separators=(",", ":")).encode()
