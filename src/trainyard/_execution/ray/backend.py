"""The Ray backend: each run is a Ray job whose entrypoint is the run's supervisor on a node.

``submit`` hands the run to Ray's Jobs API (``JobSubmissionClient.submit_job``) with the resources it
needs on one node (:func:`run_resources`: one ``trainyard_slot``, plus GPUs when the run uses them),
so Ray — not file locks — decides when and where it starts, and the autoscaler adds a node when none
has room. The job's entrypoint is ``python -m trainyard._execution.ray.node`` (see
:mod:`trainyard._execution.ray.node`): the same supervisor as on local processes, minus the slot wait,
opening the workspace the way this process does (its folder, or a team server with the run's token).
The snapshot never travels through Ray's ``working_dir`` (and its 100 MiB limit): the node restores
it from the workspace's content-addressed snapshot store.

A run that needs what no node of the cluster can ever have (4 GPUs on a CPU cluster) is refused at
submission, naming the missing resources, instead of waiting in Ray's queue forever. Cancel goes
through the store like everywhere else; a run still waiting in Ray's queue also has its job stopped
and is ended Canceled here, since no supervisor will ever see the request. Sweep controllers and
deployers run on this machine (:func:`trainyard._execution.daemon.spawn`): they only schedule.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trainyard._execution import daemon
from trainyard._execution.backends.local import LocalProcessBackend
from trainyard._execution.control import request_cancel
from trainyard._execution.ray.connection import SLOT_RESOURCE, RayConnection
from trainyard._execution.runfiles import RunPaths
from trainyard._lifecycle import RunStatus
from trainyard.exceptions import ComputeTargetException, InvalidStatusTransition, TrainyardError

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext
    from trainyard._execution.distributed import Layout
    from trainyard._store.entities import ComputeTargetRecord, RunInfo

NODE_MODULE = "trainyard._execution.ray.node"
#: Variables of this process the node's supervisor gets (the rest is the node's own environment).
_FORWARDED_PREFIXES = ("TRAINYARD_", "PIP_", "UV_")
#: Ray job states in which the entrypoint has not started yet.
_NOT_STARTED = ("PENDING",)


def job_id(run_id: str) -> str:
    """The Ray job submission id of a run."""
    return f"trainyard-{run_id}"


def run_resources(definition: Mapping[str, Any], target: ComputeTargetRecord) -> dict[str, float]:
    """What one run asks of its node: a slot (the target's ``ray.slot_resource``, default
    ``trainyard_slot``), and the node's GPUs when the run uses GPUs."""
    section = target.config.get("ray") or {}
    resources: dict[str, float] = {str(section.get("slot_resource") or SLOT_RESOURCE): 1.0}
    if definition.get("requiresGpu"):
        node = section.get("node_resources") or {}
        resources["GPU"] = float(node.get("GPU") or 1)
    return resources


