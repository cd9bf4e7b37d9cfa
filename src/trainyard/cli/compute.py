"""``trainyard compute``: the compute targets runs can be submitted to: create a cluster (local
processes or a Ray cluster trainyard starts), attach a running Ray cluster, list, show its status,
change its scale, delete.

Example::

    $ trainyard compute create cpu-cluster --vm-size STANDARD_D2_V2 --max-nodes 4 --backend ray --wait
    $ trainyard compute show cpu-cluster --json
    $ trainyard compute update cpu-cluster --min-nodes 1
    $ trainyard compute attach theirs --address 10.0.0.5:6379 --token "$RAY_TOKEN"
    $ trainyard compute list
    $ trainyard compute delete cpu-cluster --yes
    $ trainyard submit -c cpu-cluster train.py
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from trainyard.cli._common import JsonOpt, WorkspaceOpt, console, open_workspace, print_json

if TYPE_CHECKING:
    from trainyard.core.compute.target import ComputeTarget

app = typer.Typer(
    help="Create, attach, list, inspect, rescale and delete compute targets.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The compute target's name.")]
MinNodesOpt = Annotated[
    int | None, typer.Option("--min-nodes", help="Worker nodes kept even when idle.")
]
MaxNodesOpt = Annotated[
    int | None, typer.Option("--max-nodes", help="Most worker nodes the cluster scales to.")
]
IdleOpt = Annotated[
    int | None,
    typer.Option(
        "--idle-seconds", help="Seconds a node stays idle before it is removed (v1: 1800)."
    ),
]


def register(root: typer.Typer) -> None:
    """Add ``trainyard compute`` to ``root``.

    Example::

        register(app)
    """
    root.add_typer(app, name="compute")


def target_summary(target: ComputeTarget) -> dict[str, Any]:
    """One row of ``compute list --json``: name, type, backend, state, concurrency, GPUs, node
    range, VM size, the nodes alive now on a Ray cluster (``None`` elsewhere).

    Example::

        target_summary(ComputeTarget(ws, "local"))["maxConcurrentRuns"]   # e.g. 2
    """
    cfg = target.config
    state = target.provisioning_state
    nodes = None
    if target.backend == "ray" and state == "Succeeded":
        nodes = target.get_status().serialize().get("current_node_count")
    return {
        "name": target.name,
        "type": target.type,
        "backend": target.backend,
        "provisioningState": state,
        "maxConcurrentRuns": target.max_concurrent_runs,
        "gpus": target.gpu_count,
        "vmSize": cfg.get("vm_size"),
        "minNodes": cfg.get("min_nodes"),
        "maxNodes": cfg.get("max_nodes"),
        "currentNodes": nodes,
        "properties": _public_config(cfg),
    }


def _public_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` without an inline Ray token (it is a secret; a token file's path is fine)."""
    out = dict(cfg)
    if isinstance(out.get("ray"), dict) and "token" in out["ray"]:
        out["ray"] = {**out["ray"], "token": "***"}
    return out


