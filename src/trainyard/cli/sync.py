"""``trainyard sync``: send records left in local spools to their team server.

Example::

    $ trainyard sync                      # every remote workspace folder of this user
    $ trainyard sync /srv/trainyard/team  # a team server's own workspace folder (as its admin)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trainyard.cli._common import JsonOpt, print_json


def register(root: typer.Typer) -> None:
    """Add ``trainyard sync`` to ``root``.

    Example::

        register(app)
    """
    root.command("sync")(sync)


def sync(
    folders: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[FOLDER]...",
            help="Remote workspace folders to look in (default: every one under "
            "$TRAINYARD_HOME/remote).",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds to keep trying while the server is unreachable."),
    ] = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Send what runs logged while the team server was away (spooled records their processes
    could not send before they exited). Each record is stored once, however often it is sent.

    Example: [bold]trainyard sync[/bold]
    """
    from trainyard.core._sync import sync_spooled

    results = sync_spooled(folders or [], timeout=timeout)
    failed = [r for r in results if "error" in r]
    if as_json:
        print_json({"folders": results})
    elif not results:
        typer.echo("Nothing to send: no spooled records were left behind.")
    else:
        for r in results:
            where = f"{r.get('server', '?')} ({r.get('workspace', '?')})"
            if "error" in r:
                typer.echo(
                    f"{r['folder']}: not sent to {where}: {r['error']['message']} "
                    "The records stay spooled; run `trainyard sync` again.",
                    err=True,
                )
            else:
                typer.echo(
                    f"{r['folder']}: sent {r['records']} record(s) from {r['files']} spool file(s) "
                    f"to {where}."
                )
    if failed:
        raise typer.Exit(1)
