"""``trainyard sweep``: HyperDrive sweeps: list them, show one's children, its best run; resume, cancel.

Example::

    $ trainyard sweep list --experiment chainer-mnist
    $ trainyard sweep show HD_5c14f9a2772c47b4908b3b294754cae1 --top 3
    $ trainyard sweep best HD_5c14f9a2772c47b4908b3b294754cae1 --json
    $ trainyard sweep resume HD_5c14f9a2772c47b4908b3b294754cae1
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trainyard.cli._common import (
    JsonOpt,
    WorkspaceOpt,
    cancel_and_report,
    console,
    duration_seconds,
    fmt_duration,
    fmt_time,
    fmt_value,
    iso_utc,
    open_workspace,
    print_json,
)

if TYPE_CHECKING:
    from rich.text import Text

    from trainyard.core.workspace import Workspace
    from trainyard.train.hyperdrive.run import HyperDriveRun

app = typer.Typer(
    help="HyperDrive sweeps: list them, show one's children and best run, resume or cancel one.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

SweepIdArg = Annotated[
    str,
    typer.Argument(
        metavar="HD_ID", help="The HyperDrive run id (HD_…; see `trainyard sweep list`)."
    ),
]

_STATUS_STYLE = {
    "Completed": "green",
    "Failed": "red",
    "Canceled": "yellow",
    "CancelRequested": "yellow",
    "Running": "cyan",
}


def register(root: typer.Typer) -> None:
    """Add ``trainyard sweep`` to ``root``.

    Example::

        register(app)
    """
    from trainyard.cli import sweep_submit

    sweep_submit.register(app)
    root.add_typer(app, name="sweep")


# -- reading a sweep --------------------------------------------------------------------------
def get_sweep(ws: Workspace, run_id: str) -> HyperDriveRun:
    """The HyperDrive run ``run_id``; ``RunNotFound`` if there is no such run, ``ValidationError``
    if it is another kind of run (a child run's message names its sweep).

    Example::

        get_sweep(ws, "HD_5c14…").get_status()   # 'Completed'
    """
    from trainyard.core.run import Run
    from trainyard.exceptions import ValidationError
    from trainyard.train.hyperdrive.run import HyperDriveRun

    run = Run.get(ws, run_id)
    if isinstance(run, HyperDriveRun):
        return run
    parent = run.get_info(refresh=False).parent_run_id
    hint = f" It is a child run of {parent}." if parent else ""
    raise ValidationError(
        f"Run {run_id!r} is a {run.type} run, not a HyperDrive sweep.{hint} "
        "See `trainyard sweep list`.",
        run_id=run_id,
        type=run.type,
    )


def _loads(raw: str | None, default: Any = None) -> Any:
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _child_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ``get_children_sorted_by_primary_metric`` row with its hyperparameters as a dict."""
    return {
        "runId": row["run_id"],
        "status": row["status"],
        "hyperparameters": _loads(row["hyperparameters"], {}),
        "bestPrimaryMetric": row["best_primary_metric"],
    }


def sweep_config(run: HyperDriveRun) -> dict[str, Any]:
    """A sweep's configuration, read from the parent's tags and run definition (JSON-able).

    Example::

        sweep_config(run)["primaryMetric"]   # {'name': 'Accuracy', 'goal': 'maximize'}
    """
    info = run.get_info(refresh=False)
    tags = info.tags
    definition = info.definition or {}
    duration = _loads(tags.get("max_duration_minutes"))
    return {
        "sampling": _loads(tags.get("generator_config"), {}),
        "primaryMetric": _loads(tags.get("primary_metric_config"), {}),
        "policy": _loads(tags.get("policy_config")) or {"name": "Default"},
        "maxTotalRuns": _loads(tags.get("max_total_jobs")),
        "maxConcurrentRuns": _loads(tags.get("max_concurrent_jobs")),
        "maxDurationMinutes": duration,
        "resumeFrom": _loads(info.properties.get("resume_from")) or [],
        "resumeChildRuns": _loads(info.properties.get("resume_child_runs")) or [],
        "template": {
            "script": definition.get("script"),
            "arguments": definition.get("arguments") or [],
            "target": definition.get("target") or "local",
        },
    }


def sweep_summary(run: HyperDriveRun, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One row of ``sweep list --json``: id, experiment, status, times, children, best child.

    ``rows`` are the sorted children when the caller has them already.

    Example::

        sweep_summary(run)["bestMetric"]   # 0.881
    """
    info = run.get_info(refresh=False)
    if rows is None:
        rows = [_child_row(r) for r in run.get_children_sorted_by_primary_metric()]
    primary = _loads(info.tags.get("primary_metric_config"), {})
    best = next((r for r in rows if r["bestPrimaryMetric"] is not None), None)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {
        "runId": info.run_id,
        "experiment": info.experiment_name,
        "status": info.status,
        "createdTimeUtc": iso_utc(info.created_at),
        "startTimeUtc": iso_utc(info.start_time),
        "endTimeUtc": iso_utc(info.end_time),
        "durationSeconds": duration_seconds(info.start_time, info.end_time),
        "children": len(rows),
        "childStatuses": dict(sorted(counts.items())),
        "maxTotalRuns": _loads(info.tags.get("max_total_jobs")),
        "primaryMetric": primary.get("name"),
        "goal": primary.get("goal"),
        "bestRunId": None if best is None else best["runId"],
        "bestMetric": None if best is None else best["bestPrimaryMetric"],
    }


def _status_text(status: str) -> Text:
    from rich.text import Text

    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _hp_text(hp: Any) -> str:
    if isinstance(hp, dict):
        return " ".join(f"{k} {v}" for k, v in hp.items())
    return "" if hp is None else str(hp)


# -- list -------------------------------------------------------------------------------------
@app.command("list")
def list_sweeps(
    ctx: typer.Context,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment",
            "-e",
            metavar="NAME",
            help="Only sweeps of this experiment (default: all active experiments).",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", "-n", min=0, metavar="N", help="Show at most N sweeps (0: all)."),
    ] = 50,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List HyperDrive sweeps, newest first: status, children, best primary metric.

    Example: [bold]trainyard sweep list -e chainer-mnist --json[/bold]
    """
    import heapq
    from itertools import islice

    from trainyard.core.experiment import Experiment
    from trainyard.core.run import Run
    from trainyard.exceptions import ExperimentNotFound
    from trainyard.train.hyperdrive._submit import HYPERDRIVE_RUN_TYPE
    from trainyard.train.hyperdrive.run import HyperDriveRun

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
    streams = [Run.list(e, type=HYPERDRIVE_RUN_TYPE) for e in experiments]
    merged = heapq.merge(*streams, key=lambda r: r.get_info(refresh=False).created_at, reverse=True)
    sweeps = [r for r in islice(merged, limit or None) if isinstance(r, HyperDriveRun)]
    rows = [sweep_summary(r) for r in sweeps]
    if as_json:
        print_json(rows)
        return
    out = console()
    if not rows:
        out.print(f"No HyperDrive sweeps in workspace {ws.name}.")
        return
    from rich.table import Table

    table = Table(
        title=f"HyperDrive sweeps in {ws.name}",
        title_justify="left",
        box=None,
        padding=(0, 1),
        pad_edge=False,
    )
    table.add_column("Sweep ID", style="bold", no_wrap=True)
    table.add_column("Experiment")
    table.add_column("Status", no_wrap=True)
    table.add_column("Children", justify="right")
    table.add_column("Best metric", justify="right")
    table.add_column("Best child", no_wrap=True)
    table.add_column("Start")
    table.add_column("Duration", justify="right")
    for r in rows:
        best = (
            "-"
            if r["bestMetric"] is None
            else f"{r['primaryMetric']}={fmt_value(r['bestMetric'])} ({r['goal'][:3]})"
        )
        created = (
            f"{r['children']}/{r['maxTotalRuns']}" if r["maxTotalRuns"] else str(r["children"])
        )
        best_child = "-" if r["bestRunId"] is None else r["bestRunId"]
        table.add_row(
            r["runId"],
            r["experiment"],
            _status_text(r["status"]),
            created,
            best,
            best_child,
            fmt_time(_ts(r["startTimeUtc"])),
            fmt_duration(r["durationSeconds"]),
        )
    out.print(table)


def _ts(iso: str | None) -> float | None:
    if iso is None:
        return None
    import datetime as dt

    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


# -- show -------------------------------------------------------------------------------------
@app.command("show")
def show(
    ctx: typer.Context,
    run_id: SweepIdArg,
    top: Annotated[
        int,
        typer.Option("--top", "-n", min=0, metavar="N", help="Only the N best children (0: all)."),
    ] = 0,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a sweep: its configuration and its children, best first by the primary metric.

    Children without the metric come last. --json prints {summary…, "config": {…},
    "children": [{run_id, status, hyperparameters, best_primary_metric}, …]}.

    Example: [bold]trainyard sweep show HD_5c14f9a2772c47b4908b3b294754cae1 --top 3[/bold]
    """
    ws = open_workspace(ctx, workspace)
    run = get_sweep(ws, run_id)
    rows = [_child_row(r) for r in run.get_children_sorted_by_primary_metric()]
    summary = sweep_summary(run, rows)
    config = sweep_config(run)
    shown = rows[:top] if top else rows
    if as_json:
        print_json({**summary, "config": config, "children": shown})
        return
    _print_sweep(summary, config, shown, len(rows))


def _print_sweep(
    summary: dict[str, Any], config: dict[str, Any], rows: list[dict[str, Any]], total: int
) -> None:
    from rich.table import Table

    out = console()
    metric = config["primaryMetric"].get("name", "?")
    goal = config["primaryMetric"].get("goal", "?")
    sampling = config["sampling"]
    policy = config["policy"]
    space = " ".join(
        f"{k}={v[0]}({', '.join(map(str, v[1][0] if v[0] == 'choice' else v[1]))})"
        if isinstance(v, list) and len(v) == 2 and isinstance(v[1], list) and v[1]
        else f"{k}={v}"
        for k, v in (sampling.get("parameter_space") or {}).items()
    )
    props = policy.get("properties") or {}
    policy_text = policy.get("name", "Default") + (
        " (" + ", ".join(f"{k}={v}" for k, v in props.items() if v is not None) + ")"
        if props
        else ""
    )
    head: dict[str, Any] = {
        "Sweep ID": summary["runId"],
        "Experiment": summary["experiment"],
        "Status": _status_text(summary["status"]),
        "Primary metric": f"{metric} ({goal})",
        "Sampling": str(sampling.get("name", "?"))
        + (f" {sampling['properties']}" if sampling.get("properties") else ""),
        "Parameter space": space or "-",
        "Policy": policy_text,
        "Budget": f"max_total_runs={config['maxTotalRuns']}, "
        f"max_concurrent_runs={config['maxConcurrentRuns']}, "
        f"max_duration_minutes={config['maxDurationMinutes']}",
        "Template": " ".join(
            [str(config["template"]["script"]), *map(str, config["template"]["arguments"])]
        )
        + f" on {config['template']['target']}",
        "Start": fmt_time(_ts(summary["startTimeUtc"])),
        "Duration": fmt_duration(summary["durationSeconds"]),
        "Children": f"{summary['children']} "
        + "("
        + ", ".join(f"{n} {s}" for s, n in summary["childStatuses"].items())
        + ")"
        if summary["children"]
        else "0",
    }
    if config["resumeFrom"]:
        head["Resumed from"] = ", ".join(config["resumeFrom"])
    if summary["bestRunId"]:
        head["Best child"] = f"{summary['bestRunId']} ({metric}={fmt_value(summary['bestMetric'])})"
    kv = Table(
        title=f"Sweep {summary['runId']}",
        title_justify="left",
        show_header=False,
        box=None,
        padding=(0, 2, 0, 0),
    )
    kv.add_column("key", style="bold", no_wrap=True)
    kv.add_column("value", overflow="fold")
    for key, value in head.items():
        kv.add_row(key, value)
    out.print(kv)
    out.print()
    if not rows:
        out.print("No child runs yet.")
        return
    title = f"Children by {metric} ({goal})" + (
        f", top {len(rows)} of {total}" if len(rows) < total else ""
    )
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Run ID", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Hyperparameters", overflow="fold")
    table.add_column(f"Best {metric}", justify="right")
    for i, row in enumerate(rows, start=1):
        value = row["bestPrimaryMetric"]
        table.add_row(
            str(i),
            row["runId"],
            _status_text(row["status"]),
            _hp_text(row["hyperparameters"]),
            "-" if value is None else fmt_value(value),
        )
    out.print(table)


# -- best -------------------------------------------------------------------------------------
@app.command("best")
def best(
    ctx: typer.Context,
    run_id: SweepIdArg,
    completed_only: Annotated[
        bool,
        typer.Option(
            "--completed-only",
            help="Ignore failed and cancelled children (v1: include_failed=False, "
            "include_canceled=False).",
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a sweep's best child: its id, primary metric value, hyperparameters and arguments.

    The same run as [bold]get_best_run_by_primary_metric()[/bold] (sweeps given as resume_from
    compete too). Exits 1 when no child logged the primary metric yet.

    Example: [bold]trainyard sweep best HD_5c14f9a2772c47b4908b3b294754cae1 --json[/bold]
    """
    from trainyard.exceptions import NotFoundError
    from trainyard.train.hyperdrive._history import (
        best_value,
        child_hyperparameters,
        goal_of,
        numeric_values,
    )

    ws = open_workspace(ctx, workspace)
    run = get_sweep(ws, run_id)
    metric, goal = goal_of(run.get_info(refresh=False).tags.get("primary_metric_config"))
    found = run.get_best_run_by_primary_metric(
        include_failed=not completed_only, include_canceled=not completed_only
    )
    if found is None:
        raise NotFoundError(
            f"Sweep {run_id} has no child run with a logged {metric!r} yet (status "
            f"{run.get_status()}); see `trainyard sweep show {run_id}`.",
            run_id=run_id,
            metric=metric,
        )
    values = found.get_metrics(name=metric).get(metric)
    series = numeric_values(values if isinstance(values, list) else [values])
    details = found.get_details()
    result = {
        "sweepId": run_id,
        "runId": found.id,
        "status": details["status"],
        "primaryMetric": metric,
        "goal": goal,
        "value": best_value(series, goal),
        "hyperparameters": child_hyperparameters(found) or {},
        "arguments": details["runDefinition"].get("arguments") or [],
    }
    if as_json:
        print_json(result)
        return
    out = console()
    out.print(f"Best child of {run_id}: {found.id} ({details['status']})")
    out.print(f"  {metric} ({goal}): {fmt_value(result['value'])}")
    out.print(f"  hyperparameters: {_hp_text(result['hyperparameters']) or '-'}")
    out.print(f"  arguments: {' '.join(map(str, result['arguments']))}")


# -- resume / cancel --------------------------------------------------------------------------
@app.command("resume")
def resume(
    ctx: typer.Context, run_id: SweepIdArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """Continue a sweep whose controller died (Failed) or that was cancelled.

    A new sweep with the same template, sampler, policy and goal takes the budget left; it never
    repeats the old sweep's points and its best run considers them. Exits 1 for a sweep that is
    still running, completed, or has no budget left.

    Example: [bold]trainyard sweep resume HD_5c14f9a2772c47b4908b3b294754cae1[/bold]
    """
    ws = open_workspace(ctx, workspace)
    run = get_sweep(ws, run_id)
    new = run.resume()
    info = new.get_info(refresh=False)
    result = {
        "runId": run_id,
        "resumedRunId": new.id,
        "status": new.get_status(),
        "maxTotalRuns": _loads(info.tags.get("max_total_jobs")),
        "resumeChildRuns": _loads(info.properties.get("resume_child_runs")) or [],
    }
    if as_json:
        print_json(result)
        return
    console().print(
        f"Resumed sweep {run_id} as {new.id} ({result['maxTotalRuns']} more child runs at most); "
        f"watch it with `trainyard sweep show {new.id}`."
    )


@app.command("cancel")
def cancel(
    ctx: typer.Context, run_id: SweepIdArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """Cancel a sweep and its active children; it ends Canceled once they have stopped.

    Exits 0 when the cancel was accepted, 1 when the sweep had already finished.
    --json prints {"runId", "status", "canceled"}.

    Example: [bold]trainyard sweep cancel HD_5c14f9a2772c47b4908b3b294754cae1[/bold]
    """
    ws = open_workspace(ctx, workspace)
    cancel_and_report(get_sweep(ws, run_id), run_id, "sweep", as_json, " and its active children")
