"""Shared pieces of the ``trainyard`` command: options, workspace resolution, output, errors.

Every command module imports only ``typer`` and this module at import time, so ``trainyard --help``
stays fast; the public API (``trainyard.core``) and the store load inside the command bodies.

Example::

    @app.command("show")
    def show(ctx: typer.Context, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
        ws = open_workspace(ctx, workspace)
        if as_json:
            print_json(ws.get_details())
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from trainyard.exceptions import TrainyardError, UserErrorException, WorkspaceNotFound

if TYPE_CHECKING:
    from rich.console import Console

    from trainyard.core.workspace import Workspace

#: Environment variable naming the workspace (a folder, a config.json, or a folder to search from).
WORKSPACE_ENV = "TRAINYARD_WORKSPACE"
#: ``ctx.meta`` keys (``meta`` is shared by every context of one invocation).
META_WORKSPACE = "trainyard.workspace"
META_ARGV = "trainyard.argv"

_WORKSPACE_HELP = (
    "Workspace to use: a workspace folder, a config.json, or a folder to search from "
    f"(default: ${WORKSPACE_ENV}, else .trainyard/config.json found from the current folder upwards)."
)

#: ``--workspace/-w PATH`` (each command takes it, as does ``trainyard`` itself).
WorkspaceOpt = Annotated[
    str | None,
    typer.Option("--workspace", "-w", metavar="PATH", help=_WORKSPACE_HELP, show_default=False),
]
#: ``--json``: machine-readable output on stdout.
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help='Print JSON on stdout instead of tables (NaN and ±inf are written as the strings "NaN", '
        '"Infinity", "-Infinity"; errors as {"error": {code, message, details}}).',
    ),
]


# -- JSON -------------------------------------------------------------------------------------
def _plain(obj: Any) -> Any:
    """``obj`` with non-finite floats as strings and Paths, times, dataclasses, enums made JSON."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, enum.Enum):
        return _plain(obj.value)
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_plain(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(dataclasses.asdict(obj))
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item) and getattr(obj, "ndim", None) == 0:
        return _plain(item())
    return str(obj)


class CliJSONEncoder(json.JSONEncoder):
    """Strict JSON for scripts: NaN → ``"NaN"``, inf → ``"Infinity"``, -inf → ``"-Infinity"``.

    Python's default would write bare ``NaN``/``Infinity`` tokens that most JSON parsers reject.
    Paths, datetimes, dataclasses (e.g. ``MetricPoint``) and enums are converted too.

    Example::

        json.dumps({"loss": float("nan")}, cls=CliJSONEncoder)   # '{"loss": "NaN"}'
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs["allow_nan"] = False
        super().__init__(**kwargs)

    def iterencode(self, o: Any, _one_shot: bool = False) -> Any:
        return super().iterencode(_plain(o), _one_shot)

    def default(self, o: Any) -> Any:  # pragma: no cover - _plain already converted everything
        return str(o)


def dumps(data: Any) -> str:
    """``data`` as indented strict JSON (see :class:`CliJSONEncoder`).

    Example::

        dumps([1.0, float("inf")])   # '[\\n  1.0,\\n  "Infinity"\\n]'
    """
    return json.dumps(data, cls=CliJSONEncoder, indent=2, ensure_ascii=False)


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout (never through rich: no markup, no wrapping).

    Example::

        print_json(run.get_metrics())
    """
    typer.echo(dumps(data))


