"""Where a run's page is: the studio when one is reachable, else the run's folder.

Order: ``TRAINYARD_STUDIO_URL`` (a studio someone serves for this workspace); a team server's
workspace: the server's ``/studio/``; a running ``trainyard ui`` of the workspace (its
``studio.json`` names a live process); otherwise the run's folder as a ``file://`` URL.

Example::

    portal_url(ctx, "mnist_1714_1a2b")   # 'http://127.0.0.1:8766/#/w/demo/runs/mnist_1714_1a2b'
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

from trainyard._context import WorkspaceContext


def _running_ui(ctx: WorkspaceContext) -> str | None:
    try:
        data = json.loads((ctx.home / "studio.json").read_text(encoding="utf-8"))
        pid = int(data["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    url = data.get("url")
    return url if isinstance(url, str) else None


def portal_url(ctx: WorkspaceContext, run_id: str) -> str:
    """The URL of run ``run_id``'s page (see the module docstring)."""
    base = ctx.settings.studio_url
    if base is None and ctx.server is not None:
        base = ctx.server.rstrip("/") + "/studio/"
    if base is None:
        base = _running_ui(ctx)
    if base is None:
        return f"file://{ctx.home}/runs/{run_id}"
    if not base.endswith("/"):
        base += "/"
    return f"{base}#/w/{quote(ctx.name, safe='')}/runs/{quote(run_id, safe='')}"
