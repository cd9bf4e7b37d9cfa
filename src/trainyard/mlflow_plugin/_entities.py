"""Build MLflow entities from trainyard's public objects (MLflow 2.x and 3.x constructors differ)."""

from __future__ import annotations

import datetime as _dt
import inspect
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    Metric,
    Param,
    RunData,
    RunInfo,
    RunInputs,
    RunTag,
)
from mlflow.entities import Experiment as MlflowExperiment
from mlflow.entities import Run as MlflowRun

from trainyard.core import Experiment, Run
from trainyard.mlflow_plugin import _mapping as m
from trainyard.mlflow_plugin._uri import ARTIFACT_SCHEME, artifact_uri

_RUNINFO_PARAMS = inspect.signature(RunInfo.__init__).parameters
_METRIC_PARAMS = inspect.signature(Metric.__init__).parameters
_RUN_PARAMS = inspect.signature(MlflowRun.__init__).parameters

#: Internal tags holding a run's MLflow inputs and outputs (JSON lists).
INPUTS_TAG = m.INTERNAL_PREFIX + "inputs"
OUTPUTS_TAG = m.INTERNAL_PREFIX + "outputs"


def _ms_from_iso(text: str | None) -> int | None:
    if not text:
        return None
    stamp = _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_dt.UTC)
    return round(stamp.timestamp() * 1000)


def make_metric(key: str, value: float, timestamp_ms: int, step: int, run_id: str | None) -> Metric:
    """An MLflow ``Metric`` (``run_id`` only where the installed MLflow has it)."""
    if "run_id" in _METRIC_PARAMS:
        return Metric(key=key, value=value, timestamp=timestamp_ms, step=step, run_id=run_id)
    return Metric(key=key, value=value, timestamp=timestamp_ms, step=step)


def experiment_entity(workspace: Path, exp: Experiment) -> MlflowExperiment:
    """MLflow's view of a trainyard experiment (no tags: trainyard experiments have none)."""
    return MlflowExperiment(
        experiment_id=str(exp.id),
        name=exp.name,
        artifact_location=f"{ARTIFACT_SCHEME}:/?workspace={workspace}",
        lifecycle_stage="deleted" if exp.archived else "active",
        tags=None,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _order(step: int, ts: float, value: float) -> tuple[int, float, float]:
    return (step, ts, -math.inf if math.isnan(value) else value)


def metric_history(run: Run, key: str) -> list[Metric]:
    """Every numeric point of metric ``key`` in logged order (non-numeric values are skipped)."""
    out = []
    for p in run.get_metric_points(key):
        v = _number(p.value)
        if v is not None:
            out.append(make_metric(key, v, m.ms(p.timestamp) or 0, int(p.step), run.id))
    return out


def latest_metrics(run: Run, names: Iterable[str]) -> list[Metric]:
    """MLflow's "latest" value per metric: the highest step, then the newest timestamp."""
    latest = []
    for name in names:
        best: tuple[tuple[int, float, float], Any] | None = None
        for p in run.get_metric_points(name):
            v = _number(p.value)
            if v is None:
                continue
            key = _order(int(p.step), p.timestamp, v)
            if best is None or key > best[0]:
                best = (key, p)
        if best is not None:
            p = best[1]
            latest.append(
                make_metric(name, float(p.value), m.ms(p.timestamp) or 0, int(p.step), run.id)
            )
    return latest


def _json_list(tags: Mapping[str, str], key: str) -> list[dict[str, Any]]:
    raw = tags.get(key)
    if not raw:
        return []
    value = json.loads(raw)
    return value if isinstance(value, list) else []


def run_inputs(tags: Mapping[str, str]) -> RunInputs:
    """The run's dataset (and, on MLflow 3, model) inputs from their internal tag."""
    datasets = []
    models = []
    for item in _json_list(tags, INPUTS_TAG):
        if "model_id" in item:
            models.append(item["model_id"])
            continue
        ds = Dataset(**item["dataset"])
        datasets.append(DatasetInput(dataset=ds, tags=[InputTag(k, v) for k, v in item["tags"]]))
    if models and "model_inputs" in inspect.signature(RunInputs.__init__).parameters:
        from mlflow.entities import LoggedModelInput

        return RunInputs(
            dataset_inputs=datasets, model_inputs=[LoggedModelInput(i) for i in models]
        )
    return RunInputs(dataset_inputs=datasets)


def run_outputs(tags: Mapping[str, str]) -> Any:
    """The run's model outputs (MLflow 3 only; ``None`` on 2.x)."""
    if "run_outputs" not in _RUN_PARAMS:
        return None
    from mlflow.entities import LoggedModelOutput, RunOutputs

    return RunOutputs(
        model_outputs=[
            LoggedModelOutput(o["model_id"], o["step"]) for o in _json_list(tags, OUTPUTS_TAG)
        ]
    )


def run_entity(
    workspace: Path,
    run: Run,
    *,
    with_metrics: bool = True,
    details: Mapping[str, Any] | None = None,
) -> MlflowRun:
    """MLflow's view of a trainyard run: one read of its details, then its metric series."""
    if details is None:
        details = run.get_details()
    tags: dict[str, str] = details["tags"]
    shown = {k: v for k, v in tags.items() if m.visible_tag(k)}
    shown[m.RUN_NAME_TAG] = run.display_name
    parent = run.parent
    if parent is not None:
        shown[m.PARENT_RUN_TAG] = parent.id
    user = tags.get(m.USER_TAG) or details.get("submittedBy") or ""
    start = _ms_from_iso(details.get("startTimeUtc"))
    end = _ms_from_iso(details.get("endTimeUtc"))
    info_kwargs: dict[str, Any] = {
        "experiment_id": str(run.experiment.id),
        "user_id": user,
        "status": m.mlflow_status(details["status"]),
        "start_time": start if start is not None else 0,
        "end_time": end,
        "lifecycle_stage": "deleted" if m.DELETED_TAG in tags else "active",
        "artifact_uri": artifact_uri(workspace, run.id),
        "run_name": run.display_name,
        "run_id": run.id,
    }
    if "run_uuid" in _RUNINFO_PARAMS:
        info_kwargs["run_uuid"] = run.id
    info = RunInfo(**info_kwargs)
    metrics = latest_metrics(run, run.get_metrics().keys()) if with_metrics else []
    data = RunData(
        metrics=metrics,
        params=[Param(k, v) for k, v in details["properties"].items()],
        tags=[RunTag(k, v) for k, v in shown.items()],
    )
    if "run_outputs" in _RUN_PARAMS:
        return MlflowRun(info, data, run_inputs(tags), run_outputs(tags))
    return MlflowRun(info, data, run_inputs(tags))
