"""The team server's ASGI app: the store and artifact APIs, accounts, health, security checks.

``create_app(config)`` builds it; ``trainyard server`` runs it with uvicorn. What every request
meets, in order: the ``Host`` and ``Origin`` checks (DNS rebinding, cross-site calls — the same
policy as the scoring server), a size limit on JSON bodies counted on the bytes actually read,
authentication (bearer token; 401 with a hint), the route's authorisation rule (403), then the
handler. Errors cross the wire as ``{"error": {"code", "message", "details"}}`` with the exception
class's HTTP status; anything unexpected is a 500 whose body says nothing about internals (the
traceback is logged).

Example::

    app = create_app(ServerConfig(store_url="sqlite:////srv/ty/trainyard.db", artifacts=Path("/srv/ty")))
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from trainyard._serving.hosts import HostPolicy
from trainyard._version import __version__
from trainyard.exceptions import (
    AuthenticationError,
    MethodNotAllowed,
    NotFoundError,
    PermissionDenied,
    RateLimited,
    RequestTooLarge,
    TrainyardError,
    ValidationError,
)
from trainyard.server.auth import FailureLimiter, Principal, authenticate
from trainyard.server.config import ServerConfig
from trainyard.server.state import ServerState

log = logging.getLogger("trainyard.server")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Routes anyone may call (no token): liveness and readiness probes.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
#: Paths whose bodies are streamed to disk, not limited like JSON bodies.
_STREAMED = re.compile(
    r"^/api/v1/workspaces/[^/]+/(artifacts|snapshots/objects)/"
    r"|^/mlflow/[^/]+/api/2\.0/mlflow-artifacts/(artifacts|mpu/part)/"
)


class _AsciiJSON(JSONResponse):
    """JSON with every non-ASCII character escaped: an error may quote a client's bad input
    (a lone surrogate, say), which UTF-8 cannot encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), default=str).encode("ascii")


def _error(err: TrainyardError) -> JSONResponse:
    headers = {"X-Trainyard-Error-Code": err.code}
    if isinstance(err, RateLimited):
        headers["Retry-After"] = str(err.details.get("retry_after", 60))
    if isinstance(err, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="trainyard"'
    return _AsciiJSON({"error": err.to_dict()}, status_code=err.http_status, headers=headers)


class _Guard:
    """ASGI middleware: ``Host``/``Origin`` checks and the JSON body size limit."""

    def __init__(self, app: ASGIApp, policy: HostPolicy, max_json_bytes: int) -> None:
        self.app = app
        self.policy = policy
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host")
        if host is not None and not self.policy.host_allowed(host):
            await _error(
                PermissionDenied("Unexpected Host header.", code_detail="HOST_NOT_ALLOWED")
            )(scope, receive, send)
            return
        origin = headers.get(b"origin")
        if origin is not None and not self.policy.origin_allowed(origin, host):
            await _error(PermissionDenied("Cross-origin request refused."))(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        try:  # the URL as the client sent it must be UTF-8 (decoders would replace the rest)
            unquote_to_bytes(bytes(scope.get("raw_path") or b"")).decode("utf-8")
            query = unquote(
                bytes(scope.get("query_string") or b"").decode("latin-1"), errors="strict"
            )
        except UnicodeDecodeError:
            await _error(ValidationError("The URL is not valid UTF-8."))(scope, receive, send)
            return
        if _has_control(path) or _has_control(query):
            await _error(ValidationError("The URL contains a control character (NUL, newline …)."))(
                scope, receive, send
            )
            return
        if _STREAMED.match(path):
            await self.app(scope, receive, send)
            return
        limit = self.max_json_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _error(_too_large(limit))(scope, receive, send)
            return
        seen = 0
        over = False
        answered = False

        async def limited() -> MutableMapping[str, Any]:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: MutableMapping[str, Any]) -> None:
            # The body parser may turn our exception into its own 400: answer 413 instead.
            nonlocal answered
            if not over:
                await send(message)
            elif not answered:
                answered = True
                await _error(_too_large(limit))(scope, receive, send)

        try:
            await self.app(scope, limited, guarded_send)
        except _TooLarge:
            if not answered:
                answered = True
                await _error(_too_large(limit))(scope, receive, send)


class _TooLarge(Exception):
    pass


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"The request body is over the server's limit of {limit} bytes; send metrics in smaller "
        "batches, and files through the artifact routes (streamed).",
        limit=limit,
    )


def _http_error(status: int, detail: str) -> TrainyardError:
    """Starlette's own errors (no route, wrong method, unreadable body) as the typed tree."""
    if status == 404:
        return NotFoundError("No such route on this server; see /openapi.json.")
    if status == 405:
        return MethodNotAllowed("This route does not take this HTTP method; see /openapi.json.")
    if status == 413:
        return RequestTooLarge("The request body is too large.")
    return ValidationError(f"Bad request: {detail}.", status=status)


