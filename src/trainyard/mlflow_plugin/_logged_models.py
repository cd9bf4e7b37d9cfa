"""MLflow 3's logged-model API (``create_logged_model`` … ``search_logged_models``) on trainyard runs.

trainyard has no "logged model" entity, so each one is kept on a run:

* its record (name, status, model type, tags, params, times) is a JSON tag
  ``trainyard.mlflow.logged_model.<model_id>`` of its *source run*; a model logged without a run
  gets a holder run of its own (tagged ``trainyard.mlflow.kind=model_holder``, hidden from
  ``search_runs``);
* its files are that run's files under ``<name>/`` — the layout MLflow 2 used, so
  ``runs:/<run_id>/<name>`` and trainyard's ``run.register_model(..., model_path=<name>)`` both find
  them;
* its id is ``m-<16 hex>-<run id>``, so the run is found without a scan.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlflow.entities import LoggedModel, LoggedModelStatus
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.search_utils import SearchLoggedModelsUtils

from trainyard.mlflow_plugin import _mapping as m
from trainyard.mlflow_plugin._errors import invalid, not_found, translated
from trainyard.mlflow_plugin._uri import artifact_uri

if TYPE_CHECKING:
    from trainyard.core import Experiment, Run, Workspace

_HAS_MODELS_TAG = m.INTERNAL_PREFIX + "has_models"
_ID_HEX = 16
_DEFAULT_MAX_RESULTS = 100


def model_id_for(run_id: str) -> str:
    """A fresh logged-model id that names the run holding it."""
    return f"m-{secrets.token_hex(_ID_HEX // 2)}-{run_id}"


def run_id_of(model_id: str) -> str | None:
    """The holding run's id, or ``None`` if ``model_id`` is not one of ours."""
    head = 2 + _ID_HEX
    if len(model_id) <= head + 1 or not model_id.startswith("m-") or model_id[head] != "-":
        return None
    return model_id[head + 1 :]


