"""Where a run's files live while it executes, how the script is launched, and how files are synced.

Per run, under the workspace folder::

    runs/<run_id>/live/user_logs/std_log.txt            the script's stdout+stderr, appended live
    runs/<run_id>/live/user_logs/std_log_process_<r>.txt rank r's, for a distributed run (v1 names)
    runs/<run_id>/live/system_logs/launcher.txt         mpirun's own output (MPI runs)
    runs/<run_id>/live/system_logs/supervisor.txt       the supervisor's own steps
    runs/<run_id>/live/system_logs/environment_build.txt the environment build (uv) output
    runs/<run_id>/wd/                                   the working copy (deleted at the end)

Live logs are read by offset while the run executes and uploaded into the run's files (v1 names
``user_logs/std_log.txt``, ``system_logs/…``, ``logs/…``, ``outputs/…``).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard._compat import with_shim
from trainyard._context import redact_url
from trainyard._execution.failure import parse_traceback
from trainyard.mlflow_plugin._uri import tracking_uri_for
from trainyard.settings import RUN_ENV_VARS

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext
    from trainyard._store.artifacts import ArtifactStore
    from trainyard._store.entities import RunInfo

STD_LOG = "user_logs/std_log.txt"
SUPERVISOR_LOG = "system_logs/supervisor.txt"
BUILD_LOG = "system_logs/environment_build.txt"
LAUNCHER_LOG = "system_logs/launcher.txt"
#: A rank's log in a distributed run (v1's name; rank 0's is the one streamed).
RANK_LOG = "user_logs/std_log_process_{rank}.txt"
_RANK_LOG_PREFIX, _RANK_LOG_SUFFIX = RANK_LOG.split("{rank}")


def rank_log(rank: int) -> str:
    """The name of rank ``rank``'s log: ``user_logs/std_log_process_<rank>.txt``."""
    return RANK_LOG.format(rank=rank)


def rank_of_log(name: str) -> int | None:
    """The rank whose log ``name`` is, or ``None`` when it is no rank's log."""
    if not (name.startswith(_RANK_LOG_PREFIX) and name.endswith(_RANK_LOG_SUFFIX)):
        return None
    middle = name[len(_RANK_LOG_PREFIX) : len(name) - len(_RANK_LOG_SUFFIX)]
    return int(middle) if middle.isdigit() else None


def sort_log_names(names: list[str]) -> list[str]:
    """Log names in the order they are listed: the script's log, ranks by number, the rest."""

    def key(name: str) -> tuple[int, int, str]:
        rank = rank_of_log(name)
        if name == STD_LOG:
            return (0, 0, name)
        return (1, rank, name) if rank is not None else (2, 0, name)

    return sorted(set(names), key=key)


@dataclass(frozen=True)
class RunPaths:
    """Local paths of one run's execution files."""

    home: Path
    run_id: str

    @property
    def root(self) -> Path:
        return self.home / "runs" / self.run_id

    @property
    def live(self) -> Path:
        return self.root / "live"

    @property
    def workdir(self) -> Path:
        return self.root / "wd"

    @property
    def std_log(self) -> Path:
        p = self.live / STD_LOG
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def supervisor_log(self) -> Path:
        p = self.live / SUPERVISOR_LOG
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def build_log(self) -> Path:
        p = self.live / BUILD_LOG
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def cancel_file(self) -> Path:
        """v1's local "kill file": written by a local cancel so the supervisor notices it with a
        stat instead of a database read."""
        return self.live / "cancel-requested"

    @property
    def user_logs(self) -> Path:
        """The folder of the script's logs (``std_log.txt`` or one per rank)."""
        p = self.live / "user_logs"
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def launcher_log(self) -> Path:
        p = self.live / LAUNCHER_LOG
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def live_file(self, name: str) -> Path:
        return self.live / name

    def live_log_names(self) -> list[str]:
        """Names of the logs written so far (``user_logs/…`` and ``system_logs/…``), listed in
        :func:`sort_log_names` order."""
        names: list[str] = []
        for folder in ("user_logs", "system_logs"):
            path = self.live / folder
            if path.is_dir():
                names += [f"{folder}/{f.name}" for f in path.iterdir() if f.is_file()]
        return sort_log_names(names)