def create_app(config: ServerConfig, state: ServerState | None = None) -> FastAPI:
    """The server app over ``config``'s store (opened here unless ``state`` is given)."""
    from trainyard.server.execution import Execution
    from trainyard.server.mlflow_routes import mlflow_router
    from trainyard.server.routes_accounts import accounts_router
    from trainyard.server.routes_artifacts import artifact_router
    from trainyard.server.routes_runs import runs_router
    from trainyard.server.routes_store import store_router

    state = state or ServerState.open(config)
    execution = Execution(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        execution.start_reaper()
        yield
        execution.stop()

    limiter = FailureLimiter(config.auth_failures_per_minute)
    app = FastAPI(
        lifespan=lifespan,
        redirect_slashes=False,  # a redirect is no answer for an API client: 404 with a code
        title="trainyard server",
        version=__version__,
        description="The team server of a trainyard workspace: the metadata store, files and "
        "accounts over HTTP. Every route but /healthz and /readyz needs a bearer token.",
    )
    app.state.trainyard = state

    def principal(request: Request) -> Principal:
        client = request.client.host if request.client else "?"
        return authenticate(state, request.headers.get("authorization"), client, limiter)

    @app.exception_handler(TrainyardError)
    async def _trainyard_error(request: Request, err: TrainyardError) -> JSONResponse:
        return _error(err)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        response = _error(_http_error(err.status_code, str(err.detail)))
        if err.status_code >= 500:  # pragma: no cover - Starlette raises none of these itself
            response.status_code = err.status_code
        return response

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _error(ValidationError(f"Bad request: {where}: {first.get('msg', 'invalid')}."))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {
                "error": {
                    "code": "TRAINYARD_ERROR",
                    "message": "Internal server error.",
                    "details": {},
                }
            },
            status_code=500,
        )

    @app.get("/healthz", openapi_extra={"x-trainyard-access": "public"})
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", openapi_extra={"x-trainyard-access": "public"})
    def readyz() -> Response:
        """Readiness: the database answers."""
        started = time.monotonic()
        try:
            state.accounts.count_users()
        except TrainyardError as err:
            return JSONResponse({"status": "unavailable", "error": err.message}, status_code=503)
        return JSONResponse(
            {"status": "ready", "db_ms": round((time.monotonic() - started) * 1000, 1)}
        )

    @app.get("/api/v1/whoami", openapi_extra={"x-trainyard-access": "authenticated"})
    def whoami(who: Principal = Depends(principal)) -> dict[str, Any]:
        """The caller: user (or run), token and server-admin flag."""
        return {
            "user": who.user.name if who.user else None,
            "is_admin": who.is_server_admin,
            "token": who.token.prefix,
            "kind": who.token.kind,
            "run_id": who.token.run_id,
        }

    app.include_router(store_router(state, principal))
    app.include_router(artifact_router(state, principal))
    app.include_router(accounts_router(state, principal))
    app.include_router(runs_router(state, execution, principal))
    app.include_router(mlflow_router(state, principal))
    _mount_studio(app, state, execution, limiter)
    policy = HostPolicy(
        bind_host=config.host,
        allowed_hosts=config.allowed_hosts,
        allowed_origins=config.allowed_origins,
    )
    app.add_middleware(_Guard, policy=policy, max_json_bytes=config.max_json_bytes)
    return app


def _mount_studio(
    app: FastAPI, state: ServerState, execution: Any, limiter: FailureLimiter
) -> None:
    """The studio at ``/studio/`` behind a cookie session (``server/studio.py``); its routes are
    not part of the API document (they are the web UI's)."""
    from fastapi.responses import RedirectResponse
    from fastapi.routing import APIRoute

    from trainyard.server.studio import ServerStudioAccess
    from trainyard.studio import studio_router

    router = studio_router(ServerStudioAccess(state, execution, limiter))

    def mark(routes: Any) -> None:  # every route, in routers FastAPI may wrap, too
        for route in routes:
            if isinstance(route, APIRoute):
                route.openapi_extra = {"x-trainyard-access": "studio-session"}
            inner = getattr(route, "original_router", None) or getattr(route, "app", None)
            if inner is not None and hasattr(inner, "routes"):
                mark(inner.routes)

    mark(router.routes)
    app.include_router(router, prefix="/studio", include_in_schema=False)

    @app.get(
        "/studio",
        include_in_schema=False,
        openapi_extra={"x-trainyard-access": "studio-session"},
    )
    def studio_root() -> Response:
        return RedirectResponse("/studio/")


def dumps(value: Any) -> str:
    """Compact JSON (NaN and infinities as JavaScript literals, as the store protocol uses)."""
    return json.dumps(value, separators=(",", ":"))
