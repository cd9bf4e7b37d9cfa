"""The Ray backend: a target's runs are Ray tasks of one dispatcher job, each holding a node's slot
while the run's supervisor runs there.

``submit`` hands the run to the target's dispatcher (a folder queue,
:class:`~trainyard._execution.ray.runqueue.RunQueue`) and makes sure the dispatcher — one Ray job per
target, :mod:`trainyard._execution.ray.dispatcher` — is running, starting it through Ray's Jobs API
when it is not. The dispatcher submits one task per run with the resources the run needs on one node
(:func:`run_resources`: one ``trainyard_slot``, plus GPUs when the run uses them), so Ray — not file
locks — decides when and where it starts, and the autoscaler adds a node when none has room. The
task starts the run's supervisor on that node (:mod:`trainyard._execution.ray.node`: the local
supervisor minus the slot wait), which opens the workspace the way this process does (its folder,
or a team server with the run's token). The snapshot never travels through Ray's ``working_dir``
(and its 100 MiB limit): the node restores it from the workspace's content-addressed snapshot store.
The nodes see the workspace folder (they are this machine's, or share its filesystem).

A run that needs what no node of the cluster can ever have is refused at submission, naming the
missing resources, instead of waiting in Ray's queue forever. Cancel goes through the store and the
run's kill file like everywhere else; the dispatcher cancels the task of a run still waiting in
Ray's queue and ends it Canceled. Sweep controllers and deployers run on this machine
(:func:`trainyard._execution.daemon.spawn`): they only schedule.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trainyard._compat.platform import lock as lock_file
from trainyard._execution import daemon
from trainyard._execution.backends.local import LocalProcessBackend
from trainyard._execution.control import request_cancel
from trainyard._execution.ray.connection import SLOT_RESOURCE, RayConnection
from trainyard._execution.ray.runqueue import RunQueue
from trainyard._execution.runfiles import RunPaths
from trainyard.exceptions import ComputeTargetException, TrainyardError

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext
    from trainyard._execution.distributed import Layout
    from trainyard._store.entities import ComputeTargetRecord, RunInfo

DISPATCHER_MODULE = "trainyard._execution.ray.dispatcher"
#: Variables of this process a run's supervisor gets (the rest is its node's own environment).
_FORWARDED_PREFIXES = ("TRAINYARD_", "PIP_", "UV_")
#: A dispatcher that touched its ``alive`` file this recently is running.
_ALIVE_S = 3.0
#: Ray job states of a dispatcher that is (or will be) running.
_LIVE_STATES = ("PENDING", "RUNNING")


def run_resources(definition: Mapping[str, Any], target: ComputeTargetRecord) -> dict[str, float]:
    """What one run asks of its node: a slot (the target's ``ray.slot_resource``, default
    ``trainyard_slot``), and the node's GPUs when the run uses GPUs."""
    section = target.config.get("ray") or {}
    resources: dict[str, float] = {str(section.get("slot_resource") or SLOT_RESOURCE): 1.0}
    if definition.get("requiresGpu"):
        node = section.get("node_resources") or {}
        resources["GPU"] = float(node.get("GPU") or 1)
    return resources


def _state(value: Any) -> str:
    return str(value).split(".")[-1]


