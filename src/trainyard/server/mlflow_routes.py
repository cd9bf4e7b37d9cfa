"""MLflow's tracking REST API on the team server: an MLflow client logs into a workspace with
``MLFLOW_TRACKING_URI=<server>/mlflow/<workspace>`` (what ``ws.get_mlflow_tracking_uri()`` returns).

Served under ``/mlflow/<workspace>/api/2.0/mlflow/`` and ``…/ajax-api/2.0/mlflow/``: experiments
(create, get, get-by-name, search, update, delete, restore), runs (create, get, update, search with
MLflow's filter and ``order_by``, delete, restore), log-batch, log-metric, log-parameter, set-tag,
delete-tag, metrics/get-history, artifacts/list. The artifact proxy, the model registry and
MLflow 3's logged models are their own modules (:mod:`.mlflow_artifacts`, :mod:`.mlflow_registry`,
:mod:`.mlflow_logged_models`), assembled by :func:`mlflow_router`. Errors are MLflow's
``{"error_code", "message"}`` (``RESOURCE_DOES_NOT_EXIST`` is 404, so ``set_experiment`` creates).
Accounts apply: ``MLFLOW_TRACKING_TOKEN`` (Bearer) or basic auth with the token as password; a
reader reads, a contributor writes.

Example::

    $ MLFLOW_TRACKING_URI=http://127.0.0.1:8765/mlflow/team MLFLOW_TRACKING_TOKEN=ty_… python train.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from trainyard._store.artifacts import safe_relpath
from trainyard._store.entities import NewRun, RunInfo
from trainyard._tracking.codec import numeric_chunk
from trainyard.exceptions import AlreadyExistsError, ExperimentNotFound
from trainyard.mlflow_plugin import _mapping as m
from trainyard.server import mlflow_views as v
from trainyard.server.auth import Principal
from trainyard.server.mlflow_common import READ as _READ
from trainyard.server.mlflow_common import WRITE as _WRITE
from trainyard.server.mlflow_common import Access, MlflowError, add_json_routes
from trainyard.server.mlflow_common import need as _need
from trainyard.server.state import ServerState

#: MLflow's log-batch limits.
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100
MAX_SEARCH = 50_000
#: The statuses a run may still leave (runs/update's compare-and-set).
_ACTIVE = tuple(k for k in m.STATUS_TO_MLFLOW if k not in m.TERMINAL_STATUSES)


class Api(Access):
    """The tracking handlers of one request's workspace (see the module docstring)."""

    def experiments_create(self, args: dict[str, Any]) -> dict[str, Any]:
        self.write()
        name = _need(args, "name")
        try:
            self.store.get_experiment(self.ws_id, name)
        except ExperimentNotFound:
            exp = self.store.get_or_create_experiment(self.ws_id, name)
            return {"experiment_id": v.experiment_json(exp)["experiment_id"]}
        raise MlflowError(
            "RESOURCE_ALREADY_EXISTS", f"Experiment(name={name}) already exists.", 400
        )

    def experiments_get(self, args: dict[str, Any]) -> dict[str, Any]:
        self.read()
        return {"experiment": v.experiment_json(self.experiment(_need(args, "experiment_id")))}

    def experiments_get_by_name(self, args: dict[str, Any]) -> dict[str, Any]:
        self.read()
        name = _need(args, "experiment_name")
        try:
            exp = self.store.get_experiment(self.ws_id, name)
        except ExperimentNotFound:
            raise MlflowError(
                "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{name}'", 404
            ) from None
        return {"experiment": v.experiment_json(exp)}

    def experiments_search(self, args: dict[str, Any]) -> dict[str, Any]:
        self.read()
        view = str(args.get("view_type") or "ACTIVE_ONLY").upper()
        exps = self.store.list_experiments(self.ws_id, include_archived=view != "ACTIVE_ONLY")
        if view == "DELETED_ONLY":
            exps = [e for e in exps if e.archived]
        views = [v.experiment_json(e) for e in exps]
        for clause in v.parse_filter(args.get("filter")):
            if clause.entity != "attributes" or clause.key != "name":
                raise MlflowError(
                    "INVALID_PARAMETER_VALUE", "Experiments are searched by name only."
                )
            views = [x for x in views if v.matches({"info": x, "data": {}}, [clause])]
        limit = int(args.get("max_results") or 1000)
        return {"experiments": views[:limit]}

    def experiments_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        self.write()
        self.store.set_experiment_archived(self.experiment(_need(args, "experiment_id")).id, True)
        return {}

    def experiments_restore(self, args: dict[str, Any]) -> dict[str, Any]:
        self.write()
        self.store.set_experiment_archived(self.experiment(_need(args, "experiment_id")).id, False)
        return {}

    def experiments_update(self, args: dict[str, Any]) -> dict[str, Any]:
        """Rename (MLflow's only experiment update); ``Default`` keeps its name (it is ``"0"``)."""
        from trainyard.core._names import validate_experiment_name

        self.write()
        exp = self.experiment(_need(args, "experiment_id"))
        new_name = validate_experiment_name(_need(args, "new_name"))
        if m.DEFAULT_EXPERIMENT_NAME in (exp.name, new_name):
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"The name {m.DEFAULT_EXPERIMENT_NAME!r} belongs to MLflow's default experiment "
                "(id 0): it keeps it, and no other experiment takes it. Pick another name.",
            )
        try:
            self.store.rename_experiment(exp.id, new_name)
        except AlreadyExistsError:
            raise MlflowError(
                "RESOURCE_ALREADY_EXISTS", f"Experiment(name={new_name}) already exists.", 400
            ) from None
        return {}

    # -- runs -------------------------------------------------------------------------------------
    def runs_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        """MLflow's soft delete: the run is kept (trainyard never deletes runs) and marked, so
        ``search_runs`` leaves it out unless asked for deleted runs; ``runs/restore`` undoes it."""
        run_id = _need(args, "run_id")
        self.write(run_id)
        self.run(run_id)
        self.store.set_tags(run_id, {m.DELETED_TAG: "1"})
        return {}

    def runs_restore(self, args: dict[str, Any]) -> dict[str, Any]:
        run_id = _need(args, "run_id")
        self.write(run_id)
        self.run(run_id)
        self.store.remove_tags(run_id, [m.DELETED_TAG])
        return {}

    def runs_create(self, args: dict[str, Any]) -> dict[str, Any]:
        from trainyard.core.run import INTERACTIVE_RUN_TYPE, new_run_id

        self.write()
        exp = self.experiment(str(args.get("experiment_id") or m.DEFAULT_EXPERIMENT_ID))
        if exp.archived:
            raise MlflowError(
                "INVALID_STATE", f"The experiment {exp.id} must be in the 'active' state."
            )
        tags = {str(t["key"]): str(t["value"]) for t in args.get("tags") or []}
        name = args.get("run_name") or tags.pop(m.RUN_NAME_TAG, None)
        tags.pop(m.RUN_NAME_TAG, None)
        parent = tags.pop(m.PARENT_RUN_TAG, None)
        if parent:
            self.run(parent)
        if args.get("user_id") and m.USER_TAG not in tags:
            tags[m.USER_TAG] = str(args["user_id"])
        new = NewRun(
            run_id=new_run_id(exp.name),
            experiment_id=exp.id,
            run_type=INTERACTIVE_RUN_TYPE,
            parent_run_id=parent,
            display_name=str(name) if name else None,
            tags=tags,
            submitted_by=self.principal.name,
            status="Running",
        )
        info = self.store.create_run(new)  # created Running: one write
        self.state.note_run(info)
        return {"run": v.run_json(info)}

    def runs_get(self, args: dict[str, Any]) -> dict[str, Any]:
        self.read()
        info = self.run(_need(args, "run_id"))
        return {"run": v.run_json(info, v.points(self.store.get_metric_chunks(info.run_id)))}

    def runs_update(self, args: dict[str, Any]) -> dict[str, Any]:
        run_id = _need(args, "run_id")
        self.write(run_id)
        if self.state.run_facts(run_id)[0] != self.ws_id:  # cached: no read before the write
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found", 404)
        status = v.FROM_MLFLOW.get(str(args.get("status") or "").upper())
        info = None
        if args.get("run_name"):
            info = self.store.update_run(run_id, display_name=str(args["run_name"]))
        if status:
            # One compare-and-set write; a finished run is left as it is and, if it finished
            # otherwise, the lifecycle's own error says so.
            info = self.store.update_run_status(run_id, status, only_from=_ACTIVE)
            if info.status != status:
                info = self.store.update_run_status(run_id, status)
        info = info or self.run(run_id)
        return {"run_info": v.run_json(info)["info"]}

    def series_of(self, run_ids: list[str]) -> dict[str, dict[str, list[v.Point]]]:
        """The metric points of many runs (one query on the SQL store, else one call a run)."""
        bulk = getattr(self.store, "metric_chunks_of_runs", None)
        chunks = (
            bulk(run_ids)
            if callable(bulk)
            else {r: self.store.get_metric_chunks(r) for r in run_ids}
        )
        return {r: v.points(chunks.get(r, [])) for r in run_ids}

    def _candidates(self, experiment_ids: list[Any], clauses: list[v.Clause]) -> list[RunInfo]:
        """The experiments' runs, narrowed in SQL by the filter's equalities on params, tags and
        status (the whole filter is still applied to what comes back)."""
        props = {c.key: c.value for c in clauses if c.entity == "params" and c.op == "="}
        tags = {
            c.key: c.value
            for c in clauses
            if c.entity == "tags" and c.op == "=" and m.visible_tag(c.key)
        }
        statuses = None
        for c in clauses:
            if c.entity == "attributes" and c.key == "status" and c.op == "=":
                statuses = [k for k, x in m.STATUS_TO_MLFLOW.items() if x == str(c.value)]
        infos: list[RunInfo] = []
        seen: set[int] = set()
        for exp_id in experiment_ids:
            exp = self.experiment(str(exp_id))
            if exp.id in seen:
                continue
            seen.add(exp.id)
            cursor = None
            while True:
                page_infos, cursor = self.store.list_runs(
                    exp.id,
                    include_children=True,
                    limit=5000,
                    cursor=cursor,
                    properties={k: str(x) for k, x in props.items()} or None,
                    tags={k: str(x) for k, x in tags.items()} or None,
                    statuses=statuses,
                )
                infos += page_infos
                if cursor is None:
                    break
        return infos

    def runs_search(self, args: dict[str, Any]) -> dict[str, Any]:
        self.read()
        clauses = v.parse_filter(args.get("filter"))
        limit = int(args.get("max_results") or 1000)
        if not 1 <= limit <= MAX_SEARCH:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"max_results must be 1..{MAX_SEARCH}.")
        order_by = [str(o) for o in args.get("order_by") or []]
        need_metrics = any(c.entity == "metrics" for c in clauses) or any(
            o.lower().startswith("metric") for o in order_by
        )
        view = str(args.get("run_view_type") or "ACTIVE_ONLY").upper()
        infos = [
            i
            for i in self._candidates(args.get("experiment_ids") or [], clauses)
            if m.HOLDER_TAG not in i.tags
            and (view == "ALL" or (m.DELETED_TAG in i.tags) == (view == "DELETED_ONLY"))
        ]
        series = self.series_of([i.run_id for i in infos]) if need_metrics else {}
        views = [v.run_json(i, series.get(i.run_id)) for i in infos]
        ordered = v.sort_runs([x for x in views if v.matches(x, clauses)], order_by)
        token = str(args.get("page_token") or "0")
        start = int(token) if token.isdigit() else 0
        page = ordered[start : start + limit]
        if not need_metrics:  # the page's own metrics, into the views already built
            got = self.series_of([r["info"]["run_id"] for r in page])
            page = [
                {
                    **r,
                    "data": {**r["data"], "metrics": v.metrics_json(got.get(r["info"]["run_id"]))},
                }
                for r in page
            ]
        out: dict[str, Any] = {"runs": page}
        if start + limit < len(ordered):
            out["next_page_token"] = str(start + limit)
        return out

    def log_batch(self, args: dict[str, Any]) -> dict[str, Any]:
        run_id = _need(args, "run_id")
        self.write(run_id)
        metrics, params, tags = (list(args.get(k) or []) for k in ("metrics", "params", "tags"))
        if len(metrics) > MAX_METRICS or len(params) > MAX_PARAMS or len(tags) > MAX_TAGS:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"A batch logging request can contain at most {MAX_METRICS} metrics, "
                f"{MAX_PARAMS} params and {MAX_TAGS} tags; got {len(metrics)}, {len(params)}, "
                f"{len(tags)}.",
            )
        info = self.run(run_id)
        new_params = {str(p["key"]): str(p["value"]) for p in params}
        clashes = {
            k: (info.properties[k], val)
            for k, val in new_params.items()
            if k in info.properties and info.properties[k] != val
        }
        if clashes:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"Changing param values is not allowed. Params were already logged={clashes} "
                f"for run ID='{run_id}'.",
            )
        if metrics and info.status in m.TERMINAL_STATUSES:
            raise MlflowError("INVALID_STATE", f"The run {run_id} must be in the 'active' state.")
        chunks = _chunks(self._without_model_duplicates(run_id, metrics))
        if chunks:
            self.store.log_metric_chunks(run_id, chunks)
        if new_params:
            self.store.add_properties(run_id, new_params)
        tag_map = {str(t["key"]): str(t["value"]) for t in tags}
        name = tag_map.pop(m.RUN_NAME_TAG, None)
        tag_map.pop(m.PARENT_RUN_TAG, None)
        if name:
            self.store.update_run(run_id, display_name=name)
        if tag_map:
            self.store.set_tags(run_id, tag_map)
        return {}

    def _without_model_duplicates(self, run_id: str, metrics: list[Any]) -> list[Any]:
        """MLflow 3's ``log_model`` re-logs the run's metrics with a model id; MLflow's stores
        ignore exact duplicates, so this does too (only for metrics that carry a model id)."""
        tagged = {str(x["key"]) for x in metrics if x.get("model_id")}
        if not tagged:
            return metrics
        known = {
            (p.key, p.value, p.timestamp, p.step)
            for series in v.points(self.store.get_metric_chunks(run_id, sorted(tagged))).values()
            for p in series
        }

        def seen(x: dict[str, Any]) -> bool:
            value = float(x.get("value", "nan"))
            step, stamp = int(x.get("step") or 0), int(x.get("timestamp") or 0)
            return (str(x["key"]), value, stamp, step) in known

        return [x for x in metrics if not (x.get("model_id") and seen(x))]

    def log_metric(self, args: dict[str, Any]) -> dict[str, Any]:
        metric = {k: args.get(k) for k in ("key", "value", "timestamp", "step")}
        return self.log_batch({"run_id": args.get("run_id"), "metrics": [metric]})

    def log_parameter(self, args: dict[str, Any]) -> dict[str, Any]:
        param = {"key": _need(args, "key"), "value": str(args.get("value", ""))}
        return self.log_batch({"run_id": args.get("run_id"), "params": [param]})

    def set_tag(self, args: dict[str, Any]) -> dict[str, Any]:
        tag = {"key": _need(args, "key"), "value": str(args.get("value", ""))}
        return self.log_batch({"run_id": args.get("run_id"), "tags": [tag]})

    def delete_tag(self, args: dict[str, Any]) -> dict[str, Any]:
        run_id = _need(args, "run_id")
        self.write(run_id)
        key = _need(args, "key")
        if key not in self.run(run_id).tags:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No tag with name: {key} in run", 404)
        self.store.remove_tags(run_id, [key])
        return {}

    def metric_history(self, args: dict[str, Any]) -> dict[str, Any]:
        self.read()
        info = self.run(str(args.get("run_id") or args.get("run_uuid") or _need(args, "run_id")))
        key = _need(args, "metric_key")
        series = v.points(self.store.get_metric_chunks(info.run_id, [key])).get(key, [])
        return {"metrics": [p.to_json() for p in series]}

    def artifacts_list(self, args: dict[str, Any]) -> dict[str, Any]:
        self.read()
        info = self.run(str(args.get("run_id") or args.get("run_uuid") or _need(args, "run_id")))
        rel = safe_relpath(str(args["path"])) if args.get("path") else ""
        return {
            "root_uri": v.run_json(info)["info"]["artifact_uri"],
            "files": self.listing(f"runs/{info.run_id}", rel),
        }


