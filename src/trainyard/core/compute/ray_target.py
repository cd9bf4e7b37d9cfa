"""Compute targets on Ray clusters: ``AmlCompute`` provisioned with ``backend="ray"`` (a cluster
trainyard starts, scales and stops on this machine) and ``RayCompute`` (a cluster someone else
runs, attached by address and token).

A managed cluster lives in ``<workspace>/clusters/<target>/`` (see
:mod:`trainyard._execution.ray.cluster`); its record keeps the connection
(:mod:`trainyard._execution.ray.connection`)::

    {"vm_size": "STANDARD_D2_V2", "min_nodes": 0, "max_nodes": 4,
     "idle_seconds_before_scaledown": 1800, "vm_priority": "dedicated", ...,
     "backend": "ray", "runs_per_node": 1, "max_concurrent_runs": 4, "gpus": 0,
     "ray": {"managed": true, "address": "127.0.0.1:PORT", "dashboard_url": "http://127.0.0.1:PORT",
             "token_file": ".../clusters/NAME/token", "folder": ".../clusters/NAME",
             "node_type": "standard_d2_v2",
             "node_resources": {"CPU": 2, "memory": 7516192768, "trainyard_slot": 1}}}

Example::

    cfg = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=2, backend="ray")
    target = ComputeTarget.create(ws, "cpu-cluster", cfg)
    target.wait_for_completion(show_output=True)
    target.update(min_nodes=1)                       # a node comes
    ComputeTarget.attach(ws, "theirs", RayCompute.attach_configuration(
        address="10.0.0.5:6379", token=os.environ["RAY_TOKEN"]))
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from trainyard._compat.platform import FileLock
from trainyard._execution.ray.cluster import (
    STATE_FILE,
    TOKEN_FILE,
    ManagedRayCluster,
    NodeType,
    write_private,
)
from trainyard._execution.ray.connection import RAY_BACKEND, SLOT_RESOURCE, RayConnection
from trainyard._execution.ray.vm_sizes import node_resources, node_type_name
from trainyard.core.compute.target import ComputeTarget, node_fields
from trainyard.exceptions import ComputeConfigurationError, ComputeTargetException

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext
    from trainyard._store.entities import ComputeTargetRecord
    from trainyard.core.workspace import Workspace

#: The target type of an attached Ray cluster.
RAY_COMPUTE = "raycompute"
#: Ray's default dashboard port (an attach by GCS address alone assumes it).
DEFAULT_DASHBOARD_PORT = 8265


def cluster_folder(ctx: WorkspaceContext, name: str) -> Path:
    """Where target ``name``'s cluster files live."""
    return ctx.home / "clusters" / name


def _lock(ctx: WorkspaceContext, name: str) -> FileLock:
    root = ctx.home / "clusters"
    root.mkdir(parents=True, exist_ok=True)
    return FileLock(root / f".{name}.lock")


def require_ray() -> None:
    """``ComputeTargetException`` saying what to install when Ray is not importable here."""
    if importlib.util.find_spec("ray") is None:
        raise ComputeTargetException(
            "Ray is not installed here: pip install 'trainyard[ray]' to run compute targets on "
            "Ray, or provision with backend='local' (processes on this machine)."
        )


def node_types(config: dict[str, Any]) -> dict[str, NodeType]:
    """The autoscaler's node types for a managed target's ``config``."""
    section = config.get("ray") or {}
    resources = section.get("node_resources") or node_resources(
        str(config["vm_size"]), int(config.get("runs_per_node") or 1)
    )
    name = section.get("node_type") or node_type_name(str(config["vm_size"]))
    return {
        str(name): NodeType(
            dict(resources), int(config.get("min_nodes") or 0), int(config["max_nodes"])
        )
    }


def _idle_minutes(config: dict[str, Any]) -> float:
    return float(config.get("idle_seconds_before_scaledown", 1800)) / 60.0


