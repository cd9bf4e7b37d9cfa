"""The JSON shapes the studio's pages read: plain dicts built from the store's frozen entities.

Example::

    run_row(info, {"loss": 0.1}, now=time.time())   # one row of the runs table
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from trainyard._store.entities import (
    ComputeTargetRecord,
    EnvironmentRecord,
    ExperimentInfo,
    ModelInfo,
    RunInfo,
    StatusEvent,
    WebserviceRecord,
)
from trainyard._store.search import duration


def finite(value: Any) -> Any:
    """``value`` with NaN and ±inf (which JSON cannot hold) as ``None``, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def experiment_view(exp: ExperimentInfo, runs: int | None = None) -> dict[str, Any]:
    """An experiment and (when counted) how many top-level runs it has."""
    return {
        "id": exp.id,
        "name": exp.name,
        "archived": exp.archived,
        "created_at": exp.created_at,
        "runs": runs,
    }


def run_row(run: RunInfo, metrics: dict[str, Any] | None, now: float) -> dict[str, Any]:
    """One row of the runs table: what its columns show."""
    return {
        "run_id": run.run_id,
        "number": run.number,
        "display_name": run.display_name,
        "experiment": run.experiment_name,
        "experiment_id": run.experiment_id,
        "run_type": run.run_type,
        "status": run.status,
        "parent_run_id": run.parent_run_id,
        "target": run.target,
        "created_at": run.created_at,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "duration": duration(run, now),
        "user": run.submitted_by,
        "tags": run.tags,
        "properties": run.properties,
        "metrics": finite(metrics or {}),
    }


def run_details(
    run: RunInfo, history: list[StatusEvent], metrics: dict[str, Any] | None, now: float
) -> dict[str, Any]:
    """Everything the run page shows besides charts, logs and files."""
    row = run_row(run, metrics, now)
    row.update(
        {
            "description": run.description,
            "heartbeat_at": run.heartbeat_at,
            "definition": run.definition,
            "runtime": run.runtime,
            "error": run.error,
            "snapshot_id": run.snapshot_id,
            "timeline": [{"status": e.status, "at": e.at, "reason": e.reason} for e in history],
        }
    )
    return row


def model_view(model: ModelInfo) -> dict[str, Any]:
    """A model version with its lineage (run, experiment)."""
    data = asdict(model)
    data["files"] = list(model.files)
    return data


def environment_view(env: EnvironmentRecord) -> dict[str, Any]:
    """A registered environment version and its spec."""
    return asdict(env)


def compute_view(target: ComputeTargetRecord) -> dict[str, Any]:
    """A compute target and its configuration."""
    return asdict(target)


def endpoint_view(record: WebserviceRecord) -> dict[str, Any]:
    """A web service: state, scoring URI, models, and the rest of its record (keys left out)."""
    data = {k: v for k, v in record.data.items() if "key" not in k.lower()}
    return {
        "name": record.name,
        "state": record.state,
        "scoring_uri": record.data.get("scoringUri"),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "data": data,
    }
