"""Local processes: one detached supervisor per run (see :mod:`trainyard._execution.supervisor`)."""

from __future__ import annotations

from collections.abc import Mapping

from trainyard._execution import daemon
from trainyard._execution.backends.base import ComputeBackend
from trainyard._execution.control import request_cancel
from trainyard._execution.runfiles import (
    BUILD_LOG,
    LAUNCHER_LOG,
    STD_LOG,
    SUPERVISOR_LOG,
    RunPaths,
    rank_log,
    sort_log_names,
)
from trainyard.exceptions import ArtifactNotFound

_LOGS = (STD_LOG, BUILD_LOG, SUPERVISOR_LOG, LAUNCHER_LOG)
SUPERVISOR_MODULE = "trainyard._execution.supervisor"


class LocalProcessBackend(ComputeBackend):
    """Runs each run under its own supervisor process on this machine.

    The supervisor starts in a new session with no inherited terminal, so it survives the notebook
    or script that submitted the run; slots (``max_concurrent_runs``) are file locks the kernel
    frees when their holder dies.
    """

    def launch(self, entrypoint: daemon.Entrypoint) -> int | None:
        return daemon.spawn(entrypoint)

    def submit(self, run_id: str, env: Mapping[str, str] | None = None) -> None:
        paths = RunPaths(self.ctx.home, run_id)
        paths.live.mkdir(parents=True, exist_ok=True)
        self.launch(
            daemon.Entrypoint(
                SUPERVISOR_MODULE,
                self.ctx.home,
                ("--run-id", run_id),
                paths.supervisor_log,
                env=tuple(sorted((env or {}).items())),
            )
        )

    def cancel(self, run_id: str) -> bool:
        return request_cancel(self.ctx, run_id)

    def read_log(self, run_id: str, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        live = RunPaths(self.ctx.home, run_id).live_file(name)
        try:
            with open(live, "rb") as fh:
                fh.seek(offset)
                return fh.read(limit)
        except FileNotFoundError:
            pass
        try:
            with self.ctx.artifacts.open(f"runs/{run_id}/{name}") as fh:
                fh.seek(offset)
                return fh.read(limit)
        except ArtifactNotFound:
            return b""

    def log_names(self, run_id: str) -> list[str]:
        paths = RunPaths(self.ctx.home, run_id)
        names = [n for n in paths.live_log_names() if n in _LOGS or n.startswith("user_logs/")]
        for n in _LOGS:
            if n not in names and self.ctx.artifacts.exists(f"runs/{run_id}/{n}"):
                names.append(n)
        if rank_log(0) not in names:  # no live rank logs here: a distributed run's uploads
            rank = 0
            while self.ctx.artifacts.exists(f"runs/{run_id}/{rank_log(rank)}"):
                names.append(rank_log(rank))
                rank += 1
        return sort_log_names(names)