def managed_cluster(record: ComputeTargetRecord) -> ManagedRayCluster | None:
    """The managed cluster of ``record`` (``None`` for an attached one or none at all)."""
    section = (record.config or {}).get("ray") or {}
    if not section.get("managed") or not section.get("folder"):
        return None
    return ManagedRayCluster.load(Path(str(section["folder"])))


# -- create, re-create, release -------------------------------------------------------------------
def create_managed(workspace: Workspace, name: str, config: dict[str, Any]) -> ComputeTargetRecord:
    """Start (or rescale, or restart) target ``name``'s cluster for ``config`` (an ``AmlCompute``
    provisioning config with ``backend: ray``) and store the record; nothing is stored and what
    was started is stopped when it fails."""
    ctx = workspace.context
    if ctx.remote:
        raise ComputeTargetException(
            f"Compute target {name!r}: a Ray cluster is started on the machine that executes "
            "runs; on a team-server workspace create it on the server (`trainyard compute create "
            f"{name} --backend ray -w <server workspace folder>`), or attach one with "
            "ComputeTarget.attach(ws, name, RayCompute.attach_configuration(...)).",
            target=name,
        )
    require_ray()
    runs_per_node = int(config.get("runs_per_node") or 1)
    resources = node_resources(str(config["vm_size"]), runs_per_node)
    folder = cluster_folder(ctx, name)
    config["ray"] = {
        "managed": True,
        "folder": str(folder),
        "node_type": node_type_name(str(config["vm_size"])),
        "node_resources": resources,
    }
    config["gpus"] = int(resources.get("GPU", 0))
    types = node_types(config)
    with _lock(ctx, name):
        fresh = not (folder / STATE_FILE).exists()
        existing = None if fresh else ManagedRayCluster.load(folder)
        started: ManagedRayCluster | None = None
        if existing is not None and existing.alive():
            existing.set_scale(types, _idle_minutes(config))
            cluster = existing
        else:
            if existing is not None:
                existing.stop()  # whatever a crashed head left in its session
            try:
                cluster = started = ManagedRayCluster.start(
                    folder, types, _idle_minutes(config), cluster_name=f"trainyard-{name}"
                )
            except BaseException:
                if fresh:
                    shutil.rmtree(folder, ignore_errors=True)
                raise
        config["ray"].update(
            address=cluster.address,
            dashboard_url=cluster.dashboard_url,
            token_file=str(cluster.token_file),
        )
        try:
            return ctx.store.put_compute_target(ctx.workspace_id, name, "amlcompute", config)
        except BaseException:
            if started is not None:
                started.remove() if fresh else started.stop()
            raise


def release_cluster(ctx: WorkspaceContext, name: str) -> None:
    """Stop target ``name``'s managed cluster, if it has one, and remove its folder."""
    folder = cluster_folder(ctx, name)
    if (folder / STATE_FILE).exists():
        with _lock(ctx, name):
            ManagedRayCluster.load(folder).remove()
    else:
        shutil.rmtree(folder, ignore_errors=True)


# -- attach ---------------------------------------------------------------------------------
@dataclass
class RayComputeAttachConfiguration:
    """What ``ComputeTarget.attach`` needs to attach a running Ray cluster."""

    address: str | None = None
    dashboard_url: str | None = None
    token: str | None = None
    max_concurrent_runs: int | None = None

    def resolved_dashboard_url(self) -> str:
        """The dashboard URL given, else one derived from the address (Ray's default port)."""
        if self.dashboard_url:
            return self.dashboard_url.rstrip("/")
        address = (self.address or "").strip()
        if not address:
            raise ComputeConfigurationError(
                "RayCompute.attach_configuration needs address='HOST:PORT' (the cluster's GCS "
                "address) or dashboard_url='http://HOST:8265'."
            )
        if address.startswith(("http://", "https://")):
            return address.rstrip("/")
        host = urlsplit(address if "://" in address else f"//{address}").hostname
        if not host:
            raise ComputeConfigurationError(
                f"Cannot read a host from address {address!r}: give 'HOST:PORT' or dashboard_url."
            )
        return f"http://{host}:{DEFAULT_DASHBOARD_PORT}"

    def validate(self) -> None:
        """Raise ``ComputeConfigurationError`` for a configuration that cannot be attached."""
        self.resolved_dashboard_url()
        m = self.max_concurrent_runs
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or m < 1):
            raise ComputeConfigurationError(
                f"max_concurrent_runs must be a positive integer, not {m!r}."
            )


