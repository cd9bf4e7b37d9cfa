"""The run lifecycle: v1 status names, the sets clients rely on, and the one transition check.

Every backend and the store call :func:`check_transition` before changing a status; an illegal change
raises :class:`~trainyard.exceptions.InvalidStatusTransition`, never an ``assert``.

Typical path (v1): NotStarted → Starting → (Provisioning) → Preparing → Queued → Running → Finalizing →
Completed | Failed. A cancel goes from any non-terminal status via CancelRequested to Canceled.
"""

from __future__ import annotations

from enum import Enum

from trainyard.exceptions import InvalidStatusTransition


class RunStatus(str, Enum):
    """A run's status; the string values are exactly v1's (user code compares them)."""

    NOT_STARTED = "NotStarted"
    STARTING = "Starting"
    PROVISIONING = "Provisioning"
    PREPARING = "Preparing"
    QUEUED = "Queued"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    NOT_RESPONDING = "NotResponding"

    def __str__(self) -> str:
        return self.value

    def is_terminal(self) -> bool:
        """Completed, Failed and Canceled are final."""
        return self in TERMINAL

    def is_running(self) -> bool:
        """v1's client-side *running* set (everything not terminal and not post-processing)."""
        return self in RUNNING_SET

    @classmethod
    def parse(cls, value: str | RunStatus) -> RunStatus:
        """The status for a v1 status string; raises ``ValidationError`` for an unknown one."""
        if isinstance(value, RunStatus):
            return value
        try:
            return cls(value)
        except ValueError:
            from trainyard.exceptions import ValidationError

            names = ", ".join(s.value for s in cls)
            raise ValidationError(
                f"Unknown run status {value!r}; expected one of: {names}."
            ) from None


TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
POST_PROCESSING = frozenset({RunStatus.CANCEL_REQUESTED, RunStatus.FINALIZING})
RUNNING_SET = frozenset(set(RunStatus) - TERMINAL - POST_PROCESSING)
#: Statuses in which a supervisor (or an interactive process) owns the run and must heartbeat.
ACTIVE = frozenset(set(RunStatus) - TERMINAL - {RunStatus.NOT_STARTED, RunStatus.QUEUED})

_S = RunStatus
_ENDINGS = {_S.FAILED, _S.CANCEL_REQUESTED, _S.CANCELED}
_ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    _S.NOT_STARTED: frozenset(
        {_S.STARTING, _S.PROVISIONING, _S.PREPARING, _S.QUEUED, _S.RUNNING} | _ENDINGS
    ),
    _S.STARTING: frozenset({_S.PROVISIONING, _S.PREPARING, _S.QUEUED, _S.RUNNING} | _ENDINGS),
    _S.PROVISIONING: frozenset({_S.STARTING, _S.PREPARING, _S.QUEUED, _S.RUNNING} | _ENDINGS),
    _S.QUEUED: frozenset({_S.STARTING, _S.PROVISIONING, _S.PREPARING, _S.RUNNING} | _ENDINGS),
    _S.PREPARING: frozenset({_S.STARTING, _S.QUEUED, _S.RUNNING} | _ENDINGS),
    _S.RUNNING: frozenset({_S.FINALIZING, _S.COMPLETED, _S.NOT_RESPONDING} | _ENDINGS),
    _S.NOT_RESPONDING: frozenset({_S.RUNNING, _S.FINALIZING} | _ENDINGS),
    _S.FINALIZING: frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELED, _S.CANCEL_REQUESTED}),
    # A cancel can race with the script finishing: the supervisor may still finalize outputs.
    _S.CANCEL_REQUESTED: frozenset({_S.CANCELED, _S.FAILED, _S.FINALIZING}),
    _S.COMPLETED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELED: frozenset(),
}


def allowed_next(status: RunStatus | str) -> frozenset[RunStatus]:
    """The statuses a run in ``status`` may move to."""
    return _ALLOWED[RunStatus.parse(status)]


def can_transition(old: RunStatus | str, new: RunStatus | str) -> bool:
    """True when ``old → new`` is allowed (a status may always be re-set to itself unless terminal)."""
    o, n = RunStatus.parse(old), RunStatus.parse(new)
    if o == n:
        return not o.is_terminal()
    return n in _ALLOWED[o]


def check_transition(old: RunStatus | str, new: RunStatus | str, run_id: str = "") -> RunStatus:
    """Return the new status, or raise :class:`InvalidStatusTransition` naming both ends."""
    o, n = RunStatus.parse(old), RunStatus.parse(new)
    if not can_transition(o, n):
        where = f"Run {run_id!r}" if run_id else "A run"
        hint = (
            "it has already finished; terminal statuses are final"
            if o.is_terminal()
            else f"allowed next statuses are: {', '.join(sorted(s.value for s in _ALLOWED[o]))}"
        )
        raise InvalidStatusTransition(
            f"{where} cannot move from {o.value} to {n.value}: {hint}.",
            run_id=run_id,
            old=o.value,
            new=n.value,
        )
    return n