class RayBackend(LocalProcessBackend):
    """Runs each run as a Ray task of the target's dispatcher (see the module docstring).

    Logs are read like the local backend's (the run's live folder, then its uploaded copies): a
    node on this machine or on a shared filesystem writes them into the workspace folder as the
    run goes.
    """

    def __init__(self, ctx: WorkspaceContext, target: ComputeTargetRecord) -> None:
        super().__init__(ctx, target)
        self.connection = RayConnection.of(target)
        self.queue = RunQueue(ctx.home, target.name)

    # -- what the target can run -------------------------------------------------------------------
    def check_layout(self, layout: Layout, gpu_count: int) -> None:
        """The shared rules only: a job's nodes are the cluster's (PyTorch and MPI jobs span
        them, see ``ray/ranks.py``), its ``mpirun`` runs on its first node."""
        from trainyard._execution.distributed import check_layout

        check_layout(layout, self.target.name, self.target.config, gpu_count)

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
        env_vars = {
            k: v for k, v in daemon.child_environment().items() if k.startswith(_FORWARDED_PREFIXES)
        }
        env_vars.update(env or {})
        from trainyard._execution.distributed import Layout

        nodes = Layout.from_definition(info.definition).node_count
        self.queue.put(run_id, env_vars, resources, nodes=nodes)
        job = self.ensure_dispatcher()
        self.ctx.store.update_run(
            run_id,
            runtime={
                "ray": {
                    "dispatcher": job,
                    "dashboard": self.connection.dashboard_url,
                    "resources": resources,
                }
            },
        )

    def ensure_dispatcher(self) -> str:
        """The submission id of the target's running dispatcher, started if none runs."""
        if self.queue.dispatcher_beat_age() < _ALIVE_S:
            return self.queue.dispatcher_job() or ""
        self.queue.root.mkdir(parents=True, exist_ok=True)
        with open(self.queue.root / "dispatcher.lock", "a") as held:
            lock_file(held)  # one submitter starts it; the others find it started
            if self.queue.dispatcher_beat_age() < _ALIVE_S:
                return self.queue.dispatcher_job() or ""
            job = self.queue.dispatcher_job()
            client = self.connection.job_client()
            if job is not None:
                with contextlib.suppress(RuntimeError):
                    if _state(client.get_job_status(job)) in _LIVE_STATES:
                        return job
                # Its tasks died with it: runs it had taken but not started go back in line.
                self.queue.requeue_unstarted()
            job = f"trainyard-dispatch-{self.target.name}-{uuid.uuid4().hex[:8]}"
            entrypoint = shlex.join(
                [
                    self._node_python(),
                    "-m",
                    DISPATCHER_MODULE,
                    "--workspace",
                    str(self.ctx.home),
                    "--target",
                    self.target.name,
                ]
            )
            try:
                client.submit_job(
                    entrypoint=entrypoint,
                    submission_id=job,
                    entrypoint_num_cpus=0,
                    metadata={"trainyard_target": self.target.name},
                )
            except (RuntimeError, ConnectionError, ValueError) as err:
                raise ComputeTargetException(
                    f"The Ray cluster of compute target {self.target.name!r} refused its "
                    f"dispatcher job: {err}",
                    target=self.target.name,
                ) from None
            self.queue.set_dispatcher_job(job)
            return job

    def _node_python(self) -> str:
        """The interpreter the dispatcher starts with: a managed cluster's nodes are this
        machine's (this interpreter); an attached cluster's come from its config, else ``python``."""
        section = self.target.config.get("ray") or {}
        if section.get("python"):
            return str(section["python"])
        return sys.executable if section.get("managed", True) else "python"

    def cancel(self, run_id: str) -> bool:
        # The kill file next to the run tells its supervisor, or its dispatcher while it waits.
        return request_cancel(self.ctx, run_id)

    def launch(self, entrypoint: daemon.Entrypoint) -> int | None:
        """Sweep controllers and deployers run here; their runs go to the cluster."""
        return daemon.spawn(entrypoint)

    def lost(self, info: RunInfo) -> dict[str, str] | None:
        """For a Queued run that no supervisor has reported for: the error to fail it with when
        its node could not start it or its dispatcher cannot run, ``None`` while it waits (a
        dead dispatcher is started again, and the run put back in line)."""
        error = self.queue.error(info.run_id)
        if error:
            return {"code": "RayJobLost", "message": error + "\nResubmit the run."}
        job = self.queue.dispatcher_job()
        try:
            client = self.connection.job_client()
        except (TrainyardError, RuntimeError, ConnectionError):
            return None  # the cluster is away: the run waits for it
        details = None
        if job is not None:
            with contextlib.suppress(RuntimeError, ConnectionError):  # unknown to a new head
                details = client.get_job_info(job)
        if (
            job is None
            or details is None
            or (
                _state(details.status) in ("SUCCEEDED", "STOPPED")
                or details.driver_exit_code is None
            )
        ):
            # Running, gone, or ended without failing (idle, stopped, its node lost): (re)start it.
            with contextlib.suppress(TrainyardError, RuntimeError, ConnectionError):
                self.ensure_dispatcher()
            return None
        state = _state(details.status)
        tail = ""
        with contextlib.suppress(RuntimeError, ConnectionError):
            tail = client.get_job_logs(job)[-1500:]
        message = (
            f"The dispatcher of compute target {self.target.name!r} (Ray job {job}) ended "
            f"{state}: {details.message or 'no reason given'}"
        )
        if tail.strip():
            message += f"\nIts log ends:\n{tail}"
        return {"code": "RayJobLost", "message": message + "\nResubmit the run."}


def lost_queued_job(ctx: WorkspaceContext, info: RunInfo) -> dict[str, str] | None:
    """:meth:`RayBackend.lost` for the run's target (``None`` when the target is gone)."""
    from trainyard._execution.targets import resolve_target_record

    try:
        backend = RayBackend(ctx, resolve_target_record(ctx, info.target))
    except TrainyardError:
        return None
    return backend.lost(info)


__all__ = ["DISPATCHER_MODULE", "RayBackend", "lost_queued_job", "run_resources"]
