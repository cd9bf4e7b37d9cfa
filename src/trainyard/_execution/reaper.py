"""Liveness: find runs whose owner stopped heartbeating and end them Failed, with a reason.

A supervisor (a sweep's controller, an interactive run's process) heartbeats every
``heartbeat_seconds``. If a non-terminal run's last heartbeat is older
than ``heartbeat_timeout`` (or, before the first one, its creation is older than
``STARTUP_TIMEOUTS`` × ``heartbeat_timeout``), its supervisor is gone (kill -9,
machine reboot): the run is marked Failed and, when it was on this host, its script's process group
is killed so nothing keeps running unowned. A run waiting in a Ray cluster's queue has no process
yet: it is failed only once Ray says its job ended without starting it. Called by queued supervisors, by ``wait_for_completion``
and ``get_status`` of script runs, and by the CLI — no run stays Running forever.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

from trainyard._execution.processes import ProcessId
from trainyard._lifecycle import TERMINAL, RunStatus
from trainyard.exceptions import InvalidStatusTransition

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext
    from trainyard._store.entities import RunInfo

#: ``core.run.INTERACTIVE_RUN_TYPE``: a run of ``start_logging()``, owned by the user's process,
#: which heartbeats it from a thread; a stale one is failed, and no process is ever killed for it.
INTERACTIVE_TYPE = "interactive"
#: Run types owned by a heartbeating process: a supervisor, a sweep's controller, the user's.
SUPERVISED_TYPES = ("azureml.scriptrun", "hyperdrive", INTERACTIVE_TYPE)
_WATCHED = [s.value for s in RunStatus if s not in TERMINAL and s != RunStatus.NOT_STARTED]
#: A run whose supervisor has not heartbeated yet is given this many timeouts from its creation:
#: a busy machine starting many supervisors at once (a sweep) can take a while to start each.
STARTUP_TIMEOUTS = 3.0


def reap_stale_runs(
    ctx: WorkspaceContext,
    timeout: float | None = None,
    *,
    alive_since: float = 0.0,
    interactive_timeout: float | None = None,
) -> list[str]:
    """Mark the workspace's stale supervised runs Failed; returns their ids.

    ``timeout`` defaults to the settings' ``heartbeat_timeout``. ``alive_since``: no heartbeat is
    judged older than this time (a team server passes its start: while it was down, nobody could
    heartbeat). ``interactive_timeout`` (default ``timeout``): the limit for interactive runs — a
    team server gives its clients longer, since a client cut off by the network keeps logging
    into its spool and must not find its run failed when it is back.
    """
    if ctx.server is not None:
        return []  # a team server reaps its own runs (a client or a run token may not)
    store, workspace_id = ctx.store, ctx.workspace_id
    timeout = ctx.settings.heartbeat_timeout if timeout is None else timeout
    now = time.time()
    reaped: list[str] = []
    cursor: str | None = None
    while True:
        infos, cursor = store.list_runs(
            workspace_id=workspace_id,
            statuses=_WATCHED,
            include_children=True,
            limit=200,
            cursor=cursor,
        )
        for info in infos:
            if info.run_type not in SUPERVISED_TYPES:
                continue
            last = max(info.heartbeat_at or info.created_at, alive_since)
            limit = timeout if info.heartbeat_at else timeout * STARTUP_TIMEOUTS
            if info.run_type == INTERACTIVE_TYPE and interactive_timeout is not None:
                limit = max(limit, interactive_timeout)
            if now - last <= limit:
                continue
            age = now - last
            if info.heartbeat_at is None and info.runtime.get("ray"):
                # A Ray job waits in the cluster's queue (for a node, or behind other runs) with
                # no process yet: it is lost only once Ray says its job ended without starting.
                from trainyard._execution.ray.backend import lost_queued_job

                lost = lost_queued_job(ctx, info)
                if lost is None:
                    continue
                error, reason = lost, "ray job ended before the run started"
            elif info.run_type == INTERACTIVE_TYPE:
                error, reason = _interactive_lost(age, bool(info.heartbeat_at)), "owner lost"
            else:
                _kill_orphan(info.runtime)
                error, reason = _supervisor_lost(info, age), "supervisor heartbeat lost"
            try:
                store.update_run_status(
                    info.run_id,
                    RunStatus.FAILED.value,
                    error={**error, "stage": info.status},
                    reason=reason,
                    only_from=[info.status],
                )
                reaped.append(info.run_id)
            except InvalidStatusTransition:
                pass
        if cursor is None:
            return reaped


def _supervisor_lost(info: RunInfo, age: float) -> dict[str, str]:
    next_step = _next_step(info.run_type)
    node = info.runtime.get("node")
    where = ""
    if isinstance(node, dict):  # a cluster run: say which node went quiet
        name = node.get("id") or node.get("host")
        where = f" on node {name}" + (f" ({node['ip']})" if node.get("ip") else "")
    if info.heartbeat_at:
        message = (
            f"The run's supervisor process{where} stopped responding (no heartbeat for {age:.0f} "
            f"s; it was killed or its machine went down). {next_step}"
        )
    else:
        message = (
            f"The run's supervisor process never reported ({age:.0f} s after submission; it "
            f"failed to start or was killed). {next_step}"
        )
    return {"code": "SupervisorLost", "message": message}


def _interactive_lost(age: float, beat: bool) -> dict[str, str]:
    since = "no heartbeat for" if beat else "no heartbeat ever, created"
    return {
        "code": "InteractiveProcessLost",
        "message": (
            f"The process that started this interactive run (experiment.start_logging) stopped "
            f"responding ({since} {age:.0f} s ago: it was killed, e.g. with kill -9, or its "
            "machine went down) before calling run.complete(). Points it logged but had not "
            "flushed are lost; start a new run."
        ),
    }


def _next_step(run_type: str) -> str:
    if run_type == "hyperdrive":
        return "Continue the sweep with HyperDriveRun.resume() or `trainyard sweep resume <id>`."
    return "Resubmit the run."


def _kill_orphan(runtime: dict[str, object]) -> bool:
    """SIGKILL the script's process group, only if it provably is the run's: recorded on this
    host since its last boot, and its leader is the recorded process (pid and start time) or gone
    with only its orphans left in the group. Never a group whose id a new process has reused
    (another run's, another machine's on a shared store, or anyone's after a reboot)."""
    ident = ProcessId.from_dict(runtime.get("script"))
    if ident is None or runtime.get("script_pgid") != ident.pid:
        return False  # an old record without the process's identity: nothing is provably ours
    if runtime.get("launcher") == "mpi":
        # mpirun leads a session whose ranks each have a process group of their own.
        return ident.signal_session(signal.SIGKILL) | ident.signal_group(signal.SIGKILL)
    return ident.signal_group(signal.SIGKILL)
