"""``trainyard runs``: list runs, show one, read its metrics and logs, download its files, cancel it.

Example::

    $ trainyard runs list --experiment mnist --status Failed
    $ trainyard runs logs mnist_1714000000_1a2b3c4d -f
    $ trainyard runs metrics mnist_1714000000_1a2b3c4d --name loss --points --json
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trainyard._lifecycle import RunStatus
from trainyard.cli._common import (
    JsonOpt,
    WorkspaceOpt,
    cancel_and_report,
    console,
    dumps,
    duration_seconds,
    fmt_duration,
    fmt_time,
    fmt_value,
    iso_utc,
    open_workspace,
    print_json,
)

if TYPE_CHECKING:
    from rich.table import Table

    from trainyard.core.run import Run
    from trainyard.core.workspace import Workspace

app = typer.Typer(
    help="List runs, show one, read its metrics and logs, download its files, cancel it.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

RunIdArg = Annotated[
    str, typer.Argument(metavar="RUN_ID", help="The run id (see `trainyard runs list`).")
]

_STATUS_STYLE = {
    "Completed": "green",
    "Failed": "red",
    "Canceled": "yellow",
    "CancelRequested": "yellow",
    "NotResponding": "red",
    "Running": "cyan",
}
_FILES_SHOWN = 50


def register(root: typer.Typer) -> None:
    """Add ``trainyard runs`` to ``root`` (with ``runs logs`` / ``runs download`` from
    :mod:`trainyard.cli.runs_files`).

    Example::

        register(app)
    """
    from trainyard.cli import runs_files

    runs_files.attach(app)
    root.add_typer(app, name="runs")


def get_run(ws: Workspace, run_id: str) -> Run:
    from trainyard.core.run import Run

    return Run.get(ws, run_id)


def run_summary(run: Run) -> dict[str, Any]:
    """One row of ``runs list --json``: ids, status, times (ISO UTC), duration, tags.

    Example::

        run_summary(Run.get(ws, "mnist_1714000000_1a2b3c4d"))["status"]   # 'Completed'
    """
    info = run.get_info(
        refresh=False
    )  # the row the run was loaded with: no extra query per listed run
    return {
        "runId": info.run_id,
        "number": info.number,
        "experiment": info.experiment_name,
        "type": info.run_type,
        "status": info.status,
        "displayName": info.display_name or info.run_id,
        "parentRunId": info.parent_run_id,
        "target": info.target or "local",
        "createdTimeUtc": iso_utc(info.created_at),
        "startTimeUtc": iso_utc(info.start_time),
        "endTimeUtc": iso_utc(info.end_time),
        "durationSeconds": duration_seconds(info.start_time, info.end_time),
        "tags": dict(info.tags),
    }


def _status_text(status: str) -> Any:
    from rich.text import Text

    return Text(status, style=_STATUS_STYLE.get(status, ""))


# -- list -------------------------------------------------------------------------------------
@app.command("list")
def list_runs(
    ctx: typer.Context,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment",
            "-e",
            metavar="NAME",
            help="Only runs of this experiment (default: all active ones).",
        ),
    ] = None,
    status: Annotated[
        list[RunStatus] | None,
        typer.Option(
            "--status",
            "-s",
            metavar="STATUS",
            case_sensitive=False,
            help="Only runs in this status (any case); repeat for several: "
            + ", ".join(s.value for s in RunStatus)
            + ".",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, metavar="N", help="Show at most N runs (0: all).")
    ] = 50,
    include_children: Annotated[
        bool, typer.Option("--include-children", help="Include child runs (HyperDrive trials …).")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first: id, number, experiment, type, status, start, duration.

    Example: [bold]trainyard runs list -e mnist --status Failed --limit 10[/bold]
    """
    import heapq
    from itertools import islice

    from trainyard.core.experiment import Experiment
    from trainyard.core.run import Run
    from trainyard.exceptions import ExperimentNotFound

    ws = open_workspace(ctx, workspace)
    if experiment is not None:
        experiments = Experiment.list(ws, experiment_name=experiment, view_type="All")
        if not experiments:
            names = sorted(e.name for e in Experiment.list(ws, view_type="All"))
            raise ExperimentNotFound(
                f"Workspace {ws.name!r} has no experiment {experiment!r}. Its experiments: "
                f"{', '.join(names) or '(none)'}.",
                name=experiment,
            )
    else:
        experiments = Experiment.list(ws)
    wanted = {s.value for s in status or ()}
    streams = [Run.list(e, include_children=include_children) for e in experiments]
    # Each stream is newest first, so a lazy merge reads only as many pages as the limit needs.
    merged = heapq.merge(*streams, key=lambda r: r.get_info(refresh=False).created_at, reverse=True)
    selected = (r for r in merged if not wanted or r.get_info(refresh=False).status in wanted)
    rows = [run_summary(r) for r in islice(selected, limit or None)]
    if as_json:
        print_json(rows)
        return
    out = console()
    if not rows:
        out.print(f"No runs in workspace {ws.name} match.")
        return
    from rich.table import Table

    cells = [
        {
            "Run ID": r["runId"],
            "#": str(r["number"]),
            "Experiment": r["experiment"],
            "Type": r["type"],
            "Status": r["status"],
            "Start": _local(r["startTimeUtc"]),
            "Duration": fmt_duration(r["durationSeconds"]),
        }
        for r in rows
    ]
    widths = {k: max(len(k), *(len(c[k]) for c in cells)) for k in cells[0]}
    # Ids and statuses are copied and grepped, so they are never cut: a narrow terminal loses
    # the Type column first, then puts the start time on two lines.
    if sum(widths.values()) + 2 * len(widths) > out.width:
        del widths["Type"]
    if sum(widths.values()) + 2 * len(widths) > out.width:
        for c in cells:
            c["Start"] = c["Start"].replace(" ", "\n")
    table = Table(
        title=f"Runs in {ws.name}",
        title_justify="left",
        box=None,
        padding=(0, 1),
        pad_edge=False,
    )
    for key in widths:
        if key in ("Run ID", "Status"):
            table.add_column(key, min_width=widths[key], style="bold" if key == "Run ID" else "")
        else:
            table.add_column(key, justify="right" if key in ("#", "Duration") else "left")
    for c in cells:
        table.add_row(*(_status_text(c[k]) if k == "Status" else c[k] for k in widths))
    out.print(table)


