"""MLflow's JSON views of trainyard records, and the subset of MLflow's search grammar the server
answers (no MLflow import: the server never depends on it).

The record mapping is the MLflow plugin's (:mod:`trainyard.mlflow_plugin._mapping`): run ids are
identical, experiment ids are trainyard's integer ids as strings (``"0"`` is ``Default``), params
are run properties, tags are run tags (``mlflow.runName`` is the display name, ``mlflow.parentRunId``
the parent), metrics are the run's scalar series with their steps and timestamps.

Example::

    run_json(info, chunks)     # {"info": {...}, "data": {"metrics": [...], "params": [...], ...}}
    matches(run, parse_filter("metrics.acc > 0.9 and params.lr = '0.1'"))
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from trainyard._store.entities import ExperimentInfo, MetricChunk, RunInfo
from trainyard._tracking.codec import decode
from trainyard.exceptions import ValidationError
from trainyard.mlflow_plugin import _mapping as m

#: MLflow's run status names → trainyard's terminal statuses (``RUNNING`` changes nothing).
FROM_MLFLOW = {"FINISHED": "Completed", "FAILED": "Failed", "KILLED": "Canceled"}


def number(value: float) -> float | str:
    """A float as MLflow's JSON carries it: NaN and infinities as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def experiment_json(exp: ExperimentInfo) -> dict[str, Any]:
    exp_id = m.DEFAULT_EXPERIMENT_ID if exp.name == m.DEFAULT_EXPERIMENT_NAME else str(exp.id)
    created = m.ms(exp.created_at)
    return {
        "experiment_id": exp_id,
        "name": exp.name,
        "artifact_location": f"mlflow-artifacts:/{exp_id}",
        "lifecycle_stage": "deleted" if exp.archived else "active",
        "creation_time": created,
        "last_update_time": created,
        "tags": [],
    }


@dataclass(frozen=True)
class Point:
    """One metric value as MLflow sees it."""

    key: str
    value: float
    timestamp: int
    step: int

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": number(self.value),
            "timestamp": self.timestamp,
            "step": self.step,
        }


def points(chunks: Iterable[MetricChunk]) -> dict[str, list[Point]]:
    """Every scalar metric's points, in logging order (non-numeric series are not MLflow's)."""
    out: dict[str, list[Point]] = {}
    for name, (kind, pts) in decode(chunks).items():
        if kind != "scalar":
            continue
        series = [
            Point(name, float(p.value), m.ms(p.timestamp) or 0, int(p.step or 0))
            for p in pts
            if isinstance(p.value, int | float) and not isinstance(p.value, bool)
        ]
        if series:
            out[name] = series
    return out


def latest(series: Sequence[Point]) -> Point:
    """MLflow's "latest" value of a metric: the greatest step, then the latest timestamp."""
    return max(series, key=lambda p: (p.step, p.timestamp))


def experiment_id_of(info: RunInfo) -> str:
    default = info.experiment_name == m.DEFAULT_EXPERIMENT_NAME
    return m.DEFAULT_EXPERIMENT_ID if default else str(info.experiment_id)


def metrics_json(series: dict[str, list[Point]] | None) -> list[dict[str, Any]]:
    """A run's ``data.metrics``: the latest point of each series, by name."""
    return [latest(s).to_json() for _, s in sorted((series or {}).items())]


def run_json(info: RunInfo, series: dict[str, list[Point]] | None = None) -> dict[str, Any]:
    """``{"info", "data", "inputs"}`` of one run (``series``: its metrics, else none)."""
    exp_id = experiment_id_of(info)
    tags = [{"key": k, "value": v} for k, v in sorted(info.tags.items()) if m.visible_tag(k)]
    tags.append({"key": m.RUN_NAME_TAG, "value": info.display_name or info.run_id})
    if info.parent_run_id:
        tags.append({"key": m.PARENT_RUN_TAG, "value": info.parent_run_id})
    return {
        "info": {
            "run_id": info.run_id,
            "run_uuid": info.run_id,
            "run_name": info.display_name or info.run_id,
            "experiment_id": exp_id,
            "user_id": info.tags.get(m.USER_TAG) or info.submitted_by or "",
            "status": m.mlflow_status(info.status),
            "start_time": m.ms(info.start_time or info.created_at),
            "end_time": m.ms(info.end_time),
            "artifact_uri": f"mlflow-artifacts:/{exp_id}/{info.run_id}/artifacts",
            "lifecycle_stage": "deleted" if m.DELETED_TAG in info.tags else "active",
        },
        "data": {
            "metrics": metrics_json(series),
            "params": [{"key": k, "value": v} for k, v in sorted(info.properties.items())],
            "tags": tags,
        },
        "inputs": {},
    }


