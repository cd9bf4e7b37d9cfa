"""The ``trainyard`` command line: a thin layer of typer commands over the public API.

One module per command group; each exposes ``register(root)``, which adds its group (or its
top-level commands) to the root app. To add a group (``env``, ``models``, ``sweep``, ``service``,
``submit``): write ``trainyard/cli/<group>.py`` with an ``app = typer.Typer(...)`` and a
``register`` like the ones here, keep heavy imports inside the command bodies, and list the
module in :data:`COMMAND_MODULES`. To add ``runs logs`` or ``runs cancel``, decorate a function with
``@app.command("logs")`` in ``trainyard/cli/runs.py``.

Example::

    $ trainyard workspace create demo
    $ trainyard runs list --status Failed --json
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Annotated

import typer

from trainyard._version import __version__
from trainyard.cli._common import META_WORKSPACE, TrainyardGroup, WorkspaceOpt

#: Modules whose ``register(app)`` adds commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "trainyard.cli.workspace",
    "trainyard.cli.experiments",
    "trainyard.cli.runs",
    "trainyard.cli.submit",
    "trainyard.cli.env",
    "trainyard.cli.models",
    "trainyard.cli.sweep",
    "trainyard.cli.compute",
    "trainyard.cli.service",
    "trainyard.cli.server",
    "trainyard.cli.ui",
    "trainyard.cli.accounts",
    "trainyard.cli.sync",
)

app = typer.Typer(
    name="trainyard",
    cls=TrainyardGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"trainyard {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """trainyard: experiments, runs and metrics of a self-hosted ML workspace.

    Commands find the workspace from [bold]--workspace/-w PATH[/bold], else
    [bold]$TRAINYARD_WORKSPACE[/bold], else .trainyard/config.json in the current folder or a parent.

    Example: [bold]trainyard workspace create demo && trainyard runs list[/bold]
    """
    ctx.meta[META_WORKSPACE] = workspace


def register_all(root: typer.Typer, modules: Sequence[str] = COMMAND_MODULES) -> None:
    """Import each command module and let it add its commands to ``root``.

    Example::

        register_all(app, ["trainyard.cli.runs"])
    """
    for name in modules:
        importlib.import_module(name).register(root)


register_all(app)


def main() -> None:
    """Console-script entry point (``trainyard = "trainyard.cli:main"``).

    Example::

        $ trainyard --version
    """
    app(prog_name="trainyard")


__all__ = ["COMMAND_MODULES", "app", "main", "register_all"]
