"""Reading a sweep's history from the store: children, their hyperparameters, metric series.

Shared by the controller (which rebuilds its generator and policy inputs from it) and
:class:`~trainyard.train.hyperdrive.run.HyperDriveRun` (which sorts children and finds the best).

Example::

    infos = list_children(store, "HD_1f…")
    series = primary_series(store, infos[0].run_id, "Accuracy")   # [0.71, 0.83, 0.86]
    best_value(series, "maximize")                                  # 0.86
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trainyard._tracking.codec import decode

if TYPE_CHECKING:
    from trainyard._store.base import TrackingStore
    from trainyard._store.entities import RunInfo
    from trainyard.core.run import Run

#: Parent tag holding a child's hyperparameters (v1: ``_aml_system_<child id>``).
TAG_PREFIX = "_aml_system_"
#: Child properties the controller sets.
HYPERPARAMETERS_PROPERTY = "hyperparameters"
RESUMED_CHILD_PROPERTY = "resume_child_run"
#: Parent table metric of best children (v1 name).
BEST_TABLE = "best_child_by_primary_metric"


def tag_key(child_id: str) -> str:
    """The parent tag of a child's hyperparameters."""
    return f"{TAG_PREFIX}{child_id}"


def child_index(parent_id: str, child_id: str) -> int | None:
    """``i`` of ``<parent>_<i>``, or ``None`` for an id of another form."""
    prefix = f"{parent_id}_"
    rest = child_id[len(prefix) :] if child_id.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


def list_children(store: TrackingStore, parent_id: str) -> list[RunInfo]:
    """Every direct child of ``parent_id`` (all pages), oldest first."""
    out: list[RunInfo] = []
    cursor: str | None = None
    while True:
        infos, cursor = store.list_runs(parent_run_id=parent_id, limit=500, cursor=cursor)
        out.extend(infos)
        if cursor is None:
            break
    out.sort(key=lambda i: (i.created_at, i.number))
    return out


def hyperparameters_from(
    child: RunInfo, parent_tags: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """A child's hyperparameters: its property, else the parent's tag; ``None`` if neither."""
    raw = child.properties.get(HYPERPARAMETERS_PROPERTY)
    if raw is None and parent_tags is not None:
        raw = parent_tags.get(tag_key(child.run_id))
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def child_hyperparameters(run: Run) -> dict[str, Any] | None:
    """The hyperparameters a HyperDrive child ran with (``None`` for any other run)."""
    info = run.get_info()
    found = hyperparameters_from(info)
    if found is None and info.parent_run_id is not None:
        parent = run.experiment.workspace.context.store.get_run(info.parent_run_id)
        found = hyperparameters_from(info, dict(parent.tags))
    return found


def numeric_values(values: Sequence[Any]) -> list[float]:
    """The finite numbers among logged values (strings, booleans and NaN are skipped)."""
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        f = float(v)
        if math.isfinite(f):
            out.append(f)
    return out


def primary_series(store: TrackingStore, run_id: str, name: str) -> list[float]:
    """The run's logged values of ``name`` in order: interval k is element k-1."""
    decoded = decode(store.get_metric_chunks(run_id, [name]))
    _, points = decoded.get(name, ("scalar", []))
    return numeric_values([p.value for p in points])


def best_value(series: Sequence[float], goal: str) -> float | None:
    """Max (maximize) or min (minimize) of a series; ``None`` when it is empty."""
    if not series:
        return None
    return max(series) if goal == "maximize" else min(series)


def is_better(value: float, than: float | None, goal: str) -> bool:
    """Strictly better for the goal (anything beats ``None``)."""
    if than is None:
        return True
    return value > than if goal == "maximize" else value < than


def goal_of(primary_metric_config: str | None) -> tuple[str, str]:
    """``(metric name, "maximize"|"minimize")`` from the parent's ``primary_metric_config`` tag."""
    data = json.loads(primary_metric_config or "{}")
    return str(data.get("name", "")), str(data.get("goal", "maximize")).lower()


def json_list(raw: str | None) -> list[str]:
    """A property holding a JSON list of run ids (or ``"null"``) → the list."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def metric_names(store: TrackingStore, run_id: str) -> list[str]:
    """Names of every metric the run logged, sorted."""
    return sorted({chunk.name for chunk in store.get_metric_chunks(run_id)})


def unmatched_metric_error(metric: str, child_id: str, logged: Sequence[str]) -> dict[str, Any]:
    """The sweep's error when its first completed child logged no numeric ``metric``: the names
    the child did log and the closest one (``difflib``, case-insensitive)."""
    import difflib

    by_lower = {n.lower(): n for n in logged}
    close = difflib.get_close_matches(metric.lower(), list(by_lower), n=1, cutoff=0.6)
    suggestion = by_lower[close[0]] if close else None
    if metric in logged:
        what = f"logged {metric!r}, but no numeric value of it"
    else:
        names = ", ".join(repr(n) for n in logged) or "no metrics at all"
        what = f"did not log {metric!r}; it logged {names}"
    message = (
        f"primary_metric_name={metric!r} matches nothing the first completed child run "
        f"{child_id} logged: it {what}."
        + (f" Did you mean {suggestion!r}?" if suggestion and suggestion != metric else "")
        + " The sweep stopped instead of spending its budget; set primary_metric_name to the "
        "exact name the script passes to run.log()."
    )
    return {
        "code": "PrimaryMetricNotLogged",
        "message": message,
        "primaryMetricName": metric,
        "loggedMetrics": list(logged),
        "suggestion": suggestion,
    }