def _local(iso: str | None) -> str:
    if iso is None:
        return "-"
    import datetime as dt

    return fmt_time(
        dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()
    )


# -- show -------------------------------------------------------------------------------------
@app.command("show")
def show(
    ctx: typer.Context, run_id: RunIdArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """Show one run: status, times, tags, properties, run definition, error, files.

    Example: [bold]trainyard runs show mnist_1714000000_1a2b3c4d --json[/bold]
    """
    ws = open_workspace(ctx, workspace)
    run = get_run(ws, run_id)
    details = run.get_details()
    files = run.get_file_names()
    if as_json:
        print_json(
            {
                **details,
                "experiment": run.experiment.name,
                "number": run.number,
                "type": run.type,
                "files": files,
            }
        )
        return
    _print_details(run, details, files)


def _kv_table(title: str, items: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(
        title=title, title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0)
    )
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in items.items():
        table.add_row(key, value)
    return table


def _print_details(run: Run, details: dict[str, Any], files: list[str]) -> None:
    from rich.json import JSON

    out = console()
    info = run.get_info(refresh=False)
    head: dict[str, Any] = {"Run ID": details["runId"]}
    if details.get("displayName") and details["displayName"] != details["runId"]:
        head["Display name"] = details["displayName"]
    head.update(
        {
            "Experiment": run.experiment.name,
            "Number": str(run.number),
            "Type": run.type,
            "Status": _status_text(details["status"]),
            "Target": str(details.get("target")),
            "Submitted by": str(details.get("submittedBy") or "-"),
        }
    )
    if info.parent_run_id:
        head["Parent run"] = info.parent_run_id
    if info.description:
        head["Description"] = info.description
    head["Start"] = fmt_time(info.start_time)
    head["End"] = fmt_time(info.end_time)
    head["Duration"] = fmt_duration(duration_seconds(info.start_time, info.end_time))
    out.print(_kv_table(f"Run {details['runId']}", head))
    history = details.get("statusHistory") or []
    if history:
        out.print(
            "History: " + " → ".join(f"{h['status']} ({_local(h['timeUtc'])})" for h in history)
        )
    for title, key in (("Tags", "tags"), ("Properties", "properties")):
        values = details.get(key) or {}
        out.print()
        if values:
            out.print(_kv_table(title, {k: str(v) for k, v in sorted(values.items())}))
        else:
            out.print(f"{title}: (none)")
    definition = details.get("runDefinition") or {}
    if definition:
        out.print("\nRun definition:")
        out.print(JSON(dumps(definition)))
    error = details.get("error")
    if error:
        out.print()
        out.print("Error:", style="bold red")
        if isinstance(error, dict):
            for key, value in error.items():
                out.print(
                    f"  {key}: {value}" if key != "traceback" else f"  traceback:\n{value}",
                    style="red",
                )
        else:
            out.print(f"  {error}", style="red")
    for warning in details.get("warnings") or []:
        out.print(f"Warning: {warning}", style="yellow")
    out.print()
    if not files:
        out.print("Files: (none)")
        return
    out.print(f"Files ({len(files)}):")
    for name in files[:_FILES_SHOWN]:
        out.print(f"  {name}")
    if len(files) > _FILES_SHOWN:
        out.print(f"  … and {len(files) - _FILES_SHOWN} more (use --json for all)")


# -- metrics ----------------------------------------------------------------------------------
def summarize_metric(value: Any) -> dict[str, Any]:
    """Count, last, min and max of a ``get_metrics()`` value (a bare value, a list or a table).

    Min and max cover the numbers in the value, NaN left out; they are ``None`` when there are
    none. A table (``log_row``/``log_table``) counts its rows and its last row is the ``last``.

    Example::

        summarize_metric([0.5, 0.25, float("nan")])   # {'count': 3, 'last': nan, 'min': 0.25, 'max': 0.5}
    """
    if isinstance(value, dict):
        columns = {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        rows = max((len(v) for v in columns.values()), default=0)
        last = {k: v[-1] for k, v in columns.items() if v and len(v) == rows}
        return {"count": rows, "last": last, "min": None, "max": None}
    values = value if isinstance(value, list) else [value]
    numbers = [
        v
        for v in values
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and not (isinstance(v, float) and math.isnan(v))
    ]
    return {
        "count": len(values),
        "last": values[-1] if values else None,
        "min": min(numbers) if numbers else None,
        "max": max(numbers) if numbers else None,
    }


@app.command("metrics")
def metrics(
    ctx: typer.Context,
    run_ids: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN_ID...",
            help="One run id, or several to compare their metrics side by side.",
            show_default=False,
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", "-m", metavar="NAME", help="Only this metric.")
    ] = None,
    points: Annotated[
        bool, typer.Option("--points", help="Every point with its step and timestamp.")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a run's metrics: count/last/min/max per metric, or every point with --points.
    With several runs: a row per metric, a column per run (last values).

    --json prints run.get_metrics() (with --points: {name: [{step, timestamp, value}]}); with
    several runs {run_id: that, ...}.
    In JSON, NaN, Infinity and -Infinity are written as the strings "NaN", "Infinity", "-Infinity".

    Example: [bold]trainyard runs metrics mnist_1714000000_1a2b3c4d --name loss --points[/bold]
    """
    from trainyard.exceptions import NotFoundError

    ws = open_workspace(ctx, workspace)
    if len(set(run_ids)) > 1:
        from trainyard.cli.runs_compare import compare

        compare(ws, run_ids, name, points, as_json)
        return
    run_id = run_ids[0]
    run = get_run(ws, run_id)
    values = run.get_metrics(name=name)
    if name is not None and name not in values:
        known = sorted(run.get_metrics())
        raise NotFoundError(
            f"Run {run_id!r} has no metric {name!r}. Its metrics: {', '.join(known) or '(none)'}.",
            run_id=run_id,
            name=name,
        )
    if points:
        series = {n: run.get_metric_points(n) for n in values}
        if as_json:
            print_json(series)
            return
        print_points(run_id, series)
        return
    if as_json:
        print_json(values)
        return
    out = console()
    if not values:
        out.print(f"Run {run_id} has no metrics.")
        return
    from rich.table import Table

    table = Table(title=f"Metrics of {run_id}", title_justify="left")
    table.add_column("Metric", style="bold", overflow="fold")
    table.add_column("Count", justify="right")
    table.add_column("Last", justify="right")
    table.add_column("Min", justify="right")
    table.add_column("Max", justify="right")
    for metric_name, value in values.items():
        s = summarize_metric(value)
        table.add_row(
            metric_name,
            str(s["count"]),
            fmt_value(s["last"]),
            "-" if s["min"] is None else fmt_value(s["min"]),
            "-" if s["max"] is None else fmt_value(s["max"]),
        )
    out.print(table)


def print_points(run_id: str, series: dict[str, Any]) -> None:
    """Print every point of each metric in ``series`` (``{name: [MetricPoint]}``) as a table."""
    from rich.table import Table

    out = console()
    if not series:
        out.print(f"Run {run_id} has no metrics.")
        return
    for metric_name, pts in series.items():
        table = Table(title=f"{metric_name} ({len(pts)} points)", title_justify="left")
        table.add_column("Step", justify="right")
        table.add_column("Timestamp", no_wrap=True)
        table.add_column("Value", justify="right")
        for p in pts:
            table.add_row(
                str(p.step), fmt_time(p.timestamp, ms=True), fmt_value(p.value, limit=120)
            )
        out.print(table)


# -- download ---------------------------------------------------------------------------------
@app.command("cancel")
def cancel(
    ctx: typer.Context, run_id: RunIdArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """Cancel a run: it goes to CancelRequested, then Canceled once its process has stopped.

    Exits 0 when the cancel was accepted, 1 when the run had already finished.
    --json prints {"runId", "status", "canceled"}.

    Example: [bold]trainyard runs cancel mnist_1714000000_1a2b3c4d[/bold]
    """
    ws = open_workspace(ctx, workspace)
    cancel_and_report(get_run(ws, run_id), run_id, "run", as_json)