def _refuse_managed(folder: Path, name: str) -> None:
    if (folder / STATE_FILE).exists():
        raise ComputeTargetException(
            f"Compute target {name!r} is a Ray cluster trainyard manages; delete it first "
            f"(`trainyard compute delete {name}`) or attach under another name.",
            target=name,
        )


def attach(
    workspace: Workspace, name: str, attach_config: RayComputeAttachConfiguration
) -> ComputeTargetRecord:
    """Check that the cluster answers (and takes the token), then store a ``raycompute`` record."""
    attach_config.validate()
    require_ray()
    ctx = workspace.context
    folder = cluster_folder(ctx, name)
    _refuse_managed(folder, name)
    dashboard = attach_config.resolved_dashboard_url()
    conn = RayConnection(
        target=name,
        address=attach_config.address or "",
        dashboard_url=dashboard,
        token=attach_config.token,
    )
    version = conn.get("/api/version", timeout=10)
    workers = [n for n in conn.nodes() if n.get("state") == "ALIVE" and not n.get("is_head_node")]
    slots = sum(int((n.get("resources_total") or {}).get(SLOT_RESOURCE, 0)) for n in workers)
    gpus = max((int((n.get("resources_total") or {}).get("GPU", 0)) for n in workers), default=0)
    with _lock(ctx, name):
        _refuse_managed(folder, name)
        section: dict[str, Any] = {
            "managed": False,
            "address": attach_config.address or "",
            "dashboard_url": dashboard,
            # no "node_resources": its nodes may differ; the backend asks the alive ones
            "ray_version": (version or {}).get("ray_version"),
        }
        if attach_config.token and not ctx.remote:
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
            write_private(folder / TOKEN_FILE, attach_config.token)
            section["token_file"] = str(folder / TOKEN_FILE)
        elif attach_config.token:
            section["token"] = attach_config.token
        config = {
            "backend": RAY_BACKEND,
            "created": time.time(),
            "max_concurrent_runs": attach_config.max_concurrent_runs or max(1, slots),
            "gpus": gpus,
            "ray": section,
        }
        return ctx.store.put_compute_target(ctx.workspace_id, name, RAY_COMPUTE, config)


# -- status -------------------------------------------------------------------------------------
def _slot_used(usage: dict[str, Any], slot: str) -> float:
    """How many of ``slot`` a node uses, from ``/api/cluster_status``'s per-node usage (whose
    keys the dashboard writes in camel case)."""
    head, *rest = slot.split("_")
    for key in (slot, head + "".join(part.title() for part in rest)):
        pair = usage.get(key)
        if isinstance(pair, list) and pair:
            return float(pair[0])
    return 0.0


