"""``trainyard compute``: the compute targets runs can be submitted to.

Example::

    $ trainyard compute list
    $ trainyard submit -c cpu-cluster train.py
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from trainyard.cli._common import JsonOpt, WorkspaceOpt, console, open_workspace, print_json

if TYPE_CHECKING:
    from trainyard.core.compute.target import ComputeTarget

app = typer.Typer(
    help="List the compute targets of the workspace.", no_args_is_help=True, rich_markup_mode="rich"
)


def register(root: typer.Typer) -> None:
    """Add ``trainyard compute`` to ``root``.

    Example::

        register(app)
    """
    root.add_typer(app, name="compute")


def target_summary(target: ComputeTarget) -> dict[str, Any]:
    """One row of ``compute list --json``: name, type, concurrency, GPUs, node range, VM size.

    Example::

        target_summary(ComputeTarget(ws, "local"))["maxConcurrentRuns"]   # e.g. 2
    """
    cfg = target.config
    return {
        "name": target.name,
        "type": target.type,
        "provisioningState": target.provisioning_state,
        "maxConcurrentRuns": target.max_concurrent_runs,
        "gpus": target.gpu_count,
        "vmSize": cfg.get("vm_size"),
        "minNodes": cfg.get("min_nodes"),
        "maxNodes": cfg.get("max_nodes"),
        "properties": dict(cfg),
    }


@app.command("list")
def list_targets(
    ctx: typer.Context, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """List compute targets: name, type, max concurrent runs, GPUs (local is always there).

    Example: [bold]trainyard compute list --json[/bold]
    """
    from trainyard.core.compute.target import ComputeTarget

    ws = open_workspace(ctx, workspace)
    rows = [target_summary(t) for t in ComputeTarget.list(ws)]
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"Compute targets in {ws.name}", title_justify="left")
    table.add_column("Name", style="bold", no_wrap=True)
    table.add_column("Type")
    table.add_column("Max concurrent runs", justify="right")
    table.add_column("GPUs", justify="right")
    table.add_column("Nodes", justify="right")
    table.add_column("VM size")
    table.add_column("State")
    for r in rows:
        nodes = "-" if r["maxNodes"] is None else f"{r['minNodes'] or 0}–{r['maxNodes']}"
        table.add_row(
            r["name"],
            r["type"],
            str(r["maxConcurrentRuns"]),
            str(r["gpus"]),
            nodes,
            r["vmSize"] or "-",
            r["provisioningState"],
        )
    console().print(table)
