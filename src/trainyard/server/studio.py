"""The studio behind the team server's login: a cookie session made from an API token.

``POST /studio/api/login {"token": "ty_…"}`` checks the token like any API call (rate limited),
then creates a separate, short-lived session token for the same user (12 h; revoked at logout) and
sets it as an ``HttpOnly``, ``SameSite=Strict`` cookie scoped to ``/studio`` (``Secure`` over TLS):
the pasted token is never stored in the browser. The CSRF token is derived from the session
secret (HMAC), so it needs no storage; the studio's routes require it on every change. Roles are
the server's: a reader sees pages and may change nothing, members are managed by workspace admins.

Example::

    access = ServerStudioAccess(state, execution, limiter)
    app.include_router(studio_router(access), prefix="/studio")
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from trainyard._context import WorkspaceContext
from trainyard.exceptions import AuthenticationError, PermissionDenied
from trainyard.server.auth import FailureLimiter, Principal, authenticate, role_in
from trainyard.server.execution import Execution
from trainyard.server.state import ServerState
from trainyard.studio.access import Viewer

COOKIE = "ty_studio"
SESSION_SECONDS = 12 * 3600.0


class ServerStudioAccess:
    """:class:`~trainyard.studio.access.StudioAccess` over the server's accounts."""

    needs_login = True

    def __init__(self, state: ServerState, execution: Execution, limiter: FailureLimiter) -> None:
        self.state = state
        self.execution = execution
        self.limiter = limiter

    def _principal(self, request: Request, secret: str) -> Principal:
        client = request.client.host if request.client else "?"
        return authenticate(self.state, f"Bearer {secret}", client, self.limiter)

    def viewer(self, request: Request) -> Viewer:
        secret = request.cookies.get(COOKIE)
        if not secret:
            raise AuthenticationError("Log in to the studio with an API token.")
        return self._viewer(request, secret)

    def _viewer(self, request: Request, secret: str) -> Viewer:
        who = self._principal(request, secret)
        if who.user is None:
            raise AuthenticationError("A run token cannot open the studio; log in as a user.")
        roles = {}
        for ws in self.state.store.list_workspaces():
            role = role_in(self.state, who, ws.id)
            if role is not None:
                roles[ws.name] = role
        csrf = hmac.new(secret.encode(), b"trainyard-studio-csrf", hashlib.sha256).hexdigest()
        return Viewer(user=who.user.name, roles=roles, csrf=csrf[:32], session=True)

    def context(self, workspace: str) -> WorkspaceContext:
        return self.execution.context(workspace)

    def login(self, request: Request, response: Response, token: str) -> Viewer:
        if not token:
            raise AuthenticationError("Give an API token (`trainyard token create`).")
        who = self._principal(request, token)
        if who.user is None:
            raise AuthenticationError("A run token cannot open the studio; log in as a user.")
        _, secret = self.state.accounts.create_token(
            who.user.id, name="studio session", expires_at=time.time() + SESSION_SECONDS
        )
        response.set_cookie(
            COOKIE,
            secret,
            max_age=int(SESSION_SECONDS),
            path="/studio",
            httponly=True,
            samesite="strict",
            secure=self.state.config.scheme == "https",
        )
        return self._viewer(request, secret)

    def logout(self, request: Request, response: Response) -> None:
        secret = request.cookies.get(COOKIE)
        if secret:
            try:
                who = self._principal(request, secret)
                self.state.accounts.revoke_token(who.token.id)
            except AuthenticationError:
                pass
        response.delete_cookie(COOKIE, path="/studio")

    def members(self, workspace: str) -> list[dict[str, Any]]:
        ws_id = self.state.workspace_id(workspace)
        out = []
        for user_id, role in sorted(self.state.accounts.roles(ws_id).items()):
            out.append({"user": self.state.accounts.get_user_by_id(user_id).name, "role": role})
        return out

    def set_role(self, workspace: str, user: str, role: str | None) -> None:
        if role is not None and role not in ("reader", "contributor", "admin"):
            raise PermissionDenied(f"Unknown role {role!r}.")
        ws_id = self.state.workspace_id(workspace)
        self.state.accounts.set_role(ws_id, self.state.accounts.get_user(user).id, role)