def ray_status(ctx: WorkspaceContext, record: ComputeTargetRecord) -> dict[str, Any]:
    """v1's status fields of a Ray target, from the cluster's state API and autoscaler report."""
    config = dict(record.config or {})
    managed = bool((config.get("ray") or {}).get("managed"))
    out: dict[str, Any] = {
        "provisioning_state": "Succeeded",
        "provisioning_state_transition_time": None,
        "allocation_state": "Steady",
        "allocation_state_transition_time": None,
        "creation_time": config.get("created"),
        "modified_time": record.created_at,
        **node_fields(config),
        "vm_priority": config.get("vm_priority", "dedicated"),
        "vm_size": config.get("vm_size"),
        "backend": RAY_BACKEND,
        "managed": managed,
        "max_concurrent_runs": config.get("max_concurrent_runs"),
        "runs_per_node": config.get("runs_per_node"),
        "gpus": config.get("gpus", 0),
        "dashboard_url": (config.get("ray") or {}).get("dashboard_url"),
    }

    def failed(code: str, message: str) -> dict[str, Any]:
        out["provisioning_state"] = "Failed"
        out["errors"] = [{"code": code, "message": message}]
        return out

    if managed:
        try:
            cluster = managed_cluster(record)
        except ComputeTargetException as err:
            return failed("ClusterMissing", err.message)
        if cluster is not None and not cluster.head_running():
            return failed(
                "ClusterNotRunning",
                f"Compute target {record.name!r}: {cluster.why_dead()}\nRestart it with "
                f"ComputeTarget.create (or `trainyard compute create {record.name} ...`).",
            )
    try:
        conn = RayConnection.of(record)
        nodes = conn.nodes()
        report = (conn.get("/api/cluster_status").get("data") or {}).get("clusterStatus") or {}
    except ComputeTargetException as err:
        return failed("ClusterUnreachable", err.message)
    workers = [n for n in nodes if n.get("state") == "ALIVE" and not n.get("is_head_node")]
    usage = (report.get("loadMetricsReport") or {}).get("usageByNode") or {}
    slot = str((config.get("ray") or {}).get("slot_resource") or SLOT_RESOURCE)
    running = sum(1 for n in workers if _slot_used(usage.get(n.get("node_id"), {}), slot) > 0)
    scaler = report.get("autoscalerReport") or {}
    launches = scaler.get("pendingLaunches") or {}
    pending = scaler.get("pendingNodes") or []
    preparing = sum(int(v) for v in launches.values()) + len(pending)
    failures = scaler.get("failedNodes") or []
    current = len(workers)
    target = current + preparing
    if isinstance(config.get("max_nodes"), int):
        target = min(target, int(config["max_nodes"]))
    counts = out["node_state_counts"]
    counts.update(
        idleNodeCount=current - running, runningNodeCount=running, preparingNodeCount=preparing
    )
    out.update(
        current_node_count=current,
        target_node_count=target,
        allocation_state="Resizing" if preparing else "Steady",
    )
    if failures:
        out["errors"] = [
            {"code": "NodeFailed", "message": f"node {f[0] if f else '?'} failed to start"}
            for f in failures
        ]
    return out


def provisioning_state(record: ComputeTargetRecord) -> str:
    """``Succeeded`` while the cluster answers, else ``Failed`` (a quick check, no node list)."""
    try:
        cluster = managed_cluster(record)
        if cluster is not None:
            return "Succeeded" if cluster.alive() else "Failed"
        RayConnection.of(record).get("/api/version", timeout=3)
        return "Succeeded"
    except ComputeTargetException:
        return "Failed"