class RayBackend(LocalProcessBackend):
    """Runs each run as a Ray job on the cluster the target names (see the module docstring).

    Logs are read like the local backend's (the run's live folder, then its uploaded copies): a
    node on this machine or on a shared filesystem writes them into the workspace folder as the
    run goes.
    """

    def __init__(self, ctx: WorkspaceContext, target: ComputeTargetRecord) -> None:
        super().__init__(ctx, target)
        self.connection = RayConnection.of(target)

    # -- what the target can run -------------------------------------------------------------------
    def check_layout(self, layout: Layout, gpu_count: int) -> None:
        from trainyard._execution.distributed import check_layout, describe

        check_layout(layout, self.target.name, self.target.config, gpu_count)
        if layout.node_count > 1:
            raise ComputeTargetException(
                f"{describe(layout)} needs {layout.node_count} nodes; compute target "
                f"{self.target.name!r} runs each job on one Ray node for now. Use node_count=1 "
                "with all ranks on that node.",
                target=self.target.name,
                node_count=layout.node_count,
            )

    def check_run(self, definition: Mapping[str, Any]) -> None:
        self.check_schedulable(run_resources(definition, self.target))

    def check_schedulable(self, resources: Mapping[str, float]) -> None:
        """Refuse a run no node of the cluster can ever take, naming what is missing."""
        node = (self.target.config.get("ray") or {}).get("node_resources")
        if isinstance(node, dict) and node:
            offers = [{k: float(v) for k, v in node.items()}]
            where = f"its nodes ({self.target.config.get('vm_size') or 'node type'}) offer"
        else:  # an attached cluster: what its nodes have now
            offers = [
                {k: float(v) for k, v in (n.get("resources_total") or {}).items()}
                for n in self.connection.nodes()
                if n.get("state") == "ALIVE"
            ]
            where = "its alive nodes offer"
        if any(all(o.get(k, 0.0) >= v for k, v in resources.items()) for o in offers):
            return
        best = max(
            offers, key=lambda o: sum(o.get(k, 0.0) >= v for k, v in resources.items()), default={}
        )
        missing = ", ".join(
            f"{k}={v:g} (has {best.get(k, 0.0):g})"
            for k, v in resources.items()
            if best.get(k, 0.0) < v
        )
        raise ComputeTargetException(
            f"No node of compute target {self.target.name!r} can ever run this job: it needs "
            f"{missing or dict(resources)}, and {where} {offers or 'nothing'}. Submit to a target "
            "whose nodes have these resources (a GPU vm_size for GPU runs).",
            target=self.target.name,
            missing=missing,
        )

    # -- runs ----------------------------------------------------------------------------------------
    def submit(self, run_id: str, env: Mapping[str, str] | None = None) -> None:
        info = self.ctx.store.get_run(run_id)
        resources = run_resources(info.definition, self.target)
        RunPaths(self.ctx.home, run_id).live.mkdir(parents=True, exist_ok=True)
        python = self._node_python()
        entrypoint = shlex.join(
            [python, "-m", NODE_MODULE, "--workspace", str(self.ctx.home), "--run-id", run_id]
        )
        env_vars = {
            k: v for k, v in daemon.child_environment().items() if k.startswith(_FORWARDED_PREFIXES)
        }
        env_vars.update(env or {})
        env_vars["TRAINYARD_RAY_DASHBOARD"] = self.connection.dashboard_url
        env_vars["TRAINYARD_RAY_JOB"] = job_id(run_id)
        client = self.connection.job_client()
        try:
            client.submit_job(
                entrypoint=entrypoint,
                submission_id=job_id(run_id),
                entrypoint_num_cpus=0,
                entrypoint_resources=resources,
                runtime_env={"env_vars": env_vars},
                metadata={"trainyard_run": run_id, "trainyard_target": self.target.name},
            )
        except (RuntimeError, ConnectionError, ValueError) as err:
            raise ComputeTargetException(
                f"The Ray cluster of compute target {self.target.name!r} refused run {run_id}: "
                f"{err}",
                target=self.target.name,
            ) from None
        self.ctx.store.update_run(
            run_id,
            runtime={
                "ray": {
                    "job": job_id(run_id),
                    "dashboard": self.connection.dashboard_url,
                    "resources": resources,
                }
            },
        )

    def _node_python(self) -> str:
        """The interpreter the node starts the supervisor with: a managed cluster's nodes are this
        machine's (this interpreter); an attached cluster's come from its config, else ``python``."""
        section = self.target.config.get("ray") or {}
        if section.get("python"):
            return str(section["python"])
        return sys.executable if section.get("managed", True) else "python"

    def cancel(self, run_id: str) -> bool:
        before = self.ctx.store.get_run(run_id).status
        if not request_cancel(self.ctx, run_id):
            return False
        if before == RunStatus.QUEUED.value:
            self._cancel_waiting(run_id)
        return True

    def _cancel_waiting(self, run_id: str) -> None:
        """A run still in Ray's queue: stop its job; if its entrypoint never started, no
        supervisor will see the request, so the run is ended Canceled here."""
        job = str((self.ctx.store.get_run(run_id).runtime.get("ray") or {}).get("job"))
        try:
            client = self.connection.job_client()
            state = str(client.get_job_status(job))
            if state.split(".")[-1] in _NOT_STARTED:
                client.stop_job(job)
                state = str(client.get_job_status(job))
        except (TrainyardError, RuntimeError, ConnectionError):
            return  # the cluster is away: its supervisor, when it starts, sees the request
        if state.split(".")[-1] in ("RUNNING",):
            return  # the node's supervisor owns it and ends it Canceled
        with contextlib.suppress(InvalidStatusTransition):
            self.ctx.store.update_run_status(
                run_id,
                RunStatus.CANCELED.value,
                reason="Canceled before a Ray node started it.",
                only_from=[RunStatus.CANCEL_REQUESTED.value],
            )

    def launch(self, entrypoint: daemon.Entrypoint) -> int | None:
        """Sweep controllers and deployers run here; their runs go to the cluster."""
        return daemon.spawn(entrypoint)


