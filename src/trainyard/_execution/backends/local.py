"""Local processes: one detached supervisor per run (see :mod:`trainyard._execution.supervisor`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import TYPE_CHECKING

from trainyard._execution.backends.base import ComputeBackend
from trainyard._execution.lifecycle import RunStatus
from trainyard._execution.runfiles import (
    BUILD_LOG,
    STD_LOG,
    SUPERVISOR_LOG,
    RunPaths,
    supervisor_command,
)
from trainyard.exceptions import ArtifactNotFound, InvalidStatusTransition

if TYPE_CHECKING:
    from trainyard.core.workspace import Workspace

_LOGS = (STD_LOG, BUILD_LOG, SUPERVISOR_LOG)


class LocalProcessBackend(ComputeBackend):
    """Runs each run under its own supervisor process on this machine.

    The supervisor starts in a new session with no inherited terminal, so it survives the notebook
    or script that submitted the run.
    """

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def submit(self, run_id: str) -> None:
        paths = RunPaths(self._ws.path, run_id)
        paths.live.mkdir(parents=True, exist_ok=True)
        with open(paths.supervisor_log, "ab") as out:
            subprocess.Popen(
                supervisor_command(self._ws.path, run_id),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                cwd=self._ws.path,
                env={
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith(("TRAINYARD_RUN_ID", "AZUREML_RUN_ID"))
                },
            )

    def cancel(self, run_id: str) -> bool:
        store = self._ws._store
        info = store.get_run(run_id)
        if RunStatus.parse(info.status).is_terminal():
            return False
        try:
            store.update_run_status(
                run_id, RunStatus.CANCEL_REQUESTED.value, reason="cancel requested"
            )
        except InvalidStatusTransition:
            return not RunStatus.parse(store.get_run(run_id).status).is_terminal()
        # The database says CancelRequested (the contract); the file only makes it quick to see.
        with contextlib.suppress(OSError):
            RunPaths(self._ws.path, run_id).cancel_file.touch()
        return True

    def read_log(self, run_id: str, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        live = RunPaths(self._ws.path, run_id).live_file(name)
        try:
            with open(live, "rb") as fh:
                fh.seek(offset)
                return fh.read(limit)
        except FileNotFoundError:
            pass
        try:
            with self._ws._artifacts.open(f"runs/{run_id}/{name}") as fh:
                fh.seek(offset)
                return fh.read(limit)
        except ArtifactNotFound:
            return b""

    def log_names(self, run_id: str) -> list[str]:
        paths = RunPaths(self._ws.path, run_id)
        names = [n for n in _LOGS if paths.live_file(n).is_file()]
        for n in _LOGS:
            if n not in names and self._ws._artifacts.exists(f"runs/{run_id}/{n}"):
                names.append(n)
        return names


def backend_for(workspace: Workspace, target_type: str = "local") -> ComputeBackend:
    """The backend that runs a target's runs (local processes for every target type today)."""
    return LocalProcessBackend(workspace)
