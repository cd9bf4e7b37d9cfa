"""``ScriptRun``: a submitted run (``run.type == "azureml.scriptrun"``)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from trainyard.core.run import SCRIPT_RUN_TYPE, Run, register_run_type

if TYPE_CHECKING:
    from trainyard._execution.backends import ComputeBackend


class ScriptRun(Run):
    """A run submitted from a ``ScriptRunConfig`` or an estimator; executed by a compute backend."""

    _last_reap = 0.0

    def _backend(self) -> ComputeBackend:
        from trainyard._execution.backends import backend_for

        return backend_for(self._ctx, self._info.target)

    def get_status(self) -> str:
        """The v1 status string, after ending runs whose supervisor died (the reaper runs at most
        every few seconds from here)."""
        now = time.monotonic()
        if now - ScriptRun._last_reap > 2.0:
            from trainyard._execution.reaper import reap_stale_runs

            reap_stale_runs(self._ctx)
            ScriptRun._last_reap = now
        return self._refresh().status

    def get_log_names(self) -> list[str]:
        """The run's logs so far, live while it executes (from its backend)."""
        return self._backend().log_names(self.id)

    def read_log(self, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Bytes of log ``name`` from ``offset``, live while the run executes (from its backend)."""
        return self._backend().read_log(self.id, name, offset, limit)

    def wait_for_completion(
        self,
        show_output: bool = False,
        wait_post_processing: bool = False,
        raise_on_error: bool = True,
        *,
        out: IO[str] | None = None,
    ) -> dict[str, Any]:
        """Block until the run ends; with ``show_output`` stream its log as it grows.

        Returns the details dict; raises ``ActivityFailedException`` if the run Failed (unless
        ``raise_on_error=False``). Ctrl-C stops the streaming, not the run. ``out`` (a trainyard
        extension) is where the log goes (default: stdout).
        """
        from trainyard.core._watch import wait_for_completion

        return wait_for_completion(
            self,
            show_output=show_output,
            wait_post_processing=wait_post_processing,
            raise_on_error=raise_on_error,
            out=out,
        )

    def cancel(self) -> bool:
        """CancelRequested → the supervisor sends SIGTERM (SIGKILL after a grace) → Canceled.
        A queued run is canceled without starting."""
        result: bool = self._backend().cancel(self.id)
        return result

    def complete(self, _set_status: bool = True) -> None:
        """A submitted run's terminal status comes from its exit code: this only flushes (v1)."""
        self.flush()

    def fail(
        self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True
    ) -> None:
        """Inside a job this only flushes (v1); the exit code decides the status."""
        self.flush()

    def get_snapshot_id(self) -> str | None:
        return self._refresh().snapshot_id

    def restore_snapshot(
        self, snapshot_id: str | None = None, path: str | os.PathLike[str] | None = None
    ) -> str:
        """Write the run's source snapshot as a zip file; returns its path (v1)."""
        from trainyard._execution.snapshot import SnapshotStore

        sid = snapshot_id or self.get_snapshot_id()
        dest = Path(path) if path is not None else Path.cwd()
        if dest.is_dir() or not dest.suffix:
            dest.mkdir(parents=True, exist_ok=True)
            dest = dest / f"{sid}.zip"
        return str(SnapshotStore(self._ctx.snapshots_dir).restore_zip(str(sid), dest))

    def get_environment(self) -> Any:
        """The run's :class:`~trainyard.core.environment.Environment`."""
        from trainyard.core.environment import Environment

        env = self._refresh().definition.get("environment") or {}
        return Environment.from_dict(env) if env else None


register_run_type(SCRIPT_RUN_TYPE, ScriptRun)