# -- search -----------------------------------------------------------------------------------
_CLAUSE = re.compile(
    r"""\s*(?P<entity>metrics?|params?|parameters?|tags?|attributes?|attr|run)\.
        (?P<key>`[^`]+`|"[^"]+"|[\w.\-]+)\s*
        (?P<op>!=|>=|<=|=|>|<|\bNOT\s+LIKE\b|\bLIKE\b|\bILIKE\b|\bIN\b|\bNOT\s+IN\b)\s*
        (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\([^)]*\)|[-+\w.]+)\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Clause:
    entity: str  # metrics | params | tags | attributes
    key: str
    op: str
    value: Any


def _entity(word: str) -> str:
    w = word.lower()
    if w.startswith("metric"):
        return "metrics"
    if w.startswith("param"):
        return "params"
    if w.startswith("tag"):
        return "tags"
    return "attributes"


def _literal(text: str) -> Any:
    if text[:1] in "'\"":
        return text[1:-1].replace("\\'", "'").replace('\\"', '"')
    if text.startswith("("):
        return [_literal(v.strip()) for v in text[1:-1].split(",") if v.strip()]
    try:
        return float(text)
    except ValueError:
        raise ValidationError(f"Invalid value {text!r} in the search filter.") from None


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of an MLflow search filter (``AND`` of comparisons); ``ValidationError``
    naming what cannot be read."""
    if not text or not text.strip():
        return []
    clauses = []
    for part in _AND.split(text.strip()):
        found = _CLAUSE.fullmatch(part)
        if found is None:
            raise ValidationError(
                f"Unsupported search filter clause {part!r}: use "
                "`metrics.<k> > 1`, `params.<k> = 'v'`, `tags.<k> LIKE 'v%'` or "
                "`attributes.status = 'FINISHED'`, joined by AND."
            )
        key = found["key"].strip('`"')
        op = " ".join(found["op"].upper().split())
        clauses.append(Clause(_entity(found["entity"]), key, op, _literal(found["value"])))
    return clauses


def _attribute(run: dict[str, Any], key: str) -> Any:
    info = run["info"]
    key = {"run_name": "run_name", "status": "status", "run_id": "run_id"}.get(key, key)
    return info.get(key)


def field_value(run: dict[str, Any], entity: str, key: str) -> Any:
    """What a clause or an ``order_by`` reads from a run's JSON view."""
    if entity == "attributes":
        return _attribute(run, key)
    items = run["data"][entity]
    for item in items:
        if item["key"] == key:
            value = item["value"]
            return float(value) if entity == "metrics" else value
    return None


def _like(value: str, pattern: str, fold: bool) -> bool:
    regex = "^" + ".*".join(re.escape(p).replace("_", ".") for p in pattern.split("%")) + "$"
    return re.match(regex, value, re.IGNORECASE if fold else 0) is not None


def _holds(value: Any, op: str, want: Any) -> bool:
    if value is None:
        return False
    if op in ("IN", "NOT IN"):
        inside = str(value) in {str(w) for w in (want if isinstance(want, list) else [want])}
        return inside == (op == "IN")
    if op in ("LIKE", "ILIKE", "NOT LIKE"):
        hit = _like(str(value), str(want), op == "ILIKE")
        return hit != (op == "NOT LIKE")
    if isinstance(want, float) and not isinstance(value, float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return False
    if isinstance(value, float) and not isinstance(want, float):
        return False
    ops = {
        "=": value == want,
        "!=": value != want,
        ">": value > want,
        ">=": value >= want,
        "<": value < want,
        "<=": value <= want,
    }
    return bool(ops[op])


def matches(run: dict[str, Any], clauses: Sequence[Clause]) -> bool:
    """Whether a run's JSON view satisfies every clause."""
    return all(_holds(field_value(run, c.entity, c.key), c.op, c.value) for c in clauses)


def sort_runs(runs: list[dict[str, Any]], order_by: Sequence[str] | None) -> list[dict[str, Any]]:
    """MLflow's ordering: each ``<entity>.<key> [ASC|DESC]`` in turn (missing values last), then
    start time, newest first."""
    ordered = sorted(runs, key=lambda r: -(r["info"]["start_time"] or 0))
    for spec in reversed(list(order_by or [])):
        words = spec.strip().split()
        if not words:
            continue
        desc = len(words) > 1 and words[-1].upper() == "DESC"
        target = words[0]
        entity, _, key = target.partition(".")
        if not key:
            entity, key = "attributes", entity
        ent = _entity(entity)
        key = key.strip('`"')
        present = [r for r in ordered if field_value(r, ent, key) is not None]
        missing = [r for r in ordered if field_value(r, ent, key) is None]
        present.sort(key=lambda r: field_value(r, ent, key), reverse=desc)
        ordered = present + missing
    return ordered
