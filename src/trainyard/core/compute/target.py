"""Compute targets (v1: ``azureml.core.compute``): where runs execute.

``local`` always exists: runs are processes on this machine, at most ``max_concurrent_runs`` at once
(default: the number of cores), the rest wait Queued in FIFO order. ``AmlCompute`` targets reproduce
v1's cluster API; until a Ray cluster backs them they also run as local processes, with ``max_nodes``
as the concurrency limit (so the v1 notebook's "1 run + 4 sweep children on a 4-node cluster" queues
the same way).

Example::

    try:
        target = ComputeTarget(workspace=ws, name="cpu-cluster")
    except ComputeTargetException:
        cfg = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2", max_nodes=4)
        target = ComputeTarget.create(ws, "cpu-cluster", cfg)
        target.wait_for_completion(show_output=True)
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from trainyard._execution.targets import LOCAL, capacity, detect_gpus, resolve_target_record
from trainyard.exceptions import ComputeTargetException, ValidationError

if TYPE_CHECKING:
    from trainyard._store.entities import ComputeTargetRecord
    from trainyard.core.workspace import Workspace

__all__ = [
    "LOCAL",
    "AmlCompute",
    "AmlComputeProvisioningConfiguration",
    "ComputeStatus",
    "ComputeTarget",
    "ComputeTargetProvisioningConfiguration",
    "LocalCompute",
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
            raise ValidationError(f"max_concurrent_runs must be a positive integer, not {m!r}.")


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

    def to_config(self) -> dict[str, Any]:
        cfg = super().to_config()
        cfg["max_concurrent_runs"] = self.max_concurrent_runs or self.max_nodes
        return cfg

    def validate(self) -> None:
        super().validate()
        if self.vm_priority not in ("dedicated", "lowpriority"):
            raise ValidationError(
                f"vm_priority must be 'dedicated' or 'lowpriority', not {self.vm_priority!r}."
            )
        if not isinstance(self.max_nodes, int) or self.max_nodes < 1:
            raise ValidationError(f"max_nodes must be a positive integer, not {self.max_nodes!r}.")
        if not isinstance(self.min_nodes, int) or not 0 <= self.min_nodes <= self.max_nodes:
            raise ValidationError(
                f"min_nodes must be between 0 and max_nodes ({self.max_nodes}), not {self.min_nodes!r}."
            )


class ComputeStatus:
    """v1's status object; ``serialize()`` gives a dict of status fields."""

    def __init__(self, target: ComputeTarget) -> None:
        self._target = target

    def serialize(self) -> dict[str, Any]:
        cfg = self._target.config
        return {
            "provisioning_state": "Succeeded",
            "allocation_state": "Steady",
            "creation_time": cfg.get("created"),
            "current_node_count": cfg.get("min_nodes", 0),
            "target_node_count": cfg.get("min_nodes", 0),
            "errors": None,
            "node_state_counts": {
                "idleNodeCount": cfg.get("min_nodes", 0),
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
            "vm_priority": cfg.get("vm_priority", "dedicated"),
            "max_concurrent_runs": cfg.get("max_concurrent_runs"),
            "gpus": cfg.get("gpus", 0),
        }


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
        return "Succeeded"

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
        """Create (or replace) a target; returns it at once, already ``Succeeded`` on local compute."""
        if (
            not isinstance(name, str)
            or not name
            or len(name) > 64
            or not name.replace("-", "").replace("_", "").isalnum()
        ):
            raise ComputeTargetException(
                f"Invalid compute target name {name!r}: use 1–64 letters, digits, '-' or '_'."
            )
        if not isinstance(provisioning_configuration, ComputeTargetProvisioningConfiguration):
            raise ComputeTargetException(
                "provisioning_configuration must come from AmlCompute.provisioning_configuration(...) "
                "or LocalCompute.provisioning_configuration(...)."
            )
        provisioning_configuration.validate()
        cfg = provisioning_configuration.to_config()
        cfg["created"] = time.time()
        cfg["gpus"] = detect_gpus()
        workspace.context.store.put_compute_target(
            workspace.context.workspace_id, name, provisioning_configuration.target_type, cfg
        )
        return ComputeTarget(workspace, name)

    def wait_for_completion(
        self,
        show_output: bool = False,
        min_node_count: int | None = None,
        timeout_in_minutes: int = 25,
        is_delete_operation: bool = False,
    ) -> None:
        """Provisioning is immediate on local compute: returns at once."""
        if show_output:
            print(f"{self.name}: provisioning state Succeeded ({self.type}).")

    def get_status(self) -> ComputeStatus:
        return ComputeStatus(self)

    def delete(self) -> None:
        """Remove the target (``local`` cannot be removed)."""
        if self.name == LOCAL:
            raise ComputeTargetException("The default 'local' target cannot be deleted.")
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
    ) -> AmlComputeProvisioningConfiguration:
        """v1 signature; documented effective defaults: Standard_NC6, 0–4 nodes."""
        return AmlComputeProvisioningConfiguration(
            vm_size=vm_size or "STANDARD_NC6",
            vm_priority=vm_priority,
            min_nodes=min_nodes,
            max_nodes=4 if max_nodes is None else max_nodes,
            idle_seconds_before_scaledown=idle_seconds_before_scaledown,
            tags=dict(tags or {}),
            description=description,
        )


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
