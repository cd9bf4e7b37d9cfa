"""The studio as an ASGI app (``trainyard ui``) or as routes another app mounts (the server).

:func:`studio_router` holds the JSON API (:mod:`routes_runs`, :mod:`routes_registry`), the session
routes and the built front-end (``static/``, built from ``studio/frontend`` by the set-up scripts
and shipped in the wheel). :func:`create_ui_app` wraps it for one embedded workspace on loopback,
with the same ``Host``/``Origin`` checks as the team server (DNS rebinding, cross-site calls).

Example::

    app = create_ui_app(open_context(Path("./ws")), host="127.0.0.1")
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from trainyard.exceptions import AuthenticationError, NotFoundError, TrainyardError
from trainyard.studio.access import StudioAccess
from trainyard.studio.deps import StudioDeps

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext

log = logging.getLogger("trainyard.studio")

#: Where the built front-end lives (gitignored; built by scripts/_frontend.sh).
STATIC = Path(__file__).resolve().parent / "static"
_MISSING = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>trainyard studio
</title></head><body><main><h1>trainyard studio</h1><p>The studio's front-end is not built. From
a source checkout run <code>bash scripts/_frontend.sh</code> (npm ci &amp;&amp; npm run build in
studio/frontend), or install a trainyard wheel.</p></main></body></html>"""
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
}


def studio_router(access: StudioAccess) -> APIRouter:
    """The studio's routes (mount under any prefix; the front-end uses relative URLs)."""
    from trainyard.studio.routes_registry import registry_router
    from trainyard.studio.routes_runs import runs_router

    deps = StudioDeps(access)
    router = APIRouter()

    @router.get("/api/session")
    def session(request: Request) -> dict[str, Any]:
        """Who is logged in (``user`` null: nobody), their CSRF token, and their workspaces."""
        try:
            viewer = access.viewer(request)
        except AuthenticationError:
            return {"user": None, "csrf": "", "needs_login": True, "workspaces": []}
        return {
            "user": viewer.user,
            "csrf": viewer.csrf,
            "needs_login": access.needs_login,
            "workspaces": [{"name": n, "role": r} for n, r in sorted(viewer.roles.items())],
        }

    @router.post("/api/login")
    def login(
        request: Request, response: Response, body: dict[str, Any] = Body(...)
    ) -> dict[str, Any]:
        """Start a session from an API token (``trainyard token create``)."""
        viewer = access.login(request, response, str(body.get("token") or ""))
        return {"user": viewer.user, "csrf": viewer.csrf}

    @router.post("/api/logout")
    def logout(request: Request, response: Response) -> dict[str, Any]:
        """End the session."""
        access.logout(request, response)
        return {"ok": True}

    router.include_router(runs_router(deps))
    router.include_router(registry_router(deps))

    @router.get("/api/{rest:path}")
    def no_route(rest: str) -> None:
        raise NotFoundError(f"The studio has no API route {rest!r}.")

    @router.get("/assets/{name}")
    def asset(name: str) -> Response:
        path = STATIC / "assets" / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise NotFoundError(f"No studio asset {name!r}.")
        headers = {"Cache-Control": "public, max-age=31536000, immutable", **_SECURITY_HEADERS}
        return FileResponse(path, headers=headers)

    @router.get("/")
    def index() -> Response:
        page = STATIC / "index.html"
        headers = {"Cache-Control": "no-cache", **_SECURITY_HEADERS}
        if not page.is_file():
            return HTMLResponse(_MISSING, status_code=503, headers=headers)
        return FileResponse(page, headers=headers)

    return router


def error_response(err: TrainyardError) -> JSONResponse:
    """A typed error as the server sends it: ``{"error": {"code", "message", "details"}}``."""
    return JSONResponse({"error": err.to_dict()}, status_code=err.http_status)


def create_ui_app(ctx: WorkspaceContext, *, host: str = "127.0.0.1", user: str = "") -> FastAPI:
    """``trainyard ui``'s app: the studio over one embedded workspace, for the local user."""
    from trainyard._serving.hosts import HostPolicy
    from trainyard.studio.access import EmbeddedAccess

    app = FastAPI(title="trainyard studio", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(TrainyardError)
    async def _typed(request: Request, err: TrainyardError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": {"code": "TRAINYARD_ERROR", "message": "Internal error.", "details": {}}},
            status_code=500,
        )

    app.include_router(studio_router(EmbeddedAccess(ctx, user or "local")))
    policy = HostPolicy(bind_host=host, allowed_hosts=(), allowed_origins=())

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        host_header = request.headers.get("host")
        if host_header is not None and not policy.host_allowed(host_header.encode()):
            return JSONResponse(
                {"error": {"code": "PERMISSION_DENIED", "message": "Unexpected Host header."}},
                status_code=403,
            )
        origin = request.headers.get("origin")
        if origin is not None and not policy.origin_allowed(
            origin.encode(), host_header.encode() if host_header else None
        ):
            return JSONResponse(
                {"error": {"code": "PERMISSION_DENIED", "message": "Cross-origin request."}},
                status_code=403,
            )
        response: Response = await call_next(request)
        return response

    return app
