"""What a sweep controller tracks about each child run, and how child outcomes are told to the
sampler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainyard._lifecycle import RunStatus

#: A finished child's status → the outcome the parameter generator is told.
OUTCOMES = {
    RunStatus.COMPLETED.value: "completed",
    RunStatus.FAILED.value: "failed",
    RunStatus.CANCELED.value: "canceled",
}


@dataclass
class TrackedChild:
    """What the controller tracks about one child (its own, or one of a ``resume_from`` sweep)."""

    run_id: str
    hyperparameters: dict[str, Any] | None
    status: str
    trial: int | None = None
    index: int | None = None
    foreign: bool = False
    series: list[float] = field(default_factory=list)
    evaluated: int = 0
    cancel_sent: bool = False
    observed: bool = False

    @property
    def terminal(self) -> bool:
        return RunStatus.parse(self.status).is_terminal()