#: A job lost before its entrypoint ran (placed on a node that then died) is submitted again up to
#: this many times in all: the run never started, so nothing runs twice.
PLACEMENT_ATTEMPTS = 3


def lost_queued_job(ctx: WorkspaceContext, info: RunInfo) -> dict[str, str] | None:
    """For a Queued run that no supervisor has reported for: the error to fail it with when its
    Ray job ended without starting it (its entrypoint failed), ``None`` while the job still waits
    or runs, or the cluster cannot be asked. A job Ray lost before its entrypoint ran (its node
    died while it was being placed) is submitted again, up to :data:`PLACEMENT_ATTEMPTS` times."""
    from trainyard._execution.targets import resolve_target_record

    section = info.runtime.get("ray") or {}
    job = str(section.get("job") or job_id(info.run_id))
    try:
        client = RayConnection.of(resolve_target_record(ctx, info.target)).job_client()
        details = client.get_job_info(job)
    except (TrainyardError, RuntimeError, ConnectionError):
        return None
    state = str(details.status).split(".")[-1]
    if state in ("PENDING", "RUNNING"):
        return None
    attempts = int(section.get("attempts") or 1)
    if details.driver_exit_code is None and state == "FAILED" and attempts < PLACEMENT_ATTEMPTS:
        retry = f"{job_id(info.run_id)}-{attempts + 1}"
        runtime_env = dict(details.runtime_env or {})
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), "TRAINYARD_RAY_JOB": retry}
        with contextlib.suppress(RuntimeError, ConnectionError):
            client.submit_job(
                entrypoint=details.entrypoint,
                submission_id=retry,
                entrypoint_num_cpus=0,
                entrypoint_resources=section.get("resources") or {SLOT_RESOURCE: 1.0},
                runtime_env=runtime_env,
                metadata=details.metadata,
            )
            ctx.store.update_run(
                info.run_id,
                runtime={
                    "ray": {
                        **section,
                        "job": retry,
                        "attempts": attempts + 1,
                        "lost": [*section.get("lost", []), f"{job}: {details.message}"],
                    }
                },
            )
            return None
    tail = ""
    with contextlib.suppress(RuntimeError, ConnectionError):
        tail = client.get_job_logs(job)[-1500:]
    message = (
        f"The run's Ray job {job} ended {state} before the run started: "
        f"{details.message or 'no reason given'}"
    )
    if tail.strip():
        message += f"\nIts log ends:\n{tail}"
    return {"code": "RayJobLost", "message": message + "\nResubmit the run."}


__all__ = [
    "NODE_MODULE",
    "PLACEMENT_ATTEMPTS",
    "RayBackend",
    "job_id",
    "lost_queued_job",
    "run_resources",
]