@app.command("list")
def list_targets(
    ctx: typer.Context, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """List compute targets: name, type, backend, state, max concurrent runs, GPUs, nodes (local
    is always there).

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
    table.add_column("Backend")
    table.add_column("Max concurrent runs", justify="right")
    table.add_column("GPUs", justify="right")
    table.add_column("Nodes", justify="right")
    table.add_column("VM size")
    table.add_column("State")
    for r in rows:
        nodes = "-" if r["maxNodes"] is None else f"{r['minNodes'] or 0}–{r['maxNodes']}"
        if r["currentNodes"] is not None:
            nodes = f"{r['currentNodes']} ({nodes})"
        table.add_row(
            r["name"],
            r["type"],
            r["backend"],
            str(r["maxConcurrentRuns"]),
            str(r["gpus"]),
            nodes,
            r["vmSize"] or "-",
            r["provisioningState"],
        )
    console().print(table)


def _print_status(name: str, status: dict[str, Any]) -> None:
    counts = status.get("node_state_counts") or {}
    scale = status.get("scale_settings") or {}
    out = console()
    out.print(f"Compute target {name}: {status.get('provisioning_state')}")
    rows = [
        ("Backend", status.get("backend", "local")),
        ("Allocation", status.get("allocation_state")),
        ("Nodes", f"{status.get('current_node_count')} (target {status.get('target_node_count')})"),
        (
            "Node states",
            ", ".join(f"{k.removesuffix('NodeCount')} {v}" for k, v in counts.items()),
        ),
        (
            "Scale",
            f"{scale.get('minimum_node_count')}–{scale.get('maximum_node_count')} nodes, idle "
            f"{scale.get('node_idle_time_before_scale_down')} s before scale-down",
        ),
        ("VM size", status.get("vm_size") or "-"),
        ("Max concurrent runs", status.get("max_concurrent_runs")),
    ]
    if status.get("dashboard_url"):
        rows.append(("Dashboard", status["dashboard_url"]))
    for label, value in rows:
        out.print(f"  {label + ':':<21}{value}")
    for err in status.get("errors") or []:
        out.print(f"  Error {err.get('code')}: {err.get('message')}")


@app.command("show")
def show(
    ctx: typer.Context, name: NameArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """Show a target's status: provisioning and allocation state, nodes by state, scale settings
    (live from the cluster on Ray).

    Example: [bold]trainyard compute show cpu-cluster --json[/bold]
    """
    from trainyard.core.compute.target import ComputeTarget

    ws = open_workspace(ctx, workspace)
    target = ComputeTarget(ws, name)
    status = target.get_status().serialize()
    if as_json:
        print_json({"name": target.name, "type": target.type, "status": status})
        return
    _print_status(target.name, status)


@app.command("create")
def create(
    ctx: typer.Context,
    name: NameArg,
    vm_size: Annotated[
        str,
        typer.Option("--vm-size", help="Worker node shape, e.g. STANDARD_D2_V2, STANDARD_NC6."),
    ] = "STANDARD_NC6",
    min_nodes: Annotated[int, typer.Option("--min-nodes", help="Nodes kept when idle.")] = 0,
    max_nodes: Annotated[int, typer.Option("--max-nodes", help="Most nodes.")] = 4,
    idle_seconds: Annotated[
        int, typer.Option("--idle-seconds", help="Idle seconds before a node is removed.")
    ] = 1800,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="ray (a Ray cluster on this machine) or local (processes); default "
            "$TRAINYARD_AMLCOMPUTE_BACKEND, else local.",
            show_default=False,
        ),
    ] = None,
    runs_per_node: Annotated[
        int | None, typer.Option("--runs-per-node", help="Runs one Ray node takes at once (1).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the cluster has its --min-nodes.")
    ] = False,
    timeout_minutes: Annotated[
        float, typer.Option("--timeout-minutes", help="How long --wait waits.")
    ] = 25,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create (or re-create) an AmlCompute target. With --backend ray trainyard starts a Ray
    cluster on this machine; re-creating a running one rescales it, a dead one restarts.

    Example: [bold]trainyard compute create cpu-cluster --vm-size STANDARD_D2_V2 --max-nodes 2
    --backend ray --wait[/bold]
    """
    from trainyard.core.compute.target import AmlCompute, ComputeTarget

    ws = open_workspace(ctx, workspace)
    cfg = AmlCompute.provisioning_configuration(
        vm_size=vm_size,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        idle_seconds_before_scaledown=idle_seconds,
        backend=backend.lower() if backend else None,
        runs_per_node=runs_per_node,
    )
    target = ComputeTarget.create(ws, name, cfg)
    if wait:
        target.wait_for_completion(show_output=not as_json, timeout_in_minutes=timeout_minutes)
    _report(target, as_json, "Created")


def _report(target: ComputeTarget, as_json: bool, verb: str) -> None:
    status = target.get_status().serialize()
    if as_json:
        print_json({"name": target.name, "type": target.type, "status": status})
        return
    console().print(
        f"{verb} compute target {target.name} ({target.type}, backend {target.backend}): "
        f"{status.get('provisioning_state')}, {status.get('current_node_count')} node(s) now."
    )


@app.command("attach")
def attach(
    ctx: typer.Context,
    name: NameArg,
    address: Annotated[
        str | None,
        typer.Option("--address", help="The cluster's GCS address, HOST:PORT.", show_default=False),
    ] = None,
    dashboard_url: Annotated[
        str | None,
        typer.Option(
            "--dashboard-url",
            help="Its dashboard (default http://HOST:8265 from --address).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Its auth token (RAY_AUTH_MODE=token), if it has one.",
            envvar="TRAINYARD_RAY_TOKEN",
            show_default=False,
        ),
    ] = None,
    max_concurrent_runs: Annotated[
        int | None,
        typer.Option(
            "--max-concurrent-runs", help="Runs at once (default: its nodes' run slots now, ≥ 1)."
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Attach a running Ray cluster as a target (checked: its dashboard must answer and take the
    token).

    Example: [bold]trainyard compute attach theirs --address 10.0.0.5:6379 --token $T[/bold]
    """
    from trainyard.core.compute.ray_target import RayCompute
    from trainyard.core.compute.target import ComputeTarget

    ws = open_workspace(ctx, workspace)
    cfg = RayCompute.attach_configuration(
        address=address,
        dashboard_url=dashboard_url,
        token=token,
        max_concurrent_runs=max_concurrent_runs,
    )
    _report(ComputeTarget.attach(ws, name, cfg), as_json, "Attached")


@app.command("update")
def update(
    ctx: typer.Context,
    name: NameArg,
    min_nodes: MinNodesOpt = None,
    max_nodes: MaxNodesOpt = None,
    idle_seconds: IdleOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a cluster's scale settings (v1's AmlCompute.update); a Ray cluster's autoscaler
    picks them up within seconds. Attached clusters are refused.

    Example: [bold]trainyard compute update cpu-cluster --min-nodes 1 --max-nodes 8[/bold]
    """
    from trainyard.core.compute.target import ComputeTarget
    from trainyard.exceptions import ComputeTargetException

    ws = open_workspace(ctx, workspace)
    target = ComputeTarget(ws, name)
    updater = getattr(target, "update", None)
    if updater is None:
        raise ComputeTargetException(
            f"Compute target {name!r} ({target.type}) has no scale settings to update; only "
            "AmlCompute targets do.",
            target=name,
        )
    updater(min_nodes=min_nodes, max_nodes=max_nodes, idle_seconds_before_scaledown=idle_seconds)
    _report(target, as_json, "Updated")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a target: a Ray cluster trainyard started is stopped (by PID) and its folder
    removed; an attached cluster keeps running, only its record goes.

    Example: [bold]trainyard compute delete cpu-cluster --yes[/bold]
    """
    from trainyard.core.compute.target import ComputeTarget

    ws = open_workspace(ctx, workspace)
    target = ComputeTarget(ws, name)
    if not yes:
        typer.confirm(f"Delete compute target {name!r} of workspace {ws.name!r}?", abort=True)
    target.delete()
    if as_json:
        print_json({"name": name, "deleted": True})
        return
    console().print(f"Deleted compute target {name}.")