def _chunks(metrics: list[Any]) -> list[Any]:
    """Packed chunks of MLflow metrics, per key, with their steps and timestamps (seconds)."""
    from array import array

    by_key: dict[str, list[tuple[float, float, int]]] = {}
    for metric in metrics:
        key = str(metric["key"])
        raw = metric.get("value")
        value = float(raw) if raw is not None else float("nan")
        ts = float(metric.get("timestamp") or time.time() * 1000) / 1000.0
        by_key.setdefault(key, []).append((value, ts, int(metric.get("step") or 0)))
    chunks = []
    for key, pts in by_key.items():
        vals = array("d", (p[0] for p in pts))
        chunk = numeric_chunk(
            key, vals, array("d", (p[1] for p in pts)), array("q", (p[2] for p in pts)), False
        )
        chunks.append(chunk)
    return chunks


# -- routing ------------------------------------------------------------------------------------
_ROUTES: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    ("POST", "experiments/create", "experiments_create", _WRITE),
    ("GET", "experiments/get", "experiments_get", _READ),
    ("GET", "experiments/get-by-name", "experiments_get_by_name", _READ),
    ("POST", "experiments/search", "experiments_search", _READ),
    ("GET", "experiments/search", "experiments_search", _READ),
    ("POST", "experiments/delete", "experiments_delete", _WRITE),
    ("POST", "experiments/restore", "experiments_restore", _WRITE),
    ("POST", "experiments/update", "experiments_update", _WRITE),
    ("POST", "runs/delete", "runs_delete", _WRITE),
    ("POST", "runs/restore", "runs_restore", _WRITE),
    ("POST", "runs/create", "runs_create", _WRITE),
    ("GET", "runs/get", "runs_get", _READ),
    ("POST", "runs/update", "runs_update", _WRITE),
    ("POST", "runs/search", "runs_search", _READ),
    ("POST", "runs/log-batch", "log_batch", _WRITE),
    ("POST", "runs/log-metric", "log_metric", _WRITE),
    ("POST", "runs/log-parameter", "log_parameter", _WRITE),
    ("POST", "runs/set-tag", "set_tag", _WRITE),
    ("POST", "runs/delete-tag", "delete_tag", _WRITE),
    ("GET", "metrics/get-history", "metric_history", _READ),
    ("GET", "artifacts/list", "artifacts_list", _READ),
)


def mlflow_router(state: ServerState, principal: Callable[..., Principal]) -> APIRouter:
    """The MLflow-compatible routes (see the module docstring)."""
    from trainyard.server import mlflow_artifacts, mlflow_logged_models, mlflow_registry
    from trainyard.server.mlflow_logged_models import LoggedModels

    router = APIRouter(tags=["mlflow"])
    add_json_routes(router, _ROUTES, state, principal, Api)
    add_json_routes(router, mlflow_registry.ROUTES, state, principal, mlflow_registry.handlers)
    add_json_routes(router, mlflow_logged_models.ROUTES, state, principal, LoggedModels)
    mlflow_artifacts.add_routes(router, state, principal)
    return router
