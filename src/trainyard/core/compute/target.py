"""Compute targets (v1: ``azureml.core.compute``): where runs execute.

``local`` always exists: runs are processes on this machine, at most ``max_concurrent_runs`` at once
(default: the number of cores), the rest wait Queued in FIFO order. ``AmlCompute`` targets reproduce
v1's cluster API. With ``backend="local"`` (the default, ``TRAINYARD_AMLCOMPUTE_BACKEND``) they run
as local processes with ``max_nodes`` as the concurrency limit (so the v1 notebook's "1 run + 4
sweep children on a 4-node cluster" queues the same way); with ``backend="ray"`` trainyard starts a
Ray cluster whose autoscaler keeps between ``min_nodes`` and ``max_nodes`` worker nodes of the
``vm_size`` shape (``ray_target``). ``RayCompute`` attaches a Ray cluster someone else runs.

Example::

    try:
        target = ComputeTarget(workspace=ws, name="cpu-cluster")
    except ComputeTargetException:
        cfg = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4)
        target = ComputeTarget.create(ws, "cpu-cluster", cfg)
        target.wait_for_completion(show_output=True)
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from trainyard._execution.ray.connection import RAY_BACKEND, is_ray_target
from trainyard._execution.targets import LOCAL, capacity, detect_gpus, resolve_target_record
from trainyard.exceptions import ComputeConfigurationError, ComputeTargetException

if TYPE_CHECKING:
    from trainyard._store.entities import ComputeTargetRecord
    from trainyard.core.compute.ray_target import RayComputeAttachConfiguration
    from trainyard.core.workspace import Workspace

__all__ = [
    "LOCAL",
    "AmlCompute",
    "AmlComputeProvisioningConfiguration",
    "ComputeStatus",
    "ComputeTarget",
    "ComputeTargetProvisioningConfiguration",
    "LocalCompute",
    "check_scale",
    "detect_gpus",
    "resolve_target",
    "targets_by_name",
]


@dataclass
class ComputeTargetProvisioningConfiguration:
    """What ``ComputeTarget.create`` needs; subclasses add their fields."""

    target_type: ClassVar[str] = LOCAL
    max_concurrent_runs: int | None = None

    def to_config(self) -> dict[str, Any]:
        cfg = {k: v for k, v in asdict(self).items() if v is not None}
        cfg.setdefault("max_concurrent_runs", os.cpu_count() or 1)
        return cfg

    def validate(self) -> None:
        m = self.max_concurrent_runs
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or m < 1):
            raise ComputeConfigurationError(
                f"max_concurrent_runs must be a positive integer, not {m!r}."
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_scale(min_nodes: Any, max_nodes: Any, idle_seconds_before_scaledown: Any) -> None:
    """Raise ``ComputeConfigurationError`` unless 0 ≤ ``min_nodes`` ≤ ``max_nodes``, ``max_nodes``
    ≥ 1 and the idle time is a whole number of seconds ≥ 0."""
    if not _is_int(max_nodes) or max_nodes < 1:
        raise ComputeConfigurationError(f"max_nodes must be a positive integer, not {max_nodes!r}.")
    if not _is_int(min_nodes) or not 0 <= min_nodes <= max_nodes:
        raise ComputeConfigurationError(
            f"min_nodes must be between 0 and max_nodes ({max_nodes}), not {min_nodes!r}: "
            "lower min_nodes or raise max_nodes."
        )
    idle = idle_seconds_before_scaledown
    if not _is_int(idle) or idle < 0:
        raise ComputeConfigurationError(
            f"idle_seconds_before_scaledown must be a whole number of seconds ≥ 0, not {idle!r}."
        )


@dataclass
class AmlComputeProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    """v1's ``AmlCompute.provisioning_configuration`` (network/identity arguments are ignored)."""

    target_type: ClassVar[str] = "amlcompute"
    vm_size: str = "STANDARD_NC6"
    vm_priority: str = "dedicated"
    min_nodes: int = 0
    max_nodes: int = 4
    idle_seconds_before_scaledown: int = 1800
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    #: ``local`` or ``ray``; ``None``: ``TRAINYARD_AMLCOMPUTE_BACKEND`` (resolved by ``create``).
    backend: str | None = None
    #: Runs one Ray worker node takes at once (``ray`` backend; default 1, as v1's one job a node).
    runs_per_node: int | None = None

    def to_config(self) -> dict[str, Any]:
        cfg = super().to_config()
        if self.backend == RAY_BACKEND:
            cfg["runs_per_node"] = self.runs_per_node or 1
            cfg["max_concurrent_runs"] = self.max_concurrent_runs or (
                self.max_nodes * cfg["runs_per_node"]
            )
        else:
            cfg["max_concurrent_runs"] = self.max_concurrent_runs or self.max_nodes
        return cfg

    def validate(self) -> None:
        super().validate()
        if self.vm_priority not in ("dedicated", "lowpriority"):
            raise ComputeConfigurationError(
                f"vm_priority must be 'dedicated' or 'lowpriority', not {self.vm_priority!r}."
            )
        check_scale(self.min_nodes, self.max_nodes, self.idle_seconds_before_scaledown)
        if self.backend not in (None, "local", RAY_BACKEND):
            raise ComputeConfigurationError(
                f"backend must be 'local' (processes on this machine) or 'ray' (a Ray cluster), "
                f"not {self.backend!r}."
            )
        r = self.runs_per_node
        if r is not None and (not _is_int(r) or r < 1):
            raise ComputeConfigurationError(f"runs_per_node must be a positive integer, not {r!r}.")
        if self.backend == RAY_BACKEND:
            from trainyard._execution.ray.vm_sizes import vm_size

            vm_size(self.vm_size)  # an unknown size names the known ones


