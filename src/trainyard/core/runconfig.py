"""Run configuration objects (v1: ``azureml.core.runconfig``).

``RunConfiguration`` groups target, environment, node count and distribution for a
``ScriptRunConfig(run_config=…)``; the explicit ``ScriptRunConfig`` keyword arguments win over it.
The distribution classes describe multi-process jobs; they are validated at submit time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# v1's ``azureml.core.runconfig`` re-exports ``CondaDependencies``; v1 code imports it from here.
from trainyard.core.conda_dependencies import CondaDependencies as CondaDependencies
from trainyard.exceptions import ValidationError


@dataclass
class DockerConfiguration:
    """v1's Docker settings. trainyard runs every environment as a uv virtual environment, with no
    container engine: ``use_docker=True`` is accepted with a warning at submit saying so."""

    use_docker: bool = False
    shared_volumes: bool = True
    arguments: list[str] = field(default_factory=list)
    shm_size: str = "2g"


@dataclass
class MpiConfiguration:
    """mpirun across ``node_count`` nodes with ``process_count_per_node`` ranks each."""

    process_count_per_node: int = 1
    node_count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "mpi",
            "process_count_per_node": self.process_count_per_node,
            "node_count": self.node_count,
        }

    @property
    def ranks(self) -> int:
        return self.process_count_per_node * self.node_count


@dataclass
class PyTorchConfiguration:
    """torch.distributed: ``process_count`` is the total and defaults to ``node_count``."""

    communication_backend: str = "Nccl"
    process_count: int | None = None
    node_count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "pytorch",
            "communication_backend": self.communication_backend,
            "process_count": self.process_count or self.node_count,
            "node_count": self.node_count,
        }

    @property
    def ranks(self) -> int:
        return self.process_count or self.node_count


@dataclass
class TensorflowConfiguration:
    """Parameter-server layout (sets ``TF_CONFIG``)."""

    worker_count: int = 1
    parameter_server_count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "tensorflow",
            "worker_count": self.worker_count,
            "parameter_server_count": self.parameter_server_count,
        }

    @property
    def ranks(self) -> int:
        return self.worker_count + self.parameter_server_count


DistributedConfig = MpiConfiguration | PyTorchConfiguration | TensorflowConfiguration


def distribution_to_dict(cfg: Any) -> dict[str, Any] | None:
    """Wire form of a distribution config (``None`` for a single process)."""
    if cfg is None:
        return None
    to_dict = getattr(cfg, "to_dict", None)
    if not callable(to_dict):
        raise ValidationError(
            f"distributed_job_config must be MpiConfiguration, PyTorchConfiguration or "
            f"TensorflowConfiguration, not {type(cfg).__name__}."
        )
    out: dict[str, Any] = to_dict()
    return out


class RunConfiguration:
    """v1's ``RunConfiguration``: target, environment, node count, distribution, limits."""

    def __init__(
        self,
        script: str | None = None,
        arguments: list[Any] | None = None,
        framework: str = "Python",
        communicator: str = "None",
        conda_dependencies: Any = None,
        _history_enabled: bool | None = None,
        _path: str | None = None,
        _name: str | None = None,
        command: str | list[str] | None = None,
    ) -> None:
        self.script = script
        self.arguments = list(arguments or [])
        self.framework = framework
        self.communicator = communicator
        self.command = command
        self.target: Any = "local"
        self.node_count = 1
        self.max_run_duration_seconds: int | None = None
        self.environment_variables: dict[str, str] = {}
        self.docker = DockerConfiguration()
        self.mpi = MpiConfiguration()
        self.data: dict[str, Any] = {}
        from trainyard.core.environment import Environment

        self.environment = Environment("default-environment")
        self.environment.python.user_managed_dependencies = True
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
            self.environment.python.user_managed_dependencies = False
