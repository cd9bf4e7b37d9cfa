"""``trainyard experiments``: the experiments of a workspace.

Example::

    $ trainyard experiments list --all --json
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from trainyard.cli._common import JsonOpt, WorkspaceOpt, console, open_workspace, print_json

app = typer.Typer(
    help="List the experiments of the workspace.", no_args_is_help=True, rich_markup_mode="rich"
)


def register(root: typer.Typer) -> None:
    """Add ``trainyard experiments`` to ``root``.

    Example::

        register(app)
    """
    root.add_typer(app, name="experiments")


@app.command("list")
def list_experiments(
    ctx: typer.Context,
    include_archived: Annotated[
        bool, typer.Option("--all", "-a", help="Include archived experiments.")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List experiments by name with their run counts (top-level runs).

    Example: [bold]trainyard experiments list --all[/bold]
    """
    from trainyard.core.experiment import Experiment

    ws = open_workspace(ctx, workspace)
    experiments = Experiment.list(ws, view_type="All" if include_archived else "ActiveOnly")
    rows: list[dict[str, Any]] = [
        {
            "name": exp.name,
            "id": exp.id,
            "runs": sum(1 for _ in exp.get_runs()),
            "archived": exp.archived,
        }
        for exp in experiments
    ]
    if as_json:
        print_json(rows)
        return
    out = console()
    if not rows:
        hint = "" if include_archived else " (--all includes archived ones)"
        out.print(f"No experiments in workspace {ws.name}{hint}.")
        return
    from rich.table import Table

    table = Table(title=f"Experiments in {ws.name}", title_justify="left")
    table.add_column("Name", style="bold", no_wrap=True)
    table.add_column("ID", justify="right")
    table.add_column("Runs", justify="right")
    table.add_column("Archived")
    for row in rows:
        table.add_row(
            row["name"], str(row["id"]), str(row["runs"]), "yes" if row["archived"] else "no"
        )
    out.print(table)
