"""``trainyard submit``: run a script as a tracked run (a ``ScriptRunConfig`` submitted from the shell).

Options come before ``--``; everything after ``--`` is passed to the script unchanged.

Example::

    $ trainyard submit -e mnist --pip numpy==2.1.3 --wait train.py -- --epochs 3
    $ RUN=$(trainyard submit train.py) && trainyard runs logs "$RUN" -f
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from trainyard.cli._common import JsonOpt, WorkspaceOpt, console, open_workspace, print_json

if TYPE_CHECKING:
    from trainyard.core.environment import Environment
    from trainyard.core.script_run import ScriptRun

#: The file in the source folder that ``submit`` uses as the environment when ``--env`` is not
#: given (``--no-requirements`` opts out).
REQUIREMENTS_FILE = "requirements.txt"
_NOT_NAME_CHAR = re.compile(r"[^\w\-]")


def register(root: typer.Typer) -> None:
    """Add ``trainyard submit`` to ``root``.

    Example::

        register(app)
    """
    root.command("submit")(submit)


def experiment_name_for(script: str) -> str:
    """The default experiment of a script: its stem made to fit v1's experiment name rule
    (``^[a-zA-Z0-9][\\w\\-]{0,254}$``); other characters become ``_``.

    Example::

        experiment_name_for("src/train mnist.v2.py")   # 'train_mnist_v2'
    """
    stem = _NOT_NAME_CHAR.sub("_", Path(script).stem)
    stem = stem.lstrip("_-")
    return stem[:255] or "default"


def parse_tags(items: list[str] | None) -> dict[str, str]:
    """``["k=v", …]`` → ``{"k": "v"}``; a missing ``=`` or empty key is a usage error.

    Example::

        parse_tags(["team=vision", "note=a=b"])   # {'team': 'vision', 'note': 'a=b'}
    """
    tags: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE.", param_hint="'--tag'")
        tags[key.strip()] = value
    return tags


def resolve_script(script: str, source_dir: Path | None) -> tuple[Path, str]:
    """The source folder and the script's path inside it (POSIX, relative).

    Without ``source_dir`` the script's own folder is the source folder. With it, ``script`` is
    either a path (from the current folder) to a file inside ``source_dir`` or a path relative
    to ``source_dir``. Raises ``UserErrorException`` when the script is not found or lies outside.

    Example::

        resolve_script("proj/train.py", Path("proj"))   # (Path('/abs/proj'), 'train.py')
    """
    from trainyard.exceptions import UserErrorException

    given = Path(script).expanduser()
    if source_dir is None:
        if not given.is_file():
            raise UserErrorException(f"Script {script!r} not found.", script=script)
        full = given.resolve()
        return full.parent, full.name
    src = source_dir.expanduser().resolve()
    if not src.is_dir():
        raise UserErrorException(
            f"--source-dir {str(source_dir)!r} does not exist or is not a folder.",
            source_directory=str(source_dir),
        )
    if given.is_file():
        full = given.resolve()
        if not full.is_relative_to(src):
            raise UserErrorException(
                f"Script {script!r} is outside --source-dir {str(source_dir)!r}; the run only gets "
                "a snapshot of the source folder, so move the script into it.",
                script=script,
            )
        return src, full.relative_to(src).as_posix()
    if not given.is_absolute() and (src / given).is_file():
        return src, given.as_posix()
    raise UserErrorException(
        f"Script {script!r} not found (neither from the current folder nor in --source-dir "
        f"{str(source_dir)!r}).",
        script=script,
    )


def project_requirements(src: Path, env_file: Path | None, use_requirements: bool) -> Path | None:
    """The ``requirements.txt`` of the source folder that the run's environment comes from, when
    neither ``--env`` nor ``--no-requirements`` was given and the file exists; else ``None``.

    Example::

        project_requirements(Path("proj"), None, True)   # Path('proj/requirements.txt') if present
    """
    if env_file is not None or not use_requirements:
        return None
    candidate = src / REQUIREMENTS_FILE
    return candidate if candidate.is_file() else None


def build_environment(
    env_file: Path | None, pip: list[str] | None, default_name: str
) -> Environment | None:
    """The run's ``Environment``: from ``--env`` (``.yml``/``.yaml``: conda specification, else a
    requirements file) plus ``--pip`` packages; ``None`` (this interpreter) when neither is given.

    Example::

        build_environment(None, ["six==1.16.0"], "demo-pip")
    """
    from trainyard.core.environment_files import environment_from_file

    name = experiment_name_for(env_file.name) if env_file is not None else default_name
    return environment_from_file(name, env_file, pip or ())


def submit(
    ctx: typer.Context,
    script: Annotated[
        str, typer.Argument(metavar="SCRIPT", help="The Python script to run.", show_default=False)
    ],
    args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[-- ARGS...]",
            help="Arguments for the script; put them after -- when any starts with '-'.",
            show_default=False,
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment",
            "-e",
            metavar="NAME",
            help="Experiment to submit to (default: the script's name, e.g. train for train.py).",
            show_default=False,
        ),
    ] = None,
    compute: Annotated[
        str | None,
        typer.Option(
            "--compute",
            "-c",
            metavar="TARGET",
            help="Compute target (see `trainyard compute list`; default: local).",
            show_default=False,
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env",
            metavar="FILE",
            help="Environment file: a conda specification (.yml/.yaml) or a requirements file "
            "(anything else). Default: this interpreter, nothing installed.",
            show_default=False,
        ),
    ] = None,
    pip: Annotated[
        list[str] | None,
        typer.Option(
            "--pip",
            metavar="PKG",
            help="A pip requirement to install (repeat for several; added to --env's packages).",
            show_default=False,
        ),
    ] = None,
    use_requirements: Annotated[
        bool,
        typer.Option(
            "--requirements/--no-requirements",
            help="Without --env, build the run's environment from requirements.txt in the source "
            "folder when there is one (--no-requirements: run in this interpreter instead).",
        ),
    ] = True,
    source_dir: Annotated[
        Path | None,
        typer.Option(
            "--source-dir",
            metavar="DIR",
            help="Folder snapshotted as the run's working copy (default: the script's folder).",
            show_default=False,
        ),
    ] = None,
    max_seconds: Annotated[
        int | None,
        typer.Option(
            "--max-seconds",
            min=1,
            metavar="N",
            help="Cancel the run after N seconds (default: 2592000, 30 days, as v1).",
            show_default=False,
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            "-t",
            metavar="KEY=VALUE",
            help="A tag on the run (repeat for several).",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Stream the run's log until it ends; exit 1 unless it Completed (with --json the "
            "log goes to stderr).",
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a script as a run (validated and snapshotted first) and print its run id.

    Without --wait it returns at once: stdout holds only the run id.
    --json prints {"runId", "status", "experiment", "target", "script", "arguments", ...}.
    Without --env, a requirements.txt in the source folder is the run's environment (it says so
    on stderr; --no-requirements opts out).

    Example: [bold]trainyard submit -e mnist --pip six==1.16.0 --wait train.py -- --epochs 3[/bold]
    """
    from trainyard.core.experiment import Experiment
    from trainyard.core.script_run_config import (
        DEFAULT_MAX_RUN_DURATION_SECONDS,
        ScriptRunConfig,
    )

    tags = parse_tags(tag)
    arguments = list(args or [])  # click already removed the first '--'
    exp_name = experiment or experiment_name_for(script)
    src, rel_script = resolve_script(script, source_dir)
    requirements = project_requirements(src, env_file, use_requirements)
    if requirements is not None:
        console(stderr=True).print(
            f"Using {requirements} for the run's environment (--no-requirements runs the script "
            "in this interpreter instead; --env FILE picks another file)."
        )
    environment = build_environment(requirements or env_file, pip, f"{exp_name}-pip")
    ws = open_workspace(ctx, workspace)
    config = ScriptRunConfig(
        source_directory=src,
        script=rel_script,
        arguments=arguments,
        compute_target=compute,
        environment=environment,
        max_run_duration_seconds=max_seconds or DEFAULT_MAX_RUN_DURATION_SECONDS,
    )
    run = cast("ScriptRun", Experiment(ws, exp_name).submit(config, tags=tags))
    env_source = requirements or env_file
    summary: dict[str, Any] = {
        "runId": run.id,
        "status": run.get_status(),
        "experiment": exp_name,
        "target": compute or "local",
        "script": rel_script,
        "arguments": arguments,
        "sourceDirectory": str(src),
        "environmentFile": str(env_source.resolve()) if env_source is not None else None,
        "workspace": ws.name,
    }
    if not wait:
        if as_json:
            print_json(summary)
        else:
            typer.echo(run.id)
            console(stderr=True).print(
                f"Submitted to experiment {exp_name} (target {summary['target']}). "
                f"Follow it with: trainyard runs logs {run.id} -f"
            )
        return
    details = _wait(run, log_to_stderr=as_json)
    status = str(details.get("status"))
    summary["status"] = status
    summary["error"] = details.get("error")
    if as_json:
        print_json(summary)
    if status != "Completed":
        if not as_json:
            error = details.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
            typer.echo(
                f"Run {run.id} ended {status}" + (f": {message}" if message else "."), err=True
            )
        sys.stdout.flush()
        raise typer.Exit(1)


def _wait(run: ScriptRun, log_to_stderr: bool) -> dict[str, Any]:
    """Stream the log as ``wait_for_completion(show_output=True)`` does, until the run is final."""
    try:
        return run.wait_for_completion(
            show_output=True,
            wait_post_processing=True,  # the exit status needs the final status
            raise_on_error=False,
            out=sys.stderr if log_to_stderr else sys.stdout,
        )
    except KeyboardInterrupt:  # watch already said the run keeps going
        raise typer.Exit(130) from None
