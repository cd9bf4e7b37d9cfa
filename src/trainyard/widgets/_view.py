"""What the run widget shows, read from a run through its public API: one frozen :class:`RunView`.

Both renderers (HTML for a notebook, rich for a terminal) draw a ``RunView``; nothing here knows
how it is drawn. A HyperDrive parent gets its children (id, status, hyperparameters, best primary
metric and the primary metric's series); a script run gets its metric series and the tail of its
streamed log.

Example::

    log = LogTail()
    view = collect(run, log)
    view.status, [s.name for s in view.series]
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from trainyard._lifecycle import RunStatus

#: Most children a sweep's table lists (best first); the chart overlays the first ``MAX_LINES``.
MAX_CHILDREN = 50
MAX_LINES = 20
#: Lines of the streamed log kept for the view.
LOG_LINES = 30
_STD_LOG = "user_logs/std_log.txt"


@dataclass(frozen=True)
class Series:
    """A numeric metric logged more than once (or a child's primary metric), in logged order."""

    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class ChildRow:
    """One child of a HyperDrive sweep."""

    run_id: str
    status: str
    hyperparameters: str
    best: float | None
    series: tuple[float, ...] = ()


@dataclass(frozen=True)
class RunView:
    """Everything the widget draws at one refresh."""

    run_id: str
    run_type: str
    display_name: str
    status: str
    terminal: bool
    started: str | None
    ended: str | None
    duration_s: float | None
    error: str | None
    scalars: dict[str, str] = field(default_factory=dict)
    series: tuple[Series, ...] = ()
    children: tuple[ChildRow, ...] = ()
    #: (name, "maximize" | "minimize") for a HyperDrive parent.
    primary: tuple[str, str] | None = None
    log_name: str | None = None
    log_tail: tuple[str, ...] = ()


class LogTail:
    """Follows one log by byte offset and keeps its last ``LOG_LINES`` complete lines."""

    def __init__(self) -> None:
        self.name: str | None = None
        self._offset = 0
        self._partial = b""
        self.lines: deque[str] = deque(maxlen=LOG_LINES)

    def follow(self, run: Any) -> None:
        """Read what the run's standard log gained since the last call (no-op without logs)."""
        if not hasattr(run, "read_log"):
            return
        if self.name is None:
            names = run.get_log_names() if hasattr(run, "get_log_names") else []
            if _STD_LOG not in names:
                return
            self.name = _STD_LOG
        while True:
            data = run.read_log(self.name, self._offset, 1 << 20)
            if not data:
                return
            self._offset += len(data)
            text = self._partial + data
            *whole, self._partial = text.split(b"\n")
            self.lines.extend(line.decode("utf-8", errors="replace") for line in whole)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _split_metrics(metrics: dict[str, Any]) -> tuple[dict[str, str], tuple[Series, ...]]:
    scalars: dict[str, str] = {}
    series: list[Series] = []
    for name, value in metrics.items():
        if isinstance(value, list) and value and all(_is_number(v) for v in value):
            if len(value) > 1:
                series.append(Series(name, tuple(float(v) for v in value)))
            else:
                scalars[name] = _short(value[0])
        elif isinstance(value, list):
            scalars[name] = f"{len(value)} values, last {_short(value[-1])}" if value else "[]"
        else:
            scalars[name] = _short(value)
    return scalars, tuple(series)


def _iso(at: Any) -> str | None:
    if not _is_number(at):
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(float(at), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(start: Any, end: Any) -> float | None:
    if not _is_number(start):
        return None
    if _is_number(end):
        return float(end) - float(start)
    import time

    return max(0.0, time.time() - float(start))


def _message(error: Any) -> str | None:
    if not error:
        return None
    if isinstance(error, dict):
        inner = error.get("error", error)
        return str(inner.get("message", inner)) if isinstance(inner, dict) else str(inner)
    return str(error)


def _children(run: Any, name: str) -> tuple[ChildRow, ...]:
    rows = run.get_children_sorted_by_primary_metric()[:MAX_CHILDREN]
    by_id = {c.id: c for c in run.get_children()}
    out = []
    for i, row in enumerate(rows):
        child = by_id.get(row["run_id"])
        values: tuple[float, ...] = ()
        if child is not None and i < MAX_LINES:
            logged = child.get_metrics(name).get(name)
            logged = logged if isinstance(logged, list) else [] if logged is None else [logged]
            values = tuple(float(v) for v in logged if _is_number(v))
        best = row["best_primary_metric"]
        out.append(
            ChildRow(
                run_id=str(row["run_id"]),
                status=str(row["status"]),
                hyperparameters=str(row["hyperparameters"] or ""),
                best=float(best) if _is_number(best) else None,
                series=values,
            )
        )
    return tuple(out)


def collect(run: Any, log: LogTail | None = None) -> RunView:
    """The current :class:`RunView` of ``run`` (a ``Run``, ``ScriptRun`` or ``HyperDriveRun``)."""
    status = run.get_status()
    if hasattr(run, "get_info"):
        info = run.get_info()
        start, end, error = info.start_time, info.end_time, info.error
    else:  # an offline run, or a look-alike: v1's details dict
        details = run.get_details()
        start = end = None
        error = details.get("error")
    hyperdrive = callable(getattr(run, "primary_metric", None))
    primary: tuple[str, str] | None = None
    children: tuple[ChildRow, ...] = ()
    scalars: dict[str, str] = {}
    series: tuple[Series, ...] = ()
    if hyperdrive:
        name, goal = run.primary_metric()
        primary = (str(name), str(goal))
        children = _children(run, primary[0])
    else:
        scalars, series = _split_metrics(run.get_metrics())
    if log is not None and not hyperdrive:
        log.follow(run)
    return RunView(
        run_id=str(run.id),
        run_type=str(getattr(run, "type", "")),
        display_name=str(getattr(run, "display_name", "") or ""),
        status=str(status),
        terminal=RunStatus.parse(status).is_terminal(),
        started=_iso(start),
        ended=_iso(end),
        duration_s=_duration(start, end),
        error=_message(error),
        scalars=scalars,
        series=series,
        children=children,
        primary=primary,
        log_name=None if log is None else log.name,
        log_tail=() if log is None else tuple(log.lines),
    )