class ComputeStatus:
    """v1's status object (``AmlComputeStatus``): its fields are attributes
    (``status.current_node_count``), and ``serialize()`` gives them as a dict."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = dict(fields)

    def serialize(self) -> dict[str, Any]:
        """The status fields as a dict (a copy)."""
        return dict(self._fields)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._fields:
            raise AttributeError(name)
        return self._fields[name]

    def __repr__(self) -> str:
        return f"ComputeStatus({self._fields!r})"


def node_fields(cfg: dict[str, Any], nodes: int = 0) -> dict[str, Any]:
    """v1's node counts (``nodes`` current and target, all idle) and scale settings of a status."""
    return {
        "current_node_count": nodes,
        "target_node_count": nodes,
        "errors": None,
        "node_state_counts": {
            "idleNodeCount": nodes,
            "runningNodeCount": 0,
            "preparingNodeCount": 0,
            "unusableNodeCount": 0,
            "leavingNodeCount": 0,
            "preemptedNodeCount": 0,
        },
        "scale_settings": {
            "minimum_node_count": cfg.get("min_nodes", 0),
            "maximum_node_count": cfg.get("max_nodes", cfg.get("max_concurrent_runs")),
            "node_idle_time_before_scale_down": cfg.get("idle_seconds_before_scaledown"),
        },
    }


def _local_status(cfg: dict[str, Any]) -> dict[str, Any]:
    """The status of a target that runs local processes: always ready, no nodes to wait for."""
    return {
        "provisioning_state": "Succeeded",
        "allocation_state": "Steady",
        "creation_time": cfg.get("created"),
        **node_fields(cfg, cfg.get("min_nodes", 0)),
        "vm_priority": cfg.get("vm_priority", "dedicated"),
        "max_concurrent_runs": cfg.get("max_concurrent_runs"),
        "gpus": cfg.get("gpus", 0),
        "backend": cfg.get("backend", "local"),
    }