# -- consoles and formatting ------------------------------------------------------------------
def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr). Off a terminal it is wide, so ids are never cut.

    Markup is off: names, tags and paths come from users and may contain ``[brackets]``.

    Example::

        console().print(table)
    """
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, markup=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 200
    return out


def iso_utc(ts: float | None) -> str | None:
    """A Unix time as v1's ISO form (``2024-05-01T12:00:00.000000Z``); ``None`` stays ``None``.

    Example::

        iso_utc(0.0)   # '1970-01-01T00:00:00.000000Z'
    """
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fmt_time(ts: float | None, ms: bool = False) -> str:
    """A Unix time in local time for tables (``2024-05-01 14:00:00``); ``-`` for none.

    Example::

        fmt_time(time.time())
    """
    if ts is None:
        return "-"
    moment = _dt.datetime.fromtimestamp(ts)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}" if ms else text


def duration_seconds(start: float | None, end: float | None) -> float | None:
    """Seconds from ``start`` to ``end`` (to now while running); ``None`` if it never started.

    Example::

        duration_seconds(run_info.start_time, run_info.end_time)
    """
    if start is None:
        return None
    return max(0.0, (end if end is not None else time.time()) - start)


def fmt_duration(seconds: float | None) -> str:
    """``3.2s``, ``4m 05s``, ``2h 03m 09s``; ``-`` for none.

    Example::

        fmt_duration(3725)   # '1h 02m 05s'
    """
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def fmt_value(value: Any, limit: int = 60) -> str:
    """A metric or detail value for a table cell (floats to 6 significant digits, NaN as ``NaN``).

    Example::

        fmt_value(0.123456789)   # '0.123457'
    """
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return format(value, ".6g")
    if isinstance(value, (int, str)):
        text = str(value)
    else:
        text = json.dumps(_plain(value), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- workspace resolution ---------------------------------------------------------------------
def _open_location(location: str, source: str) -> Workspace:
    from trainyard.core.workspace import Workspace, find_config

    path = Path(location).expanduser()
    if not path.exists():
        raise WorkspaceNotFound(
            f"{source} {location}: no such file or folder. Pass a workspace folder, its "
            "config.json, or a folder with .trainyard/config.json.",
            path=str(path),
        )
    if path.is_file():
        return Workspace.from_config(path)
    if (path / "workspace.json").is_file():
        return Workspace(path=path)
    try:
        found = find_config(path)
    except UserErrorException as err:
        if type(err) is not UserErrorException:
            raise
        raise WorkspaceNotFound(
            f"{source} {location} is not a trainyard workspace folder, and no "
            ".trainyard/config.json was found in it or its parent folders. Create one with "
            f"`trainyard workspace create NAME --path {location}`.",
            path=str(path.resolve()),
        ) from None
    return Workspace.from_config(found)


def resolve_workspace(
    option: str | None, env: Mapping[str, str], cwd: Path | None = None
) -> tuple[Workspace, str]:
    """The workspace a command works on, and a line saying where it came from.

    Order: ``option`` (``--workspace``), then ``env[TRAINYARD_WORKSPACE]``, then
    ``Workspace.from_config()`` searching upwards from ``cwd``. Raises ``WorkspaceNotFound`` with
    the command to run when none is found.

    Example::

        ws, source = resolve_workspace(None, os.environ)
    """
    if option:
        return _open_location(option, "--workspace"), f"--workspace {option}"
    from_env = env.get(WORKSPACE_ENV)
    if from_env:
        return _open_location(from_env, f"{WORKSPACE_ENV}="), f"{WORKSPACE_ENV}={from_env}"
    from trainyard.core.workspace import Workspace, find_config

    start = cwd or Path.cwd()
    try:
        found = find_config(start)
    except UserErrorException as err:
        if type(err) is not UserErrorException:
            raise
        raise WorkspaceNotFound(
            f"No trainyard workspace found: no .trainyard/config.json in {start} or any parent "
            "folder. Run `trainyard workspace create NAME` here (it writes .trainyard/config.json), "
            f"or pass --workspace PATH, or set {WORKSPACE_ENV}=PATH.",
            searched=err.details.get("searched", []),
        ) from None
    return Workspace.from_config(found), f"config {found}"


def open_workspace(ctx: typer.Context, option: str | None) -> Workspace:
    """Resolve the workspace for a command: its own ``-w``, else the root ``trainyard -w``, else
    ``$TRAINYARD_WORKSPACE``, else the config found from the cwd.

    Example::

        ws = open_workspace(ctx, workspace)
    """
    ws, source = resolve_workspace(option or ctx.meta.get(META_WORKSPACE), os.environ)
    ctx.meta["trainyard.workspace_source"] = source
    return ws


# -- errors -----------------------------------------------------------------------------------
def wants_json(argv: Sequence[str] | None) -> bool:
    """Whether the command line asked for ``--json`` (options after ``--`` do not count).

    Example::

        wants_json(["runs", "show", "x", "--json"])   # True
    """
    for arg in argv or ():
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def report_error(payload: Mapping[str, Any], as_json: bool) -> None:
    """Print ``Error [CODE]: message`` on stderr, and with ``--json`` also ``{"error": …}`` on stdout.

    Example::

        report_error(err.to_dict(), as_json=False)
    """
    if as_json:
        typer.echo(dumps({"error": dict(payload)}))
    typer.echo(f"Error [{payload.get('code')}]: {payload.get('message')}", err=True)


class TrainyardGroup(TyperGroup):
    """The root command group: turns expected errors into one line (or JSON) and exit status 1.

    ``TrainyardError`` and ``OSError`` (a folder that cannot be written …) never show a traceback;
    usage errors keep click's exit status 2.

    Example::

        app = typer.Typer(cls=TrainyardGroup)
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta[META_ARGV] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TrainyardError as err:
            report_error(err.to_dict(), wants_json(ctx.meta.get(META_ARGV)))
        except OSError as err:
            if isinstance(err, BrokenPipeError):
                raise
            message = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
            report_error(
                {"code": "OS_ERROR", "message": message, "details": {}},
                wants_json(ctx.meta.get(META_ARGV)),
            )
        sys.stdout.flush()
        raise typer.Exit(1)


def cancel_and_report(run: Any, run_id: str, what: str, as_json: bool, note: str = "") -> None:
    """Cancel ``run`` and print the outcome; a finished run raises ``RunFinishedError`` (exit 1).

    Shared by ``runs cancel`` and ``sweep cancel``; ``what`` is "run" or "sweep".
    """
    from trainyard.exceptions import RunFinishedError

    accepted = bool(run.cancel())
    status = run.get_status()
    if not accepted:
        raise RunFinishedError(
            f"{what.capitalize()} {run_id} already finished with status {status}; there is nothing "
            "to cancel.",
            run_id=run_id,
            status=status,
        )
    if as_json:
        print_json({"runId": run_id, "status": status, "canceled": True})
        return
    console().print(f"Cancel requested for {what} {run_id}{note}; status: {status}")
