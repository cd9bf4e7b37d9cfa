"""``trainyard ui``: the studio (web UI) over one embedded workspace, on loopback, no login.

While it runs, ``<workspace>/studio.json`` holds its URL (and pid), so each run's ``Web View:``
line and ``run.get_portal_url()`` point at the run's studio page.

Example::

    $ trainyard ui                         # the workspace found from the current folder
    $ trainyard ui --workspace ./ws --port 8766
"""

from __future__ import annotations

import contextlib
import os
from typing import Annotated

import typer

from trainyard.cli._common import WorkspaceOpt, open_workspace


def register(root: typer.Typer) -> None:
    """Add ``trainyard ui`` to ``root``.

    Example::

        register(app)
    """
    root.command("ui")(ui)


def ui(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8766,
    host: Annotated[
        str, typer.Option("--host", help="Loopback address to listen on (127.0.0.1, ::1).")
    ] = "127.0.0.1",
) -> None:
    """Serve trainyard studio, the web UI, over an embedded workspace (loopback only, no login).

    Open the printed URL: experiments, runs table, run pages with live charts and logs, compare,
    sweeps, models, endpoints. For a team, `trainyard server` serves the same studio behind its
    login at /studio.

    Example: [bold]trainyard ui --workspace ./ws[/bold]
    """
    from trainyard.cli.server import require_server_extra
    from trainyard.exceptions import ConfigError

    require_server_extra()
    from trainyard.server.config import is_loopback

    if not is_loopback(host):
        raise ConfigError(
            f"trainyard ui listens on loopback only (it has no login), not {host}. For a team, "
            "run `trainyard server` (accounts, TLS) and open its /studio page."
        )
    ws = open_workspace(ctx, workspace)
    wctx = ws.context
    if wctx.remote:
        raise ConfigError(
            f"Workspace {wctx.name!r} lives on the team server {wctx.server}: open its studio "
            f"at {wctx.server}/studio/ instead."
        )
    import uvicorn

    from trainyard._context import atomic_write_json
    from trainyard.core.run import current_user
    from trainyard.studio import create_ui_app

    app = create_ui_app(wctx, host=host, user=current_user())
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    marker = wctx.home / "studio.json"
    atomic_write_json(marker, {"url": url, "pid": os.getpid()})
    typer.echo(f"trainyard studio for workspace {wctx.name!r}: {url}", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        with contextlib.suppress(OSError):
            marker.unlink()
