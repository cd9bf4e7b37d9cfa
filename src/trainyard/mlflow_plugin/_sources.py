"""Where an MLflow model *source* URI points in trainyard: a run and a path among its files.

MLflow clients register a model version from ``runs:/<run>/<path>``, from the run's artifact URI
(``mlflow-artifacts:/<exp>/<run>/artifacts/<path>`` on the team server, or the full proxy URL;
``trainyard-artifacts:/<run>/<path>?workspace=…`` embedded), or — MLflow 3 — from a logged model
(``models:/m-…``, whose id names the run that holds its files). No MLflow import.

Example::

    resolve("runs:/3f2a.../model", None, store, None)   # Source(run_id='3f2a...', path='model', ...)
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass

from trainyard._store.artifacts import safe_relpath
from trainyard._store.base import TrackingStore
from trainyard.exceptions import ValidationError
from trainyard.mlflow_plugin import _mapping as m

#: The marker of the artifact proxy's path in a full URL.
_PROXY = "/mlflow-artifacts/artifacts/"


@dataclass(frozen=True)
class Source:
    """A run, a path below its files (``""``: all of them) and, for a logged model, its id."""

    run_id: str
    path: str
    model_id: str | None = None


def logged_model_run(model_id: str) -> str | None:
    """The run holding logged model ``m-<16 hex>-<run id>``, or ``None`` if not one of ours."""
    head = 2 + 16
    if len(model_id) <= head + 1 or not model_id.startswith("m-") or model_id[head] != "-":
        return None
    return model_id[head + 1 :]


def _logged_model(model_id: str, store: TrackingStore) -> Source:
    run_id = logged_model_run(model_id)
    if run_id is None:
        raise ValidationError(f"Unknown logged model {model_id!r}.")
    raw = store.get_run(run_id).tags.get(m.LOGGED_MODEL_TAG + model_id)
    if not raw:
        raise ValidationError(f"Unknown logged model {model_id!r}.")
    return Source(run_id, str(json.loads(raw)["artifact_path"]), model_id)


def _split_run_path(parts: list[str], source: str) -> Source:
    if len(parts) < 3 or parts[2] != "artifacts":
        raise ValidationError(
            f"Model source {source!r} is not <experiment>/<run>/artifacts/<path>."
        )
    return Source(parts[1], "/".join(parts[3:]))


def resolve(
    source: str, run_id: str | None, store: TrackingStore, model_id: str | None = None
) -> Source:
    """The run and path ``source`` names (``ValidationError`` saying which forms are known)."""
    parsed = urllib.parse.urlparse(source)
    path = urllib.parse.unquote(parsed.path)
    scheme = parsed.scheme.lower()
    if scheme == "runs":
        rid, _, rel = (parsed.netloc + path).strip("/").partition("/")
        return Source(rid or str(run_id or ""), safe_relpath(rel) if rel else "", model_id)
    if scheme == "models":
        head = (parsed.netloc + path).strip("/").split("/")[0]
        if head.startswith("m-"):
            return _logged_model(head, store)
    if scheme == "mlflow-artifacts":
        parts = safe_relpath(path.strip("/")).split("/")
        found = _split_run_path(parts, source)
        return Source(found.run_id, found.path, model_id)
    if scheme in ("http", "https") and _PROXY in path:
        parts = safe_relpath(path.split(_PROXY, 1)[1].strip("/")).split("/")
        found = _split_run_path(parts, source)
        return Source(found.run_id, found.path, model_id)
    if scheme == "trainyard-artifacts":
        parts = [p for p in path.strip("/").split("/") if p]
        if parts:
            return Source(parts[0], "/".join(parts[1:]), model_id)
    if model_id:
        return _logged_model(model_id, store)
    raise ValidationError(
        f"Unsupported model source {source!r}: register from runs:/<run id>/<path>, the run's "
        "artifact URI, or a logged model (models:/m-…)."
    )
