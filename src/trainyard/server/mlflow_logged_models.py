"""MLflow 3's logged-model API on the team server (``…/api/2.0/mlflow/logged-models…``), plus the
run calls that go with it (``runs/log-inputs``, ``runs/outputs``, ``runs/log-model``).

Same record as the embedded plugin (:mod:`trainyard.mlflow_plugin._logged_models`), so one model
reads the same through either: a logged model is a JSON tag ``trainyard.mlflow.logged_model.<id>``
of its source run (a model logged without a run gets a hidden holder run), its files are that run's
files under ``<name>/`` (so ``runs:/<run>/<name>`` and ``run.register_model`` find them), and its
id ``m-<16 hex>-<run id>`` names the run. ``artifact_uri`` is the run's proxy URI of that folder,
so MLflow uploads the model's files through the artifact proxy into the run.

Example::

    mlflow.sklearn.log_model(clf, name="model")    # create → upload → finalize (READY)
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from trainyard._store.entities import NewRun, RunInfo
from trainyard.exceptions import ValidationError
from trainyard.mlflow_plugin import _mapping as m
from trainyard.mlflow_plugin._registry import parse
from trainyard.mlflow_plugin._sources import logged_model_run
from trainyard.server import mlflow_views as v
from trainyard.server.mlflow_common import READ, WRITE, Access, MlflowError, RouteSpec, need

HAS_MODELS_TAG = m.INTERNAL_PREFIX + "has_models"
INPUTS_TAG = m.INTERNAL_PREFIX + "inputs"
OUTPUTS_TAG = m.INTERNAL_PREFIX + "outputs"
_STATUS = {
    "LOGGED_MODEL_PENDING": "PENDING",
    "LOGGED_MODEL_READY": "READY",
    "LOGGED_MODEL_UPLOAD_FAILED": "FAILED",
}
_WIRE = {b: a for a, b in _STATUS.items()}


def _now() -> int:
    return int(time.time() * 1000)


def _missing(model_id: str) -> MlflowError:
    return MlflowError(
        "RESOURCE_DOES_NOT_EXIST", f"Logged model with ID '{model_id}' not found.", 404
    )


class LoggedModels(Access):
    """The logged-model handlers of one request's workspace (module docstring)."""

    def _holder(self, model_id: str) -> RunInfo:
        run_id = logged_model_run(model_id)
        if run_id is None:
            raise _missing(model_id)
        try:
            return self.run(run_id)
        except Exception:
            raise _missing(model_id) from None

    def _record(self, run: RunInfo, model_id: str, deleted: bool = False) -> dict[str, Any]:
        raw = run.tags.get(m.LOGGED_MODEL_TAG + model_id)
        record = json.loads(raw) if raw else None
        if record is None or (record.get("deleted") and not deleted):
            raise _missing(model_id)
        return dict(record)

    def view(self, run: RunInfo, record: dict[str, Any]) -> dict[str, Any]:
        """MLflow's ``LoggedModel`` JSON."""
        exp_id = v.experiment_id_of(run)
        status = str(record.get("status") or "PENDING").upper()
        return {
            "info": {
                "model_id": record["model_id"],
                "experiment_id": exp_id,
                "name": record["name"],
                "creation_timestamp_ms": record["creation_timestamp"],
                "last_updated_timestamp_ms": record["last_updated_timestamp"],
                "artifact_uri": (
                    f"mlflow-artifacts:/{exp_id}/{run.run_id}/artifacts/{record['artifact_path']}"
                ),
                "status": _WIRE.get(status, "LOGGED_MODEL_PENDING"),
                "model_type": record.get("model_type") or "",
                "source_run_id": record.get("source_run_id") or "",
                "tags": [{"key": k, "value": x} for k, x in sorted(record["tags"].items())],
            },
            "data": {
                "params": [{"key": k, "value": x} for k, x in sorted(record["params"].items())],
                "metrics": [],
            },
        }

    def _save(self, run: RunInfo, record: dict[str, Any]) -> dict[str, Any]:
        record["last_updated_timestamp"] = _now()
        self.store.set_tags(
            run.run_id, {m.LOGGED_MODEL_TAG + record["model_id"]: json.dumps(record)}
        )
        return {"model": self.view(self.store.get_run(run.run_id), record)}

    def _change(self, model_id: str) -> tuple[RunInfo, dict[str, Any]]:
        run = self._holder(model_id)
        self.write(run.run_id)
        return run, self._record(run, model_id)

    # -- routes -----------------------------------------------------------------------------------
    def create(self, args: dict[str, Any]) -> dict[str, Any]:
        from trainyard.core.run import INTERACTIVE_RUN_TYPE, new_run_id

        exp = self.experiment(need(args, "experiment_id"))
        name = str(args.get("name") or f"model-{secrets.token_hex(3)}")
        if "/" in name or name in (".", ".."):
            raise ValidationError(f"Invalid model name {name!r}: it must not contain '/'.")
        source = str(args.get("source_run_id") or "")
        if source:
            self.write(source)
            run = self.run(source)
        else:
            self.write()
            run = self.store.create_run(
                NewRun(
                    run_id=new_run_id(exp.name),
                    experiment_id=exp.id,
                    run_type=INTERACTIVE_RUN_TYPE,
                    display_name=name,
                    tags={m.HOLDER_TAG: "model_holder"},
                    submitted_by=self.principal.name,
                )
            )
            run = self.store.update_run_status(run.run_id, "Running")
            run = self.store.update_run_status(run.run_id, "Completed")
        taken = {
            json.loads(x).get("artifact_path")
            for k, x in run.tags.items()
            if k.startswith(m.LOGGED_MODEL_TAG)
        }
        now = _now()
        record = {
            "model_id": f"m-{secrets.token_hex(8)}-{run.run_id}",
            "experiment_id": v.experiment_id_of(run),
            "name": name,
            "artifact_path": name if name not in taken else f"{name}-{secrets.token_hex(4)}",
            "source_run_id": source or None,
            "model_type": args.get("model_type") or None,
            "status": "PENDING",
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            "tags": {str(t["key"]): str(t.get("value", "")) for t in args.get("tags") or []},
            "params": {str(p["key"]): str(p.get("value", "")) for p in args.get("params") or []},
        }
        self.store.set_tags(run.run_id, {HAS_MODELS_TAG: "1"})
        return self._save(run, record)

    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        self.read()
        model_id = need(args, "model_id")
        run = self._holder(model_id)
        deleted = str(args.get("allow_deleted", "")).lower() == "true"
        return {"model": self.view(run, self._record(run, model_id, deleted))}

    def finalize(self, args: dict[str, Any]) -> dict[str, Any]:
        run, record = self._change(need(args, "model_id"))
        status = str(args.get("status") or "")
        record["status"] = _STATUS.get(status, status.upper() or "READY")
        return self._save(run, record)

    def delete(self, args: dict[str, Any]) -> dict[str, Any]:
        run, record = self._change(need(args, "model_id"))
        record["deleted"] = True
        self._save(run, record)
        return {}

    def set_tags(self, args: dict[str, Any]) -> dict[str, Any]:
        run, record = self._change(need(args, "model_id"))
        record["tags"].update(
            {str(t["key"]): str(t.get("value", "")) for t in args.get("tags") or []}
        )
        self._save(run, record)
        return {}

    def delete_tag(self, args: dict[str, Any]) -> dict[str, Any]:
        run, record = self._change(need(args, "model_id"))
        key = need(args, "tag_key")
        if key not in record["tags"]:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No tag with key {key!r}.", 404)
        del record["tags"][key]
        self._save(run, record)
        return {}

    def log_params(self, args: dict[str, Any]) -> dict[str, Any]:
        run, record = self._change(need(args, "model_id"))
        for p in args.get("params") or []:
            key, value = str(p["key"]), str(p.get("value", ""))
            if record["params"].get(key, value) != value:
                raise MlflowError(
                    "INVALID_PARAMETER_VALUE",
                    f"Changing param values is not allowed. Param {key!r} is "
                    f"{record['params'][key]!r}.",
                )
            record["params"][key] = value
        self._save(run, record)
        return {}

    def search(self, args: dict[str, Any]) -> dict[str, Any]:
        self.read()
        clauses = parse(args.get("filter"))
        found: list[dict[str, Any]] = []
        for eid in args.get("experiment_ids") or []:
            exp = self.experiment(str(eid))
            cursor = None
            while True:
                runs, cursor = self.store.list_runs(
                    exp.id, tags={HAS_MODELS_TAG: None}, include_children=True, cursor=cursor
                )
                for run in runs:
                    for key, raw in run.tags.items():
                        record = json.loads(raw) if key.startswith(m.LOGGED_MODEL_TAG) else {}
                        if record and not record.get("deleted"):
                            found.append(self.view(run, record))
                if cursor is None:
                    break
        found = [x for x in found if all(_holds(x, c.key, c.op, c.value) for c in clauses)]
        found.sort(key=lambda x: -int(x["info"]["creation_timestamp_ms"]))
        for spec in reversed(args.get("order_by") or []):
            field = str(spec.get("field_name", "creation_timestamp")).removeprefix("attributes.")
            key = {"creation_timestamp": "creation_timestamp_ms"}.get(field, field)
            found.sort(
                key=lambda x: str(x["info"].get(key, "")), reverse=not spec.get("ascending", True)
            )
        limit = int(args.get("max_results") or 100)
        start = (
            int(str(args.get("page_token") or "0"))
            if str(args.get("page_token") or "0").isdigit()
            else 0
        )
        out: dict[str, Any] = {"models": found[start : start + limit]}
        if start + limit < len(found):
            out["next_page_token"] = str(start + limit)
        return out

    def _append(self, run_id: str, key: str, items: list[Any]) -> None:
        self.write(run_id)
        run = self.run(run_id)
        old = json.loads(run.tags.get(key) or "[]")
        self.store.set_tags(run_id, {key: json.dumps(old + items)})

    def log_inputs(self, args: dict[str, Any]) -> dict[str, Any]:
        items = [*(args.get("datasets") or []), *(args.get("models") or [])]
        if items:
            self._append(need(args, "run_id"), INPUTS_TAG, items)
        return {}

    def log_outputs(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("models"):
            self._append(need(args, "run_id"), OUTPUTS_TAG, list(args["models"]))
        return {}

    def log_model(self, args: dict[str, Any]) -> dict[str, Any]:
        """MLflow 2's model summary, appended to the run's ``mlflow.log-model.history`` tag."""
        summary = json.loads(need(args, "model_json"))
        self._append(need(args, "run_id"), m.LOGGED_MODELS_HISTORY_TAG, [summary])
        return {}


def _holds(view: dict[str, Any], key: str, op: str, want: Any) -> bool:
    info = view["info"]
    if key.startswith("tags."):
        value = next((t["value"] for t in info["tags"] if t["key"] == key[5:]), None)
    elif key.startswith("params."):
        value = next((p["value"] for p in view["data"]["params"] if p["key"] == key[7:]), None)
    else:
        value = info.get(key.removeprefix("attributes."))
    if value is None:
        return False
    if op in ("IN", "NOT IN"):
        return (str(value) in [str(w) for w in want]) == (op == "IN")
    if op == "LIKE":
        return (
            str(value).startswith(str(want).rstrip("%"))
            if str(want).endswith("%")
            else str(value) == str(want)
        )
    return (str(value) == str(want)) == (op == "=")


ROUTES: tuple[RouteSpec, ...] = (
    ("POST", "logged-models", "create", WRITE),
    ("POST", "logged-models/search", "search", READ),
    ("GET", "logged-models/{model_id}", "get", READ),
    ("PATCH", "logged-models/{model_id}", "finalize", WRITE),
    ("DELETE", "logged-models/{model_id}", "delete", WRITE),
    ("PATCH", "logged-models/{model_id}/tags", "set_tags", WRITE),
    ("DELETE", "logged-models/{model_id}/tags/{tag_key}", "delete_tag", WRITE),
    ("POST", "logged-models/{model_id}/params", "log_params", WRITE),
    ("POST", "runs/log-inputs", "log_inputs", WRITE),
    ("POST", "runs/outputs", "log_outputs", WRITE),
    ("POST", "runs/log-model", "log_model", WRITE),
)
