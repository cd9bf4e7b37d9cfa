"""The shape of a distributed run and the checks it passes before it is stored: :class:`Layout`.

A run definition's ``distribution`` (the wire form of ``MpiConfiguration``, ``PyTorchConfiguration``
or ``TensorflowConfiguration``) becomes a :class:`Layout`: which launcher starts the ranks (``mpi``:
Open MPI's ``mpirun``; ``pytorch``: one process per rank with torchrun's variables; ``single``: the
script alone), over how many nodes, with how many processes on each.

:func:`check_layout` holds the rules every backend shares (positive counts, a PyTorch world that
divides evenly over its nodes, no more nodes than the target has, NCCL only with GPUs, no
parameter-server jobs yet); :func:`check_single_node` adds what processes on one machine need (one
node, an MPI runtime, a bounded number of ranks). The local backend applies both; a cluster
backend (Ray) applies the first and its own placement rules instead of the second.

Example::

    layout = Layout.from_definition(run.get_details()["runDefinition"])
    layout.kind, layout.world_size      # ("mpi", 4)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainyard.exceptions import ComputeTargetException, MpiRuntimeNotFound, ValidationError

#: How to install Open MPI (Debian and Ubuntu package names).
OPENMPI_APT = "apt-get install openmpi-bin libopenmpi-dev"
#: Ranks per core one machine may run (oversubscribing a few is fine for CPU training and tests;
#: far more can never train usefully and is refused at submit).
MAX_RANKS_PER_CORE = 8


@dataclass(frozen=True)
class Layout:
    """How a run's processes are laid out.

    ``kind`` is ``"single"`` (one process, ``user_logs/std_log.txt``), ``"mpi"`` or ``"pytorch"``
    (ranks with ``user_logs/std_log_process_<rank>.txt`` each) or ``"tensorflow"`` (parameter
    server; not launched yet). ``backend`` is PyTorch's ``"Nccl"`` or ``"Gloo"``.
    """

    kind: str = "single"
    node_count: int = 1
    processes_per_node: int = 1
    backend: str | None = None

    @property
    def world_size(self) -> int:
        """Ranks in all."""
        return self.node_count * self.processes_per_node

    @property
    def ranked(self) -> bool:
        """Whether the job is launched as ranks (per-rank logs), even a world of one."""
        return self.kind in ("mpi", "pytorch")

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> Layout:
        """The layout of a run definition (``get_details()['runDefinition']``)."""
        return cls.from_distribution(definition.get("distribution"))

    @classmethod
    def from_distribution(cls, dist: Mapping[str, Any] | None) -> Layout:
        """The layout of a ``distribution`` wire form (``None``: a single process).

        Raises :class:`~trainyard.exceptions.ValidationError` for counts that are not positive
        integers or a PyTorch world that does not divide evenly over its nodes.
        """
        if not dist:
            return cls()
        kind = str(dist.get("type"))
        nodes = _count(dist, "node_count")
        if kind == "mpi":
            return cls("mpi", nodes, _count(dist, "process_count_per_node"))
        if kind == "pytorch":
            total = _count(dist, "process_count", default=nodes)
            if total % nodes:
                raise ValidationError(
                    f"PyTorchConfiguration(process_count={total}, node_count={nodes}): the "
                    "process count is the total over all nodes and must be a multiple of "
                    f"node_count. Use process_count={nodes * max(1, total // nodes)}.",
                    process_count=total,
                    node_count=nodes,
                )
            backend = str(dist.get("communication_backend") or "Nccl")
            return cls("pytorch", nodes, total // nodes, backend)
        if kind == "tensorflow":
            workers = _count(dist, "worker_count")
            servers = int(dist.get("parameter_server_count") or 0)
            return cls("tensorflow", 1, workers + servers)
        raise ValidationError(f"Unknown distribution type {kind!r} in {dict(dist)!r}.")


def _count(dist: Mapping[str, Any], key: str, default: int = 1) -> int:
    value = dist.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{key} must be a positive integer, not {value!r}.", field=key)
    return value


def describe(layout: Layout) -> str:
    """How errors name the job: ``MpiConfiguration(process_count_per_node=2, node_count=2)``."""
    if layout.kind == "mpi":
        return (
            f"MpiConfiguration(process_count_per_node={layout.processes_per_node}, "
            f"node_count={layout.node_count})"
        )
    if layout.kind == "pytorch":
        return (
            f"PyTorchConfiguration(communication_backend={layout.backend!r}, "
            f"process_count={layout.world_size}, node_count={layout.node_count})"
        )
    return f"a {layout.kind} job of {layout.world_size} processes"


def check_layout(
    layout: Layout, target: str, target_config: Mapping[str, Any], gpu_count: int
) -> None:
    """The rules every backend shares; raises :class:`~trainyard.exceptions.ComputeTargetException`
    saying what to change."""
    if layout.kind == "tensorflow" and layout.world_size > 1:
        raise ComputeTargetException(
            f"{describe(layout)}: TensorFlow parameter-server jobs are not supported yet. Use "
            "worker_count=1, parameter_server_count=0, or tf.distribute inside one process.",
            target=target,
        )
    max_nodes = target_config.get("max_nodes")
    if isinstance(max_nodes, int) and layout.node_count > max_nodes:
        raise ComputeTargetException(
            f"{describe(layout)} needs {layout.node_count} nodes, but compute target {target!r} "
            f"has at most {max_nodes} (max_nodes). Use node_count<={max_nodes} or a larger target.",
            target=target,
            node_count=layout.node_count,
        )
    if layout.kind == "pytorch" and layout.backend == "Nccl" and gpu_count == 0:
        raise ComputeTargetException(
            f"{describe(layout)}: NCCL needs GPUs, and compute target {target!r} has none. Use "
            "PyTorchConfiguration(communication_backend='Gloo') (and init_process_group('gloo') "
            "in the script) on CPU, or a target with GPUs.",
            target=target,
            communication_backend=layout.backend,
        )


def check_single_node(
    layout: Layout, target: str, cores: int | None = None, *, runtime_here: bool = True
) -> None:
    """What processes on one machine need: one node, at most :data:`MAX_RANKS_PER_CORE` ranks
    per core, and (``runtime_here``: that machine is this one) ``mpirun`` for MPI."""
    if layout.node_count > 1:
        raise ComputeTargetException(
            f"{describe(layout)} needs {layout.node_count} nodes, but compute target {target!r} "
            "runs its jobs as processes on this machine (one node); a multi-node PyTorch job needs "
            "a Ray cluster target (AmlCompute with backend='ray'). Use node_count=1 and put all "
            f"{layout.world_size} ranks on this machine ("
            + (
                f"process_count_per_node={layout.world_size}"
                if layout.kind == "mpi"
                else f"process_count={layout.world_size}"
            )
            + ").",
            target=target,
            node_count=layout.node_count,
        )
    limit = MAX_RANKS_PER_CORE * (cores or os.cpu_count() or 1)
    if layout.world_size > limit:
        raise ComputeTargetException(
            f"{describe(layout)} asks for {layout.world_size} processes; compute target {target!r} "
            f"(this machine, {cores or os.cpu_count()} cores) runs at most {limit} "
            f"({MAX_RANKS_PER_CORE} per core). Use fewer processes.",
            target=target,
            processes=layout.world_size,
        )
    if layout.kind == "mpi" and runtime_here:
        require_mpirun()


def find_mpirun() -> str | None:
    """The ``mpirun`` on PATH (Open MPI's), or ``None``."""
    return shutil.which("mpirun")


def require_mpirun() -> str:
    """The path of ``mpirun``; raises :class:`~trainyard.exceptions.MpiRuntimeNotFound` saying
    what to install when there is none."""
    found = find_mpirun()
    if found is None:
        raise MpiRuntimeNotFound(
            "This MPI job (MpiConfiguration) needs an MPI runtime, and no `mpirun` is on PATH on "
            f"this machine. Install Open MPI: `{OPENMPI_APT}` (mpi4py is added to the run's "
            "environment by trainyard), or submit a single-process job.",
            install=OPENMPI_APT,
        )
    return found
