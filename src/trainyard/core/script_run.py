"""``ScriptRun``: a submitted run (``run.type == "azureml.scriptrun"``)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from trainyard.core.run import SCRIPT_RUN_TYPE, Run


class ScriptRun(Run):
    """A run submitted from a ``ScriptRunConfig`` or an estimator; executed by a compute backend."""

    _last_reap = 0.0

    def _backend(self) -> Any:
        from trainyard._execution.backends.local import backend_for

        return backend_for(self._workspace)

    def _poll_status(self) -> str:
        """Status, after reaping runs whose supervisor died (at most every few seconds)."""
        now = time.monotonic()
        if now - ScriptRun._last_reap > 2.0:
            from trainyard._execution.reaper import reap_stale_runs

            reap_stale_runs(self._store, self._workspace._id, self._settings.heartbeat_timeout)
            ScriptRun._last_reap = now
        return self._refresh().status

    def get_status(self) -> str:
        return self._poll_status()

    def _web_view(self) -> str:
        return f"file://{self._workspace.path}/runs/{self.id}"

    def wait_for_completion(
        self, show_output: bool = False, wait_post_processing: bool = False, raise_on_error: bool = True
    ) -> dict[str, Any]:
        """Block until the run ends; with ``show_output`` stream its log as it grows.

        Returns the details dict; raises ``ActivityFailedException`` if the run Failed (unless
        ``raise_on_error=False``). Ctrl-C stops the streaming, not the run.
        """
        from trainyard._execution.watch import wait_for_completion

        return wait_for_completion(
            self, self._backend(), show_output=show_output,
            wait_post_processing=wait_post_processing, raise_on_error=raise_on_error,
        )

    def cancel(self) -> bool:
        """CancelRequested → the supervisor sends SIGTERM (SIGKILL after a grace) → Canceled.
        A queued run is canceled without starting."""
        result: bool = self._backend().cancel(self.id)
        return result

    def complete(self, _set_status: bool = True) -> None:
        """A submitted run's terminal status comes from its exit code: this only flushes (v1)."""
        self.flush()

    def fail(self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True) -> None:
        """Inside a job this only flushes (v1); the exit code decides the status."""
        self.flush()

    def get_snapshot_id(self) -> str | None:
        return self._refresh().snapshot_id

    def restore_snapshot(self, snapshot_id: str | None = None, path: str | os.PathLike[str] | None = None) -> str:
        """Write the run's source snapshot as a zip file; returns its path (v1)."""
        from trainyard._execution.snapshot import SnapshotStore

        sid = snapshot_id or self.get_snapshot_id()
        dest = Path(path) if path is not None else Path.cwd()
        if dest.is_dir() or not dest.suffix:
            dest.mkdir(parents=True, exist_ok=True)
            dest = dest / f"{sid}.zip"
        return str(SnapshotStore(self._workspace.path / "snapshots").restore_zip(str(sid), dest))

    def get_environment(self) -> Any:
        """The run's :class:`~trainyard.core.environment.Environment`."""
        from trainyard.core.environment import Environment

        env = self._refresh().definition.get("environment") or {}
        return Environment.from_dict(env) if env else None


Run._type_registry[SCRIPT_RUN_TYPE] = ScriptRun