def _check_name(name: Any) -> None:
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 64
        or not name.replace("-", "").replace("_", "").isalnum()
        or not name.isascii()
    ):
        raise ComputeConfigurationError(
            f"Invalid compute target name {name!r}: use 1–64 letters, digits, '-' or '_'."
        )


class ComputeTarget:
    """A named compute target; ``ComputeTarget(ws, name)`` returns the concrete subclass."""

    _type: ClassVar[str] = LOCAL
    _types: ClassVar[dict[str, type[ComputeTarget]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        ComputeTarget._types[cls._type] = cls

    def __new__(cls, workspace: Workspace | None = None, name: str | None = None) -> ComputeTarget:
        if workspace is None or name is None:
            return super().__new__(cls)
        record = resolve_target_record(workspace.context, name)
        obj = super().__new__(ComputeTarget._types.get(record.target_type, ComputeTarget))
        obj._load(workspace, record)
        return obj

    def __init__(self, workspace: Workspace | None = None, name: str | None = None) -> None:
        pass  # loaded by __new__

    def _load(self, workspace: Workspace, record: ComputeTargetRecord) -> None:
        self._workspace = workspace
        self.name = record.name
        self.type = record.target_type
        self._config = dict(record.config)
        self._record = record

    @property
    def workspace(self) -> Workspace:
        return self._workspace

    @property
    def config(self) -> dict[str, Any]:
        """The target's stored configuration (a copy)."""
        return dict(self._config)

    def get_record(self) -> ComputeTargetRecord:
        """The target's record as the store keeps it."""
        return self._record

    @property
    def provisioning_state(self) -> str:
        """``Succeeded`` (local processes; a Ray cluster that answers) or ``Failed``."""
        if is_ray_target(self._record):
            from trainyard.core.compute.ray_target import provisioning_state

            return provisioning_state(self._record)
        return "Succeeded"

    @property
    def backend(self) -> str:
        """What runs this target's work: ``local`` processes or ``ray``."""
        return RAY_BACKEND if is_ray_target(self._record) else "local"

    @property
    def max_concurrent_runs(self) -> int:
        return capacity(self._config)

    @property
    def gpu_count(self) -> int:
        return int(self._config.get("gpus", 0))

    @staticmethod
    def create(
        workspace: Workspace,
        name: str,
        provisioning_configuration: ComputeTargetProvisioningConfiguration,
    ) -> ComputeTarget:
        """Create (or replace) a target; returns it at once, already ``Succeeded`` on local compute.

        An ``AmlCompute`` configuration with ``backend="ray"`` starts a Ray cluster on this
        machine (its head answers before this returns; worker nodes come as ``min_nodes`` and
        work ask, see ``wait_for_completion``). Re-creating such a target rescales a running
        cluster and restarts a dead one; runs' records are kept in the store either way."""
        _check_name(name)
        if not isinstance(provisioning_configuration, ComputeTargetProvisioningConfiguration):
            raise ComputeTargetException(
                "provisioning_configuration must come from AmlCompute.provisioning_configuration(...) "
                "or LocalCompute.provisioning_configuration(...)."
            )
        from dataclasses import replace

        from trainyard.core.compute import ray_target

        prov = provisioning_configuration
        if isinstance(prov, AmlComputeProvisioningConfiguration) and prov.backend is None:
            prov = replace(prov, backend=workspace.context.settings.amlcompute_backend)
        prov.validate()
        cfg = prov.to_config()
        cfg["created"] = time.time()
        cfg["gpus"] = detect_gpus()
        if isinstance(prov, AmlComputeProvisioningConfiguration) and prov.backend == RAY_BACKEND:
            ray_target.create_managed(workspace, name, cfg)
        else:
            ray_target.release_cluster(workspace.context, name)
            workspace.context.store.put_compute_target(
                workspace.context.workspace_id, name, prov.target_type, cfg
            )
        return ComputeTarget(workspace, name)

    @staticmethod
    def attach(
        workspace: Workspace, name: str, attach_configuration: RayComputeAttachConfiguration
    ) -> ComputeTarget:
        """Attach a running Ray cluster as target ``name`` (v1's ``ComputeTarget.attach``): its
        dashboard must answer and take the token; a ``RayCompute`` is returned."""
        from trainyard.core.compute.ray_target import RayComputeAttachConfiguration, attach

        _check_name(name)
        if not isinstance(attach_configuration, RayComputeAttachConfiguration):
            raise ComputeConfigurationError(
                "attach_configuration must come from RayCompute.attach_configuration(address=..., "
                "dashboard_url=..., token=...)."
            )
        attach(workspace, name, attach_configuration)
        return ComputeTarget(workspace, name)

    def wait_for_completion(
        self,
        show_output: bool = False,
        min_node_count: int | None = None,
        timeout_in_minutes: float = 25,
        is_delete_operation: bool = False,
    ) -> None:
        """Wait until the target is ready: at once on local compute; on a Ray cluster until its
        dashboard answers and ``min_nodes`` (or ``min_node_count``) worker nodes are alive.
        Raises ``ComputeTargetException`` when the cluster failed or ``timeout_in_minutes``
        passed."""
        if is_delete_operation:
            return
        if is_ray_target(self._record):
            from trainyard.core.compute.ray_target import wait_for_cluster

            wait_for_cluster(self, show_output, min_node_count, timeout_in_minutes)
            return
        if show_output:
            print(f"{self.name}: provisioning state Succeeded ({self.type}).")

    def get_status(self) -> ComputeStatus:
        """v1's status: provisioning and allocation state, node counts, scale settings (on a
        Ray cluster read from its state API and autoscaler)."""
        if is_ray_target(self._record):
            from trainyard.core.compute.ray_target import ray_status

            return ComputeStatus(ray_status(self._workspace.context, self._record))
        return ComputeStatus(_local_status(self._config))

    def delete(self) -> None:
        """Remove the target (``local`` cannot be removed). A Ray cluster trainyard started is
        stopped (every process of its head's session) and its folder removed; an attached one
        keeps running, only its record goes."""
        if self.name == LOCAL:
            raise ComputeTargetException(
                "The default 'local' target cannot be deleted (it is this machine); delete the "
                "targets you created instead."
            )
        if is_ray_target(self._record):
            from trainyard.core.compute.ray_target import delete_ray_target

            delete_ray_target(self._workspace.context, self._record)
        self._workspace.context.store.delete_compute_target(
            self._workspace.context.workspace_id, self.name
        )

    def serialize(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "properties": dict(self._config)}

    @staticmethod
    def list(workspace: Workspace) -> list[ComputeTarget]:
        return list(ComputeTarget._all(workspace).values())

    @staticmethod
    def _all(workspace: Workspace) -> dict[str, ComputeTarget]:
        out: dict[str, ComputeTarget] = {LOCAL: ComputeTarget(workspace, LOCAL)}
        for record in workspace.context.store.list_compute_targets(workspace.context.workspace_id):
            obj = object.__new__(ComputeTarget._types.get(record.target_type, ComputeTarget))
            obj._load(workspace, record)
            out[record.name] = obj
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workspace={self._workspace.name!r}, name={self.name!r})"


class LocalCompute(ComputeTarget):
    """Processes on this machine."""

    _type: ClassVar[str] = LOCAL

    @staticmethod
    def provisioning_configuration(
        max_concurrent_runs: int | None = None,
    ) -> ComputeTargetProvisioningConfiguration:
        return ComputeTargetProvisioningConfiguration(max_concurrent_runs=max_concurrent_runs)


class AmlCompute(ComputeTarget):
    """v1's autoscaling cluster API; runs as local processes until a cluster backend is configured."""

    _type: ClassVar[str] = "amlcompute"

    @staticmethod
    def provisioning_configuration(
        vm_size: str = "",
        vm_priority: str = "dedicated",
        min_nodes: int = 0,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int = 1800,
        admin_username: str | None = None,
        admin_user_password: str | None = None,
        admin_user_ssh_key: str | None = None,
        vnet_resourcegroup_name: str | None = None,
        vnet_name: str | None = None,
        subnet_name: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        remote_login_port_public_access: str = "NotSpecified",
        identity_type: str | None = None,
        identity_id: Any = None,
        location: str | None = None,
        enable_node_public_ip: bool = True,
        backend: str | None = None,
        runs_per_node: int | None = None,
    ) -> AmlComputeProvisioningConfiguration:
        """v1 signature; documented effective defaults: Standard_NC6, 0–4 nodes.

        trainyard's own keywords come last: ``backend`` (``"local"`` processes or ``"ray"``; default
        ``TRAINYARD_AMLCOMPUTE_BACKEND``, else local) and ``runs_per_node`` (runs one Ray node
        takes at once, default 1). On Ray, ``vm_size`` is the worker nodes' shape (CPUs, memory,
        GPUs; an unknown size names the known ones) and ``idle_seconds_before_scaledown`` the
        autoscaler's idle timeout."""
        return AmlComputeProvisioningConfiguration(
            vm_size=vm_size or "STANDARD_NC6",
            vm_priority=vm_priority,
            min_nodes=min_nodes,
            max_nodes=4 if max_nodes is None else max_nodes,
            idle_seconds_before_scaledown=idle_seconds_before_scaledown,
            tags=dict(tags or {}),
            description=description,
            backend=backend,
            runs_per_node=runs_per_node,
        )

    def update(
        self,
        min_nodes: int | None = None,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int | None = None,
    ) -> None:
        """Change the scale settings (v1's ``AmlCompute.update``); ``None`` keeps a setting. A Ray
        cluster's autoscaler picks the new range up within seconds (a raised ``min_nodes`` starts
        nodes, a lowered one lets idle nodes go after the idle time)."""
        cfg = self.config
        new_min = cfg.get("min_nodes", 0) if min_nodes is None else min_nodes
        new_max = cfg.get("max_nodes", 4) if max_nodes is None else max_nodes
        idle = cfg.get("idle_seconds_before_scaledown", 1800)
        new_idle = idle if idle_seconds_before_scaledown is None else idle_seconds_before_scaledown
        check_scale(new_min, new_max, new_idle)
        per_node = int(cfg.get("runs_per_node") or 1)
        old_capacity = int(cfg.get("max_nodes") or 0) * per_node
        if cfg.get("max_concurrent_runs") in (None, old_capacity):
            cfg["max_concurrent_runs"] = new_max * per_node
        cfg.update(min_nodes=new_min, max_nodes=new_max, idle_seconds_before_scaledown=new_idle)
        if is_ray_target(self._record):
            from trainyard.core.compute.ray_target import rescale

            rescale(self.name, cfg)
        ctx = self._workspace.context
        record = ctx.store.put_compute_target(ctx.workspace_id, self.name, self.type, cfg)
        self._load(self._workspace, record)


def targets_by_name(workspace: Workspace) -> dict[str, ComputeTarget]:
    """name → compute target, the default ``local`` one included (``ws.compute_targets``)."""
    return ComputeTarget._all(workspace)


def resolve_target(workspace: Workspace, target: Any) -> ComputeTarget:
    """A ``ComputeTarget`` from an object, a name or ``None`` (→ ``local``)."""
    if target is None:
        return ComputeTarget(workspace, LOCAL)
    if isinstance(target, ComputeTarget):
        return ComputeTarget(workspace, target.name)
    if isinstance(target, str):
        return ComputeTarget(workspace, target)
    raise ComputeTargetException(
        f"compute_target must be a ComputeTarget or a name, not {type(target).__name__}."
    )
