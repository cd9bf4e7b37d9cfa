"""``trainyard service``: the web services of a workspace: deploy, list, show, logs, delete.

Example::

    $ trainyard service list
    $ trainyard service show chainer-mnist-1 --json
    $ trainyard service logs chainer-mnist-1 --lines 50
    $ trainyard service delete chainer-mnist-1 --yes
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from trainyard.cli._common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    fmt_time,
    iso_utc,
    open_workspace,
    print_json,
)

if TYPE_CHECKING:
    from trainyard.core.webservice import Webservice

app = typer.Typer(
    help="Deploy, list, inspect and delete web services.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

ServiceArg = Annotated[str, typer.Argument(metavar="NAME", help="The service name.")]


def register(root: typer.Typer) -> None:
    """Add ``trainyard service`` to ``root``.

    Example::

        register(app)
    """
    from trainyard.cli import service_deploy

    service_deploy.register(app)
    root.add_typer(app, name="service")


def service_json(service: Webservice) -> dict[str, Any]:
    """``service.serialize()`` with the live state and ISO UTC times; keys are never included.

    Example::

        service_json(Webservice(ws, "svc"))["state"]   # 'Healthy'
    """
    state = service.state
    data = service.serialize()
    data["state"] = state
    for key in ("createdTime", "updatedTime"):
        data[key] = iso_utc(data.get(key))
    op = data.get("lastOperation") or {}
    for key in ("startedTime", "endedTime"):
        op[key] = iso_utc(op.get(key))
    return data


@app.command("list")
def list_services(
    ctx: typer.Context, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """List services: name, type, state (checked now), scoring URI, models, auth, created.

    Example: [bold]trainyard service list --json[/bold]
    """
    from trainyard.core.webservice import Webservice

    ws = open_workspace(ctx, workspace)
    services = Webservice.list(ws)
    rows = [service_json(s) for s in services]
    if as_json:
        print_json(rows)
        return
    out = console()
    if not rows:
        out.print(f"No web services in workspace {ws.name}.")
        return
    from rich.table import Table

    table = Table(title=f"Web services in {ws.name}", title_justify="left")
    for column in ("Name", "Type", "State", "Scoring URI", "Models", "Auth", "Created"):
        table.add_column(column, no_wrap=column != "Models")
    for service, row in zip(services, rows, strict=True):
        table.add_row(
            row["name"],
            str(row["computeType"]),
            str(row["state"]),
            row["scoringUri"] or "-",
            ", ".join(row["models"]) or "-",
            "keys" if row["authEnabled"] else "off",
            fmt_time(service.created_time),
        )
    out.print(table)


@app.command("show")
def show(
    ctx: typer.Context, name: ServiceArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """Show one service: state, URIs, models, environment, resources, process, last operation.

    Example: [bold]trainyard service show chainer-mnist-1[/bold]
    """
    from trainyard.core.webservice import Webservice

    ws = open_workspace(ctx, workspace)
    data = service_json(Webservice(ws, name))
    if as_json:
        print_json(data)
        return
    out = console()
    op = data.get("lastOperation") or {}
    server = data.get("server") or {}
    limits = data.get("resourceLimits") or {}
    config = data.get("deploymentConfig") or {}
    resources = "-"
    if data["computeType"] == "ACI":
        resources = (
            f"{config.get('cpuCores')} CPU (pinned to {limits.get('cpuAffinity') or 'all CPUs'}), "
            f"{config.get('memoryInGB')} GB (RLIMIT_DATA per process)"
        )
    for key, value in (
        ("Name", data["name"]),
        ("Type", data["computeType"]),
        ("State", data["state"]),
        ("Scoring URI", data.get("scoringUri") or "-"),
        ("Swagger URI", data.get("swaggerUri") or "-"),
        ("Auth", "Bearer keys (see Webservice.get_keys())" if data["authEnabled"] else "off"),
        ("Models", ", ".join(data["models"]) or "-"),
        ("Entry script", data.get("entryScript") or "-"),
        ("Environment", data.get("environment") or "-"),
        ("Python", data.get("python") or "-"),
        ("Workers", str(config.get("workerCount", 1))),
        ("Resources", resources),
        ("Process", f"pid {server.get('pid')} on {server.get('host')}" if server else "-"),
        ("Generation", str(data.get("generation") or "-")),
        ("Description", data.get("description") or "-"),
        ("Tags", ", ".join(f"{k}={v}" for k, v in sorted(data["tags"].items())) or "-"),
        ("Created", data.get("createdTime") or "-"),
        ("Last operation", f"{op.get('type')} {op.get('status')} ({op.get('endedTime') or '…'})"),
    ):
        out.print(f"{key + ':':<16}{value}")
    if op.get("error"):
        out.print(f"{'Error:':<16}{op['error']}")


@app.command("logs")
def logs(
    ctx: typer.Context,
    name: ServiceArg,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=1, help="How many lines from the end.")
    ] = 200,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the end of a service's log: deployment steps, init() output, one line per request,
    tracebacks.

    Example: [bold]trainyard service logs chainer-mnist-1 -n 50[/bold]
    """
    from trainyard.core.webservice import Webservice

    ws = open_workspace(ctx, workspace)
    text = Webservice(ws, name).get_logs(num_lines=lines)
    if as_json:
        print_json({"name": name, "lines": text.splitlines()})
        return
    typer.echo(text, nl=not text.endswith("\n") and bool(text))


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: ServiceArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a service and remove it (its process, files and record); the models stay registered.

    Example: [bold]trainyard service delete chainer-mnist-1 --yes[/bold]
    """
    from trainyard.core.webservice import Webservice

    ws = open_workspace(ctx, workspace)
    service = Webservice(ws, name)
    if not yes:
        typer.confirm(f"Delete web service {name!r} of workspace {ws.name!r}?", abort=True)
    service.delete()
    if as_json:
        print_json({"name": name, "deleted": True})
        return
    console(stderr=True).print(f"Deleted web service {name}.")
