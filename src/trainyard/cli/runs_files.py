"""``trainyard runs logs`` and ``trainyard runs download``: a run's logs (followed live) and files.

Example::

    $ trainyard runs logs mnist_1714000000_1a2b3c4d -f
    $ trainyard runs download mnist_1714000000_1a2b3c4d --prefix outputs -o ./out
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trainyard._lifecycle import RunStatus
from trainyard.cli._common import JsonOpt, WorkspaceOpt, console, open_workspace, print_json
from trainyard.cli.runs import RunIdArg, get_run

if TYPE_CHECKING:
    from trainyard.core.run import Run


def attach(app: typer.Typer) -> None:
    """Add ``logs`` and ``download`` to the ``runs`` group ``app``."""
    app.command("download")(download)
    app.command("logs")(logs)


def download(
    ctx: typer.Context,
    run_id: RunIdArg,
    prefix: Annotated[
        str | None,
        typer.Option("--prefix", metavar="P", help="Only files under this folder (e.g. outputs)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="DIR",
            help="Folder to download into (default: ./RUN_ID).",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a run's files (keeping their relative paths), with a progress bar.

    Example: [bold]trainyard runs download mnist_1714000000_1a2b3c4d --prefix outputs -o ./model[/bold]
    """
    from trainyard._store.artifacts import safe_relpath
    from trainyard.exceptions import ArtifactNotFound

    ws = open_workspace(ctx, workspace)
    run = get_run(ws, run_id)
    names = run.get_file_names()
    if prefix:
        p = safe_relpath(prefix)
        matched = [n for n in names if n == p or n.startswith(p + "/")]
        if not matched:
            folders = sorted({n.split("/", 1)[0] for n in names})
            raise ArtifactNotFound(
                f"Run {run_id!r} has no files under {prefix!r}. Its top-level files and folders: "
                f"{', '.join(folders) or '(none)'}.",
                run_id=run_id,
                prefix=prefix,
            )
        names = matched
    out_dir = output if output is not None else Path(run_id)
    paths: list[str] = []
    if as_json:
        for n in names:
            paths.append(str(_download_one(run, n, out_dir).resolve()))
        print_json({"runId": run_id, "output": str(out_dir.resolve()), "files": paths})
        return
    if not names:
        console().print(f"Run {run_id} has no files.")
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
    ) as progress:
        task = progress.add_task("Downloading", total=len(names))
        for n in names:
            progress.update(task, description=n if len(n) <= 40 else "…" + n[-39:])
            paths.append(str(_download_one(run, n, out_dir)))
            progress.advance(task)
        progress.update(task, description="Downloaded")
    noun = "file" if len(paths) == 1 else "files"
    console().print(f"Downloaded {len(paths)} {noun} of run {run_id} to {out_dir.resolve()}")


def _download_one(run: Run, name: str, out_dir: Path) -> Path:
    from trainyard._store.artifacts import safe_relpath

    target = out_dir / safe_relpath(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    return run.download_file(name, output_file_path=target)


# -- logs -------------------------------------------------------------------------------------
#: Log files of a run that ``runs logs`` names when the asked one does not exist.
_LOG_FOLDERS = ("user_logs/", "system_logs/", "logs/", "azureml-logs/")


def logs(
    ctx: typer.Context,
    run_id: RunIdArg,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep printing new lines until the run ends (Ctrl-C stops following, not the run).",
        ),
    ] = False,
    log: Annotated[
        str | None,
        typer.Option(
            "--log",
            "-l",
            metavar="NAME",
            help="Which log or file of the run (default: user_logs/std_log.txt, the script's "
            "output; e.g. system_logs/environment_build.txt, logs/train.log).",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Print a run's log (the script's stdout and stderr by default); -f follows it.

    Without -f it prints what exists now; with -f it reads on from where it was (by offset)
    until the run is Completed, Failed or Canceled.

    Example: [bold]trainyard runs logs mnist_1714000000_1a2b3c4d -f[/bold]
    """
    import sys

    from trainyard._execution.runfiles import STD_LOG
    from trainyard._store.artifacts import safe_relpath

    ws = open_workspace(ctx, workspace)
    run = get_run(ws, run_id)
    name = safe_relpath(log) if log else STD_LOG
    out = sys.stdout.buffer
    status = RunStatus.parse(run.get_status())
    offset = 0
    if not follow:
        chunk = run.read_log_lines(name, 0, final=True)
        out.write(chunk)
        out.flush()
        if not chunk:
            _no_log_yet(run, name, status)
        return
    interval = max(0.05, ws.context.settings.polling_interval_min)
    try:
        if not run.read_log(name, 0, 1) and not status.is_terminal():
            typer.echo(f"Waiting for {name} (run {run_id} is {status.value})…", err=True)
        for chunk in run.follow_log(name, interval=interval):
            out.write(chunk)
            out.flush()
            offset += len(chunk)
    except KeyboardInterrupt:
        out.flush()
        typer.echo(
            f"\nStopped following run {run_id}; it keeps running "
            f"(cancel it with `trainyard runs cancel {run_id}`).",
            err=True,
        )
        raise typer.Exit(130) from None
    if offset == 0:
        _no_log_yet(run, name, status)


def _no_log_yet(run: Run, name: str, status: RunStatus) -> None:
    """Explain an empty answer: not written yet, or (on a finished run) no such log."""
    from trainyard.exceptions import ArtifactNotFound

    if not status.is_terminal():
        typer.echo(
            f"Run {run.id} has no output in {name} yet (status {status.value}); "
            f"follow it with `trainyard runs logs {run.id} -f`.",
            err=True,
        )
        return
    files = run.get_file_names()
    if name in files:
        return  # an empty log
    available = [f for f in files if f.startswith(_LOG_FOLDERS)]
    raise ArtifactNotFound(
        f"Run {run.id} ({status.value}) has no log {name!r}. Its logs: "
        f"{', '.join(available) or '(none)'}; pick one with --log NAME.",
        run_id=run.id,
        name=name,
        logs=available,
    )


# -- cancel -----------------------------------------------------------------------------------
