"""The execution seam: :class:`ComputeBackend`.

Contract: ``submit`` hands a stored, Queued run to the backend and returns at once; from then on the
backend's own process (a supervisor) owns the run's status. ``cancel`` asks for cancellation (the
run passes through CancelRequested to Canceled; a queued run never starts). ``read_log`` returns the
bytes of a run log from ``offset`` on, so watchers stream by offset instead of re-reading files.
Implementations: local processes now; a Ray cluster later.
"""

from __future__ import annotations

import abc


class ComputeBackend(abc.ABC):
    """Runs stored runs somewhere."""

    @abc.abstractmethod
    def submit(self, run_id: str) -> None:
        """Start owning the run (it is Queued in the store)."""

    @abc.abstractmethod
    def cancel(self, run_id: str) -> bool:
        """Request cancellation; False when the run had already finished."""

    @abc.abstractmethod
    def read_log(self, run_id: str, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Bytes of log ``name`` (e.g. ``user_logs/std_log.txt``) from ``offset``; empty if none yet."""

    @abc.abstractmethod
    def log_names(self, run_id: str) -> list[str]:
        """Names of the run's logs that exist so far."""