def script_env(
    ctx: WorkspaceContext,
    info: RunInfo,
    definition: dict[str, Any],
    python: str,
    extra: dict[str, str],
) -> dict[str, str]:
    """The script's environment: inherited minus interpreter overrides, plus run variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")
    }
    for key in list(env):
        if key.startswith(("TRAINYARD_RUN", "AZUREML_")):
            env.pop(key)
    # The supervisor waits long for a team server that is away; its script need not: what the
    # script could not send before it exits, the supervisor sends for it.
    env.pop("TRAINYARD_SPOOL_EXIT_SECONDS", None)
    prefix = Path(python).parent.parent
    if (prefix / "pyvenv.cfg").exists():
        env["VIRTUAL_ENV"] = str(prefix)
        env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    values = {
        "TRAINYARD_RUN_ID": info.run_id,
        "TRAINYARD_EXPERIMENT_NAME": info.experiment_name,
        "TRAINYARD_WORKSPACE_NAME": ctx.name,
        "TRAINYARD_WORKSPACE_PATH": str(ctx.home),
        # Where the run's records go, for display: never a database password (the script opens
        # the store from the workspace folder; a team server's scripts hold a run token instead).
        "TRAINYARD_TRACKING_URI": redact_url(ctx.store_url),
        "TRAINYARD_SUBSCRIPTION_ID": str(ctx.meta.get("subscription_id", "local")),
        "TRAINYARD_RESOURCE_GROUP": str(ctx.meta.get("resource_group", "local")),
    }
    for key, value in values.items():
        env[key] = value
        for alias in RUN_ENV_VARS.get(key, ()):
            env[alias] = value
    env["AZUREML_EXPERIMENT_ID"] = str(info.experiment_id)
    # MLflow calls in the script land in this run, as on Azure ML (the run config's own
    # environment variables, applied below, still win).
    # (A team server's workspace folder opens over HTTP with the run's token.)
    env["MLFLOW_TRACKING_URI"] = tracking_uri_for(ctx.home)
    env["MLFLOW_RUN_ID"] = info.run_id
    env["MLFLOW_EXPERIMENT_NAME"] = info.experiment_name
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    env["AZUREML_WORKSPACE_ID"] = ctx.workspace_id
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = with_shim(None)  # v1's ``azureml.*`` names, for this run only
    env.update(extra)
    env.update({str(k): str(v) for k, v in (definition.get("environmentVariables") or {}).items()})
    return env


def upload_tree(
    store: ArtifactStore, run_id: str, folder: Path, prefix: str, boundary: Path | None = None
) -> list[str]:
    """Upload every regular file under ``folder`` as ``<prefix>/<relative path>``.

    Nothing outside ``boundary`` (default: ``folder``) is uploaded: not ``folder`` itself when a
    script replaced it with a symlink to elsewhere, not a file that is a symlink out of it (the
    path choke point's rule, applied to the upload walk). Directory symlinks are not followed.
    """
    names: list[str] = []
    root = (boundary or folder).resolve()
    if folder.is_symlink() or not folder.resolve().is_relative_to(root):
        return names
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for fname in sorted(filenames):
            full = Path(dirpath) / fname
            if full.is_symlink() and not full.resolve().is_relative_to(root):
                continue
            if not full.is_file():
                continue
            rel = f"{prefix}/{full.relative_to(folder).as_posix()}"
            store.write_file(f"runs/{run_id}/{rel}", full)
            names.append(rel)
    return names


def upload_live_logs(store: ArtifactStore, run_id: str, paths: RunPaths) -> None:
    """Copy the live log files (every rank's too) into the run's files."""
    for name in paths.live_log_names():
        p = paths.live_file(name)
        if p.is_file():
            store.write_file(f"runs/{run_id}/{name}", p)


class LogSyncer:
    """Uploads ``./logs`` and the user log while the run executes, only what changed."""

    def __init__(self, store: ArtifactStore, run_id: str, paths: RunPaths, workdir: Path) -> None:
        self._store = store
        self._run_id = run_id
        self._paths = paths
        self._wd = workdir
        self._seen: dict[Path, tuple[float, int]] = {}

    def _maybe(self, path: Path, name: str) -> None:
        try:
            st = path.stat()
        except OSError:
            return
        key = (st.st_mtime, st.st_size)
        if self._seen.get(path) == key:
            return
        self._store.write_file(f"runs/{self._run_id}/{name}", path)
        self._seen[path] = key

    def sync(self) -> None:
        for name in self._paths.live_log_names():
            if name.startswith("user_logs/"):
                self._maybe(self._paths.live_file(name), name)
        logs = self._wd / "logs"
        if logs.is_dir() and not logs.is_symlink():  # a symlink out of the run is not its logs
            for dirpath, _, filenames in os.walk(logs):
                for fname in filenames:
                    full = Path(dirpath) / fname
                    if full.is_file() and not full.is_symlink():
                        self._maybe(full, f"logs/{full.relative_to(logs).as_posix()}")


def failure_details(rc: int, std_log: Path) -> dict[str, Any]:
    """Error dict for a script that exited non-zero: the exception's type, whole message and last
    frames (:func:`~trainyard._execution.failure.parse_traceback`), and the exit code."""
    tail = b""
    try:
        with open(std_log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            tail = fh.read()
    except OSError:
        pass
    text = tail.decode("utf-8", "replace")
    parsed = parse_traceback(text) or {}
    message = str(parsed.get("message", ""))
    if rc < 0:
        try:
            signame = signal.Signals(-rc).name
        except ValueError:
            signame = str(-rc)
        message = message or f"The script was killed by signal {signame}."
    if not message:
        last = [ln for ln in text.splitlines() if ln.strip()]
        message = f"The script exited with code {rc}." + (
            f" Last output: {last[-1][:500]}" if last else ""
        )
    return {
        **parsed,
        "code": "UserError",
        "message": message,
        "exitCode": rc,
        "stage": "Running",
    }
