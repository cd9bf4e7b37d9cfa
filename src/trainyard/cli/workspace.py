"""``trainyard workspace``: create a workspace and show the one in use.

Example::

    $ trainyard workspace create demo --path ./demo-ws
    $ trainyard workspace show --json
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trainyard.cli._common import JsonOpt, WorkspaceOpt, console, open_workspace, print_json

app = typer.Typer(
    help="Create a workspace or show the one in use.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def register(root: typer.Typer) -> None:
    """Add ``trainyard workspace`` to ``root``.

    Example::

        register(app)
    """
    root.add_typer(app, name="workspace")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Workspace name (letters, digits, - and _).")],
    path: Annotated[
        Path | None,
        typer.Option(
            "--path",
            "-p",
            help="Workspace folder (default: $TRAINYARD_HOME/workspaces/NAME).",
            show_default=False,
        ),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            metavar="URL",
            help="Keep metadata in this database (postgresql://user@host/db) instead of the "
            "folder's SQLite file.",
        ),
    ] = None,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Open the workspace if it already exists.")
    ] = False,
    write_config: Annotated[
        bool,
        typer.Option(
            "--write-config/--no-write-config",
            help="Write ./.trainyard/config.json so later commands run here find the workspace.",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Create a workspace folder (and point ./.trainyard/config.json at it).

    Example: [bold]trainyard workspace create demo --path ./demo-ws[/bold]
    """
    from trainyard.core.workspace import Workspace
    from trainyard.settings import load_settings

    home = (path if path is not None else load_settings().home / "workspaces" / name).expanduser()
    existed = (home / "workspace.json").is_file()
    ws = Workspace.create(name, path=path, tracking_uri=tracking_uri, exist_ok=exist_ok)
    config = ws.write_config() if write_config else None
    if as_json:
        print_json(
            {**ws.get_details(), "created": not existed, "config": str(config) if config else None}
        )
        return
    out = console()
    verb = "Opened existing" if existed else "Created"
    out.print(f"{verb} workspace {ws.name} at {ws.path}")
    if config is not None:
        out.print(f"Wrote {config}; commands run in {config.parent.parent} now use this workspace.")


@app.command("show")
def show(ctx: typer.Context, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Show the workspace commands use here: name, folder, tracking URI.

    Example: [bold]trainyard workspace show --json[/bold]
    """
    from rich.table import Table

    ws = open_workspace(ctx, workspace)
    details = ws.get_details()
    if as_json:
        print_json(details)
        return
    table = Table(show_header=False, box=None, title=f"Workspace {ws.name}", title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for label, key in (
        ("Name", "name"),
        ("ID", "id"),
        ("Path", "path"),
        ("Tracking URI", "trackingUri"),
        ("Location", "location"),
        ("Subscription", "subscriptionId"),
        ("Resource group", "resourceGroup"),
    ):
        table.add_row(label, str(details.get(key, "")))
    table.add_row("Found from", str(ctx.meta.get("trainyard.workspace_source", "")))
    console().print(table)