class LoggedModelsMixin:
    """Logged-model methods of :class:`~trainyard.mlflow_plugin.store.TrainyardStore`."""

    workspace: Workspace
    _lock: threading.Lock

    def _run(self, run_id: str) -> Run:
        raise NotImplementedError

    def _experiment(self, experiment_id: Any) -> Experiment:
        raise NotImplementedError

    # -- records --------------------------------------------------------------------------------
    def _holder(self, model_id: str) -> Run:
        run_id = run_id_of(model_id)
        if run_id is None:
            raise not_found(f"Logged model with ID '{model_id}' not found.")
        try:
            return self._run(run_id)
        except Exception:
            raise not_found(f"Logged model with ID '{model_id}' not found.") from None

    def _record(self, run: Run, model_id: str, allow_deleted: bool = False) -> dict[str, Any]:
        with translated():
            raw = run.get_tags().get(m.LOGGED_MODEL_TAG + model_id)
        record = json.loads(raw) if raw else None
        if record is None or (record.get("deleted") and not allow_deleted):
            raise not_found(f"Logged model with ID '{model_id}' not found.")
        return dict(record)

    def _entity(self, run: Run, record: dict[str, Any]) -> LoggedModel:
        return LoggedModel(
            experiment_id=record["experiment_id"],
            model_id=record["model_id"],
            name=record["name"],
            artifact_location=artifact_uri(self.workspace.path, run.id, record["artifact_path"]),
            creation_timestamp=record["creation_timestamp"],
            last_updated_timestamp=record["last_updated_timestamp"],
            model_type=record.get("model_type"),
            source_run_id=record.get("source_run_id"),
            status=LoggedModelStatus(record["status"]),
            tags=dict(record["tags"]),
            params=dict(record["params"]),
        )

    def _update(self, model_id: str, change: Any) -> LoggedModel:
        run = self._holder(model_id)
        with self._lock:
            record = self._record(run, model_id)
            change(record)
            record["last_updated_timestamp"] = _now_ms()
            with translated():
                run.set_tags({m.LOGGED_MODEL_TAG + model_id: json.dumps(record)})
        return self._entity(run, record)

    # -- the API MLflow 3 calls -----------------------------------------------------------------
    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Sequence[Any] | None = None,
        params: Sequence[Any] | None = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        """A PENDING model whose files will be ``<name>/`` in its source (or holder) run."""
        from trainyard.mlflow_plugin.store import _random_name

        exp = self._experiment(experiment_id)
        name = name or _random_name()
        if "/" in name or name in (".", ".."):
            raise invalid(f"Invalid model name {name!r}: it must not contain '/'.")
        with translated():
            if source_run_id:
                run = self._run(source_run_id)
            else:
                run = exp.start_logging(display_name=name)
                run.set_tags({m.HOLDER_TAG: "model_holder"})
                run.complete()
            with self._lock:
                taken = {
                    json.loads(v).get("artifact_path")
                    for k, v in run.get_tags().items()
                    if k.startswith(m.LOGGED_MODEL_TAG)
                }
                path = name if name not in taken else f"{name}-{secrets.token_hex(4)}"
                model_id = model_id_for(run.id)
                now = _now_ms()
                record = {
                    "model_id": model_id,
                    "experiment_id": str(run.experiment.id),
                    "name": name,
                    "artifact_path": path,
                    "source_run_id": source_run_id or None,
                    "model_type": model_type,
                    "status": LoggedModelStatus.PENDING.value,
                    "creation_timestamp": now,
                    "last_updated_timestamp": now,
                    "tags": {t.key: t.value for t in tags or []},
                    "params": {p.key: p.value for p in params or []},
                }
                run.set_tags(
                    {m.LOGGED_MODEL_TAG + model_id: json.dumps(record), _HAS_MODELS_TAG: "1"}
                )
        return self._entity(run, record)

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        """The logged model ``model_id``; ``RESOURCE_DOES_NOT_EXIST`` if unknown or deleted."""
        run = self._holder(model_id)
        return self._entity(run, self._record(run, model_id, allow_deleted))

    def finalize_logged_model(self, model_id: str, status: Any) -> LoggedModel:
        """Set the status (READY or FAILED)."""
        value = (
            LoggedModelStatus(status).value
            if not isinstance(status, int)
            else LoggedModelStatus.from_int(status).value
        )

        def change(record: dict[str, Any]) -> None:
            record["status"] = value

        return self._update(model_id, change)

    def set_logged_model_tags(self, model_id: str, tags: Sequence[Any]) -> None:
        """Add or overwrite the model's tags."""

        def change(record: dict[str, Any]) -> None:
            record["tags"].update({t.key: t.value for t in tags})

        self._update(model_id, change)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        """Remove one tag; ``RESOURCE_DOES_NOT_EXIST`` if the model has no such tag."""

        def change(record: dict[str, Any]) -> None:
            if key not in record["tags"]:
                raise not_found(f"No tag with key {key!r} found for model with ID {model_id!r}.")
            del record["tags"][key]

        self._update(model_id, change)

    def log_logged_model_params(self, model_id: str, params: Sequence[Any]) -> None:
        """Add params (write-once, like run params)."""

        def change(record: dict[str, Any]) -> None:
            for p in params:
                old = record["params"].get(p.key)
                if old is not None and old != p.value:
                    raise invalid(
                        f"Changing param values is not allowed. Param {p.key!r} is {old!r}."
                    )
                record["params"][p.key] = p.value

        self._update(model_id, change)

    def delete_logged_model(self, model_id: str) -> None:
        """Mark the model deleted (its files stay in the run: trainyard never deletes run files)."""

        def change(record: dict[str, Any]) -> None:
            record["deleted"] = True

        self._update(model_id, change)

    def search_logged_models(
        self,
        experiment_ids: list[str],
        filter_string: str | None = None,
        datasets: list[dict[str, Any]] | None = None,
        max_results: int | None = None,
        order_by: list[dict[str, Any]] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        """Logged models of the experiments, filtered, ordered and paged with MLflow's utilities."""
        models = []
        with translated():
            for eid in experiment_ids:
                exp = self._experiment(eid)
                for run in exp.get_runs(tags=_HAS_MODELS_TAG, include_children=True):
                    for key, raw in run.get_tags().items():
                        if not key.startswith(m.LOGGED_MODEL_TAG):
                            continue
                        record = json.loads(raw)
                        if not record.get("deleted"):
                            models.append(self._entity(run, record))
        models = SearchLoggedModelsUtils.filter_logged_models(models, filter_string, datasets)
        models = SearchLoggedModelsUtils.sort(models, order_by)
        page, token = SearchLoggedModelsUtils.paginate(
            models, page_token, max_results or _DEFAULT_MAX_RESULTS
        )
        return PagedList(page, token)


def _now_ms() -> int:
    return int(time.time() * 1000)