def wait_for_cluster(
    target: ComputeTarget,
    show_output: bool,
    min_node_count: int | None,
    timeout_in_minutes: float,
) -> None:
    """Poll ``target``'s status until the cluster answers and has its minimum nodes; raise
    ``ComputeTargetException`` when it failed or the time is up."""
    config = target.config
    wanted = max(int(config.get("min_nodes") or 0), int(min_node_count or 0))
    most = config.get("max_nodes")
    if isinstance(most, int) and wanted > most:
        raise ComputeConfigurationError(
            f"Compute target {target.name!r} has at most {most} node(s); waiting for {wanted} "
            "would never end. Raise max_nodes with update(max_nodes=...) first.",
            target=target.name,
        )
    deadline = time.monotonic() + timeout_in_minutes * 60
    if show_output:
        print("Creating", end="", flush=True)
    status: dict[str, Any] = {}
    while True:
        status = target.get_status().serialize()
        if status["provisioning_state"] == "Failed" and (
            managed_cluster_of(target) is not None or time.monotonic() > deadline
        ):
            if show_output:
                print("\nFailed")
            errors = status.get("errors") or [{"message": "unknown"}]
            raise ComputeTargetException(
                f"Compute target {target.name!r} failed to provision: {errors[0]['message']}",
                target=target.name,
                errors=errors,
            )
        if status["provisioning_state"] == "Succeeded" and status["current_node_count"] >= wanted:
            break
        if time.monotonic() > deadline:
            if show_output:
                print()
            raise ComputeTargetException(
                f"Compute target {target.name!r}: {status['current_node_count']} of {wanted} "
                f"node(s) after {timeout_in_minutes} minute(s). `trainyard compute show "
                f"{target.name}` tells what the cluster is doing.",
                target=target.name,
                status=status,
            )
        if show_output:
            print(".", end="", flush=True)
        time.sleep(1.0)
    if show_output:
        print()
        print('SucceededProvisioning operation finished, operation "Succeeded"')
        if wanted:
            print(f"Minimum number of nodes requested have been provisioned ({wanted})")


def managed_cluster_of(target: ComputeTarget) -> ManagedRayCluster | None:
    """``target``'s managed cluster, or ``None``."""
    try:
        return managed_cluster(target.get_record())
    except ComputeTargetException:
        return None


# -- update, delete -----------------------------------------------------------------------------
def rescale(name: str, config: dict[str, Any]) -> None:
    """Rewrite the autoscaler config of target ``name``'s managed cluster to ``config``'s scale
    settings (the running autoscaler picks it up within seconds)."""
    section = config.get("ray") or {}
    if not section.get("managed") or not section.get("folder"):
        raise ComputeTargetException(
            f"Compute target {name!r} is an attached Ray cluster: its scale settings belong to "
            "whoever runs it.",
            target=name,
        )
    cluster = ManagedRayCluster.load(Path(str(section["folder"])))
    cluster.set_scale(node_types(config), _idle_minutes(config))


def delete_ray_target(ctx: WorkspaceContext, record: ComputeTargetRecord) -> None:
    """Stop a managed cluster by PID and remove its folder; an attached cluster keeps running
    (only trainyard's copy of its token goes)."""
    release_cluster(ctx, record.name)


class RayCompute(ComputeTarget):
    """A Ray cluster trainyard did not start, attached by address and token (``raycompute``)."""

    _type: ClassVar[str] = RAY_COMPUTE

    @staticmethod
    def attach_configuration(
        address: str | None = None,
        dashboard_url: str | None = None,
        token: str | None = None,
        max_concurrent_runs: int | None = None,
    ) -> RayComputeAttachConfiguration:
        """What ``ComputeTarget.attach(ws, name, cfg)`` needs: the cluster's GCS ``address``
        (``HOST:PORT``) and/or its ``dashboard_url`` (default ``http://HOST:8265``), its auth
        ``token`` if it has one, and how many runs it takes at once (default: the run slots of
        its nodes now, at least 1)."""
        return RayComputeAttachConfiguration(address, dashboard_url, token, max_concurrent_runs)

    def update(
        self,
        min_nodes: int | None = None,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int | None = None,
    ) -> None:
        """Refused: an attached cluster's scale is set where it runs."""
        raise ComputeTargetException(
            f"Compute target {self.name!r} is an attached Ray cluster: its scale settings belong "
            "to whoever runs it (its autoscaler config). Only targets created with "
            "AmlCompute.provisioning_configuration(backend='ray') can be updated.",
            target=self.name,
        )


__all__ = [
    "RAY_COMPUTE",
    "RayCompute",
    "RayComputeAttachConfiguration",
    "attach",
    "cluster_folder",
    "create_managed",
    "delete_ray_target",
    "provisioning_state",
    "ray_status",
    "release_cluster",
    "rescale",
    "wait_for_cluster",
]
