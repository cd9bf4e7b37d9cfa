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
    """An MPI job: ``mpirun`` starts ``process_count_per_node`` ranks on each of ``node_count``
    nodes (v1 signature). On local compute ``node_count`` must be 1; the ranks are processes on
    this machine, launched by Open MPI's ``mpirun``, and the run's environment gets ``mpi4py``.

    Example::

        ScriptRunConfig(source_directory="src", script="train_mnist.py",
                        distributed_job_config=MpiConfiguration(process_count_per_node=4))
    """

    process_count_per_node: int = 1
    node_count: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Wire form stored in the run definition (``distribution``)."""
        return {
            "type": "mpi",
            "process_count_per_node": self.process_count_per_node,
            "node_count": self.node_count,
        }

    @property
    def ranks(self) -> int:
        """Processes in the job: ``node_count × process_count_per_node``."""
        return self.process_count_per_node * self.node_count


#: The communication backends of :class:`PyTorchConfiguration`, by lower-case name.
PYTORCH_BACKENDS = {"nccl": "Nccl", "gloo": "Gloo"}


@dataclass
class PyTorchConfiguration:
    """A ``torch.distributed`` job (v1 signature): ``process_count`` ranks in all (default
    ``node_count``), each started with ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and ``NODE_RANK`` set as ``torchrun`` sets them.

    ``communication_backend`` is ``'Nccl'`` (v1's default; needs GPUs) or ``'Gloo'`` (CPU). The
    script picks the backend in ``init_process_group``; the setting is checked against the target.

    Example::

        PyTorchConfiguration(communication_backend="Gloo", process_count=2)
    """

    communication_backend: str = "Nccl"
    process_count: int | None = None
    node_count: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Wire form stored in the run definition (``distribution``)."""
        backend = str(self.communication_backend)
        return {
            "type": "pytorch",
            "communication_backend": PYTORCH_BACKENDS.get(backend.lower(), backend),
            "process_count": self.process_count or self.node_count,
            "node_count": self.node_count,
        }

    @property
    def ranks(self) -> int:
        """Processes in the job (``process_count``, default ``node_count``)."""
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
    """v1's ``RunConfiguration``: target, environment, node count, distribution, limits.

    A distributed job can be described here as v1 code does (``rc.communicator = "IntelMpi"``,
    ``rc.mpi.process_count_per_node = 2``, ``rc.node_count = 1``) or, preferably, with
    ``ScriptRunConfig(distributed_job_config=…)``, which writes these fields (see
    :func:`apply_distribution`).
    """

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
        #: v1's per-framework distribution settings; ``communicator`` says which one applies
        #: (``"IntelMpi"``/``"Mpi"`` → :attr:`mpi`, ``"Nccl"``/``"Gloo"`` → :attr:`pytorch`,
        #: ``"ParameterServer"`` → :attr:`tensorflow`, ``"None"``: one process).
        self.mpi = MpiConfiguration()
        self.pytorch = PyTorchConfiguration()
        self.tensorflow = TensorflowConfiguration()
        self.data: dict[str, Any] = {}
        from trainyard.core.environment import Environment

        self.environment = Environment("default-environment")
        self.environment.python.user_managed_dependencies = True
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
            self.environment.python.user_managed_dependencies = False


_MPI_COMMUNICATORS = ("intelmpi", "mpi", "openmpi")


def apply_distribution(run_config: RunConfiguration, cfg: Any) -> None:
    """Write a ``distributed_job_config`` into ``run_config``'s v1 fields, as v1's
    ``ScriptRunConfig`` does: MPI → ``framework="Python"``, ``communicator="IntelMpi"``, ``mpi``;
    PyTorch → ``framework="PyTorch"``, ``communicator`` its backend, ``pytorch``; TensorFlow →
    ``framework="TensorFlow"``, ``communicator="ParameterServer"``, ``tensorflow``; and
    ``node_count`` from the config."""
    if isinstance(cfg, MpiConfiguration):
        run_config.framework, run_config.communicator = "Python", "IntelMpi"
        run_config.mpi = cfg
        run_config.node_count = cfg.node_count
    elif isinstance(cfg, PyTorchConfiguration):
        run_config.framework = "PyTorch"
        run_config.communicator = str(cfg.to_dict()["communication_backend"])
        run_config.pytorch = cfg
        run_config.node_count = cfg.node_count
    elif isinstance(cfg, TensorflowConfiguration):
        run_config.framework, run_config.communicator = "TensorFlow", "ParameterServer"
        run_config.tensorflow = cfg
        run_config.node_count = cfg.worker_count


def distribution_of_run_config(run_config: RunConfiguration) -> DistributedConfig | None:
    """The distribution a v1-style ``RunConfiguration`` describes through ``communicator`` (and
    ``mpi`` / ``pytorch`` / ``tensorflow``, ``node_count``); ``None`` for ``"None"``.

    Raises :class:`~trainyard.exceptions.ValidationError` for a communicator trainyard does not run.
    """
    communicator = str(run_config.communicator or "None")
    kind = communicator.lower()
    if kind == "none":
        return None
    if kind in _MPI_COMMUNICATORS:
        return MpiConfiguration(
            process_count_per_node=run_config.mpi.process_count_per_node,
            node_count=run_config.node_count,
        )
    if kind in PYTORCH_BACKENDS:
        return PyTorchConfiguration(
            communication_backend=PYTORCH_BACKENDS[kind],
            process_count=run_config.pytorch.process_count,
            node_count=max(run_config.node_count, run_config.pytorch.node_count),
        )
    if kind == "parameterserver":
        return run_config.tensorflow
    raise ValidationError(
        f"RunConfiguration.communicator={communicator!r} is not one trainyard runs. Use "
        "'None', 'IntelMpi' or 'Mpi' (MPI), 'Nccl' or 'Gloo' (PyTorch), 'ParameterServer', or pass "
        "ScriptRunConfig(distributed_job_config=MpiConfiguration(...) | PyTorchConfiguration(...)).",
        communicator=communicator,
    )


def check_distribution(cfg: DistributedConfig) -> None:
    """Every count a positive integer, a known PyTorch backend; raises
    :class:`~trainyard.exceptions.ValidationError` naming the field."""
    counts: list[tuple[str, Any]] = []
    if isinstance(cfg, MpiConfiguration):
        counts = [("process_count_per_node", cfg.process_count_per_node)]
    elif isinstance(cfg, PyTorchConfiguration):
        total = cfg.process_count if cfg.process_count is not None else cfg.node_count
        counts = [("process_count", total)]
        backend = str(cfg.communication_backend)
        if backend.lower() not in PYTORCH_BACKENDS:
            raise ValidationError(
                f"PyTorchConfiguration(communication_backend={backend!r}): use 'Nccl' (GPUs) or "
                "'Gloo' (CPU).",
                communication_backend=backend,
            )
    elif isinstance(cfg, TensorflowConfiguration):
        counts = [("worker_count", cfg.worker_count)]
    if not isinstance(cfg, TensorflowConfiguration):
        counts.append(("node_count", cfg.node_count))
    for name, value in counts:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(
                f"{type(cfg).__name__}.{name} must be a positive integer, not {value!r}.",
                field=name,
            )
