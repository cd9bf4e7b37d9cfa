"""What every studio route needs: the viewer, the workspace's context and public objects.

Example::

    deps = StudioDeps(access)
    ctx = deps.read(request, "team")            # the context, after checking the viewer may read
    run = deps.run(ctx, "mnist_1714_1a2b")      # the public Run (logs, files)
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from trainyard.studio.access import (
    CSRF_HEADER,
    Need,
    StudioAccess,
    Viewer,
    check_csrf,
    require_role,
)

if TYPE_CHECKING:
    from starlette.requests import Request

    from trainyard._context import WorkspaceContext
    from trainyard.core.run import Run
    from trainyard.core.workspace import Workspace


class StudioDeps:
    """Checks access, and keeps one public ``Workspace`` per workspace name."""

    def __init__(self, access: StudioAccess) -> None:
        self.access = access
        self._workspaces: dict[str, Workspace] = {}
        self._lock = threading.Lock()

    def viewer(self, request: Request) -> Viewer:
        """The viewer of ``request`` (``AuthenticationError`` when nobody is logged in)."""
        return self.access.viewer(request)

    def context(self, request: Request, workspace: str, need: Need) -> WorkspaceContext:
        """The workspace's context once the viewer's role allows ``need`` there; changes
        (``write``/``admin``) also need the CSRF token."""
        viewer = self.viewer(request)
        require_role(viewer, workspace, need)
        if request.method not in ("GET", "HEAD"):
            check_csrf(viewer, request.headers.get(CSRF_HEADER))
        return self.access.context(workspace)

    def read(self, request: Request, workspace: str) -> WorkspaceContext:
        """:meth:`context` for reading."""
        return self.context(request, workspace, "read")

    def workspace(self, ctx: WorkspaceContext) -> Workspace:
        """The public workspace over ``ctx`` (made once per name)."""
        from trainyard.core.workspace import Workspace

        with self._lock:
            found = self._workspaces.get(ctx.name)
            if found is None:
                found = self._workspaces[ctx.name] = Workspace.from_context(ctx)
            return found

    def run(self, ctx: WorkspaceContext, run_id: str) -> Run:
        """The public run object (of its registered class); ``RunNotFound`` if none."""
        from trainyard.core.run import run_from_id

        return run_from_id(self.workspace(ctx), run_id)
