"""Who is looking, and at which workspace: the seam between the studio and what serves it.

The studio's routes never authenticate anyone themselves. They ask a :class:`StudioAccess` for the
:class:`Viewer` behind a request and for a workspace's context, and check the viewer's role there
with :func:`require_role`. ``trainyard ui`` serves one embedded workspace to whoever reaches its
loopback port (:class:`EmbeddedAccess`: the local user, admin of that workspace); ``trainyard
server`` implements the same protocol over its accounts (a cookie session made from a token,
roles per workspace).

State-changing calls carry the viewer's CSRF token in ``X-CSRF-Token`` (:func:`check_csrf`): a
page of another site can make the browser send the session cookie, but cannot read the token.

Example::

    access = EmbeddedAccess(open_context(Path("./ws")))
    viewer = access.viewer(request)
    require_role(viewer, "team", "write")
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from trainyard.exceptions import PermissionDenied, WorkspaceNotFound

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from trainyard._context import WorkspaceContext

Need = Literal["read", "write", "admin"]
#: Workspace roles, weakest first (the server's accounts use the same names).
ROLES = ("reader", "contributor", "admin")
_ROLE_FOR: dict[str, str] = {"read": "reader", "write": "contributor", "admin": "admin"}
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: their name, role per workspace, and CSRF token."""

    user: str
    roles: dict[str, str] = field(default_factory=dict)
    csrf: str = ""
    #: Whether this viewer logged in through a session (``False``: the embedded UI).
    session: bool = False

    def role(self, workspace: str) -> str | None:
        """The viewer's role in ``workspace`` (``None``: none)."""
        return self.roles.get(workspace)

    def may(self, workspace: str, need: Need) -> bool:
        """Whether the viewer's role in ``workspace`` allows ``need``."""
        role = self.role(workspace)
        return role is not None and ROLES.index(role) >= ROLES.index(_ROLE_FOR[need])


class StudioAccess(Protocol):
    """What serves the studio provides (see the module docstring)."""

    #: Whether the studio needs a login (the login page and session routes are served).
    needs_login: bool

    def viewer(self, request: Request) -> Viewer:
        """The viewer of ``request``; ``AuthenticationError`` when nobody is logged in."""

    def context(self, workspace: str) -> WorkspaceContext:
        """The direct context of ``workspace``; ``WorkspaceNotFound`` if there is none."""

    def login(self, request: Request, response: Response, token: str) -> Viewer:
        """Start a session from an API token (sets the session cookie on ``response``)."""

    def logout(self, request: Request, response: Response) -> None:
        """End the session of ``request`` (its cookie is cleared)."""

    def members(self, workspace: str) -> list[dict[str, Any]]:
        """``[{"user", "role"}]`` of ``workspace`` (the caller has checked admin)."""

    def set_role(self, workspace: str, user: str, role: str | None) -> None:
        """Give ``user`` ``role`` in ``workspace`` (``None`` removes it); admin checked by caller."""


def require_role(viewer: Viewer, workspace: str, need: Need) -> None:
    """``PermissionDenied`` unless ``viewer`` may ``need`` in ``workspace``."""
    if not viewer.may(workspace, need):
        role = viewer.role(workspace)
        raise PermissionDenied(
            f"{viewer.user} has {('role ' + role) if role else 'no role'} in workspace "
            f"{workspace!r}, and this needs {_ROLE_FOR[need]}. Ask a workspace admin for access.",
            need=_ROLE_FOR[need],
        )


def check_csrf(viewer: Viewer, sent: str | None) -> None:
    """``PermissionDenied`` unless ``sent`` is the viewer's CSRF token."""
    if not sent or not viewer.csrf or not hmac.compare_digest(sent, viewer.csrf):
        raise PermissionDenied(
            "This change needs the page's CSRF token (X-CSRF-Token); reload the studio page "
            "and try again.",
            code_detail="CSRF",
        )


class EmbeddedAccess:
    """One embedded workspace on loopback: the local user is its admin, no login."""

    needs_login = False

    def __init__(self, ctx: WorkspaceContext, user: str) -> None:
        self.ctx = ctx
        self.user = user
        self.csrf = secrets.token_urlsafe(24)

    def viewer(self, request: Request) -> Viewer:
        return Viewer(user=self.user, roles={self.ctx.name: "admin"}, csrf=self.csrf)

    def context(self, workspace: str) -> WorkspaceContext:
        if workspace != self.ctx.name:
            raise WorkspaceNotFound(
                f"This studio shows workspace {self.ctx.name!r} only; run `trainyard ui "
                f"--workspace DIR` for another.",
                workspace=workspace,
            )
        return self.ctx

    def login(self, request: Request, response: Response, token: str) -> Viewer:
        return self.viewer(request)

    def logout(self, request: Request, response: Response) -> None:
        return None

    def members(self, workspace: str) -> list[dict[str, Any]]:
        self.context(workspace)
        return [{"user": self.user, "role": "admin"}]

    def set_role(self, workspace: str, user: str, role: str | None) -> None:
        raise PermissionDenied(
            "An embedded workspace has no accounts; roles exist on a team server "
            "(`trainyard server`)."
        )
