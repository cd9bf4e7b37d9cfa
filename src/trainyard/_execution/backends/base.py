"""The execution seam: :class:`ComputeBackend`, the only way the public API starts work.

A backend runs *entrypoints* — a run's supervisor, a sweep's controller, a service's deployer (see
:class:`~trainyard._execution.daemon.Entrypoint`) — somewhere: processes on this machine today, a
Ray cluster later. Runs, sweeps and services all go through it, so a new backend gets all three.

Contract (checked for every backend by :mod:`trainyard.testing.backend`):

* ``submit(run_id)`` hands a stored, Queued run to the backend and returns at once; from then on the
  backend's supervisor owns the run's status, runs wait FIFO for one of the target's slots, and a run
  whose owner dies is ended Failed with a reason by the reaper.
* ``launch(entrypoint)`` starts any other detached entrypoint the same way and returns at once.
* ``cancel(run_id)`` asks for cancellation (the run passes through CancelRequested to Canceled; a
  queued run never starts); ``False`` when the run had already finished.
* ``check_run(definition)`` refuses, before anything is stored, a job the target can never run
  (a Ray cluster none of whose nodes has the resources it needs).
* ``check_layout(layout, gpu_count)`` refuses, before anything is stored, a distributed job the
  target can never run (too many nodes or processes, NCCL without GPUs, no MPI runtime).
* ``status(run_id)`` is the run's current status; ``read_log(run_id, name, offset)`` the bytes of one
  log from ``offset`` on, so watchers stream by offset; ``log_names(run_id)`` the logs so far.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trainyard._lifecycle import RunStatus

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext
    from trainyard._execution.daemon import Entrypoint
    from trainyard._execution.distributed import Layout
    from trainyard._store.entities import ComputeTargetRecord


class ComputeBackend(abc.ABC):
    """Runs a workspace's work on one compute target."""

    def __init__(self, ctx: WorkspaceContext, target: ComputeTargetRecord) -> None:
        self.ctx = ctx
        self.target = target

    @abc.abstractmethod
    def launch(self, entrypoint: Entrypoint) -> int | None:
        """Start ``entrypoint`` detached (it outlives the caller); returns at once, with its pid
        when it runs on this machine (else ``None``)."""

    @abc.abstractmethod
    def submit(self, run_id: str, env: Mapping[str, str] | None = None) -> None:
        """Start owning the run (it is Queued in the store); ``env`` adds variables to its
        supervisor's environment (a server passes the run's token this way)."""

    @abc.abstractmethod
    def cancel(self, run_id: str) -> bool:
        """Request cancellation; ``False`` when the run had already finished."""

    def check_run(self, definition: Mapping[str, Any]) -> None:
        """Raise :class:`~trainyard.exceptions.ComputeTargetException` when this target can never
        run the job ``definition`` describes (checked before anything is stored); the default
        accepts everything (the local machine's limits are checked by :meth:`check_layout`)."""
        return None

    def check_layout(self, layout: Layout, gpu_count: int) -> None:
        """Raise :class:`~trainyard.exceptions.ComputeTargetException` when this target can never
        run ``layout``. The default is processes on one machine: the shared rules
        (:func:`~trainyard._execution.distributed.check_layout`) plus one node, an ``mpirun`` for
        MPI and a bounded number of ranks. A cluster backend overrides the single-node part."""
        from trainyard._execution.distributed import check_layout, check_single_node

        check_layout(layout, self.target.name, self.target.config, gpu_count)
        check_single_node(layout, self.target.name)

    def status(self, run_id: str) -> RunStatus:
        """The run's current status."""
        return RunStatus.parse(self.ctx.store.get_run(run_id).status)

    @abc.abstractmethod
    def read_log(self, run_id: str, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Bytes of log ``name`` (e.g. ``user_logs/std_log.txt``) from ``offset``; empty if none yet."""

    @abc.abstractmethod
    def log_names(self, run_id: str) -> list[str]:
        """Names of the run's logs that exist so far."""
