"""Runs submitted to the server execute on the server's compute.

Each workspace has a folder on the server machine (``<artifacts>/<workspace>/``: its artifact store,
snapshots, run files, compute slots) and a ``workspace.json`` that names the server, so the
supervisors and sweep controllers started there open the workspace *over HTTP* with a run-scoped
token (``TRAINYARD_TOKEN`` in their environment): they may write only their own run and its
children, and hold no database credential. The server itself drives them through its own direct
context (its SQL store and local files) and the compute backend the target's type picks. A reaper
thread ends runs whose supervisor stopped heartbeating, in every workspace.

Example::

    execution = Execution(state)
    execution.submit("team", run_id)
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from trainyard._context import META_FILE, WorkspaceContext, atomic_write_json
from trainyard._lifecycle import RunStatus
from trainyard.exceptions import PermissionDenied, TrainyardError, ValidationError
from trainyard.server.state import ServerState
from trainyard.settings import load_settings

#: A run token lives at most this long (it is revoked as soon as the run ends).
RUN_TOKEN_SECONDS = 30 * 86400.0
_REAP_EVERY_S = 5.0
#: A client's interactive run is failed only after this long without a heartbeat: a laptop whose
#: network drops keeps logging into its spool, and its records must still be taken when it is back.
INTERACTIVE_CLIENT_TIMEOUT_S = 900.0
#: The processes the server starts outlive a restart of the server: they keep retrying calls, and
#: keep their spooled records until it is back (an hour), instead of failing the run.
_PATIENT = {"TRAINYARD_SERVER_RETRY_SECONDS": "600", "TRAINYARD_SPOOL_EXIT_SECONDS": "3600"}


class Execution:
    """Starts and stops the server's runs and sweeps (see the module docstring)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._homes: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: Heartbeats could not arrive while this server was down: none is judged stale against
        #: a time before it started.
        self.started_at = time.time()

    # -- contexts -------------------------------------------------------------------------------
    def home(self, workspace: str) -> Path:
        """The workspace's folder on this machine, with the ``workspace.json`` its processes open."""
        folder = self.state.workspace_folder(workspace)
        with self._lock:
            if workspace in self._homes:
                return folder
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"name": workspace, "server": self.state.config.url, "format": 1}
        atomic_write_json(folder / META_FILE, meta)
        with self._lock:
            self._homes.add(workspace)
        return folder

    def context(self, workspace: str) -> WorkspaceContext:
        """The server's own (direct) context of a workspace."""
        home = self.home(workspace)
        info = self.state.store.get_workspace(workspace)
        return WorkspaceContext(
            home=home,
            name=info.name,
            workspace_id=info.id,
            store=self.state.store,
            artifacts=self.state.artifacts(workspace),
            settings=load_settings(),
            store_url=self.state.store.url,
            meta={"name": info.name},
        )

    def _run_token(self, workspace_id: str, run_id: str) -> str:
        _, secret = self.state.accounts.create_token(
            None,
            kind="run",
            run_id=run_id,
            workspace_id=workspace_id,
            expires_at=time.time() + RUN_TOKEN_SECONDS,
            name=f"run {run_id}",
        )
        return secret

    # -- runs -----------------------------------------------------------------------------------
    def submit(self, workspace: str, run_id: str) -> None:
        """Start the supervisor of a Queued run of ``workspace``."""
        from trainyard._execution.backends import backend_for

        ctx = self.context(workspace)
        info = ctx.store.get_run(run_id)
        if info.workspace_id != ctx.workspace_id:
            raise PermissionDenied(f"Run {run_id} is not in workspace {workspace}.")
        if info.status != RunStatus.QUEUED.value:
            raise ValidationError(
                f"Run {run_id} is {info.status}; only a Queued run can be started.", run_id=run_id
            )
        token = self._run_token(ctx.workspace_id, run_id)
        backend_for(ctx, info.target).submit(run_id, env={"TRAINYARD_TOKEN": token, **_PATIENT})

    def launch_controller(self, workspace: str, run_id: str) -> None:
        """Start the controller of a Queued HyperDrive parent run."""
        from trainyard._execution.backends import backend_for
        from trainyard._execution.daemon import Entrypoint
        from trainyard.train.hyperdrive._submit import CONTROLLER_MODULE, controller_log_path

        ctx = self.context(workspace)
        info = ctx.store.get_run(run_id)
        if info.workspace_id != ctx.workspace_id or info.run_type != "hyperdrive":
            raise ValidationError(f"Run {run_id} is not a sweep of workspace {workspace}.")
        token = self._run_token(ctx.workspace_id, run_id)
        entrypoint = Entrypoint(
            CONTROLLER_MODULE,
            ctx.home,
            ("--run-id", run_id),
            controller_log_path(ctx.home, run_id),
            env=(("TRAINYARD_TOKEN", token), *_PATIENT.items()),
        )
        backend_for(ctx, info.target).launch(entrypoint)

    def cancel(self, workspace: str, run_id: str) -> bool:
        """Request cancellation (the store, and the kill file next to the run)."""
        from trainyard._execution.control import request_cancel

        return request_cancel(self.context(workspace), run_id)

    def read_log(self, workspace: str, run_id: str, name: str, offset: int, limit: int) -> bytes:
        """A run log from ``offset``: the live file while the run executes here, else its copy."""
        from trainyard._execution.backends.local import LocalProcessBackend
        from trainyard._execution.targets import local_target

        ctx = self.context(workspace)
        return LocalProcessBackend(ctx, local_target(ctx.workspace_id)).read_log(
            run_id, name, offset, limit
        )

    def log_names(self, workspace: str, run_id: str) -> list[str]:
        from trainyard._execution.backends.local import LocalProcessBackend
        from trainyard._execution.targets import local_target

        ctx = self.context(workspace)
        names = LocalProcessBackend(ctx, local_target(ctx.workspace_id)).log_names(run_id)
        from trainyard.train.hyperdrive._submit import CONTROLLER_LOG

        if CONTROLLER_LOG not in names:
            with contextlib.suppress(TrainyardError):
                if ctx.artifacts.exists(f"runs/{run_id}/{CONTROLLER_LOG}"):
                    names.append(CONTROLLER_LOG)
        return names

    # -- liveness -------------------------------------------------------------------------------
    def start_reaper(self) -> None:
        """End stale runs of every workspace from a daemon thread, every few seconds."""
        threading.Thread(target=self._reap_forever, name="trainyard-reaper", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _reap_forever(self) -> None:
        from trainyard._execution.reaper import reap_stale_runs

        while not self._stop.wait(_REAP_EVERY_S):
            try:
                names = [w.name for w in self.state.store.list_workspaces()]
            except TrainyardError:
                continue
            for name in names:
                with contextlib.suppress(TrainyardError):
                    ctx = self.context(name)
                    stale = reap_stale_runs(
                        ctx,
                        alive_since=self.started_at,
                        interactive_timeout=INTERACTIVE_CLIENT_TIMEOUT_S,
                    )
                    for run_id in stale:
                        self.state.accounts.revoke_run_tokens(run_id)
