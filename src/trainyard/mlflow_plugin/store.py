"""The MLflow tracking store over an embedded trainyard workspace (entry point ``trainyard``).

MLflow loads it for ``MLFLOW_TRACKING_URI=trainyard:...`` (see :mod:`trainyard.mlflow_plugin`); users never
import it. Every call goes through trainyard's public API (``Workspace``, ``Experiment``, ``Run``),
so a run logged through MLflow is an ordinary trainyard run and the other way round.

Example::

    MLFLOW_TRACKING_URI=trainyard:///data/ws python train.py      # mlflow.log_metric(...) lands in ws
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlflow.entities import RunStatus as MlflowRunStatus
from mlflow.entities import ViewType
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils
from mlflow.utils.validation import (
    _validate_batch_log_data,
    _validate_batch_log_limits,
    _validate_param_keys_unique,
)

from trainyard.core import Experiment, Run, Workspace
from trainyard.exceptions import NotFoundError
from trainyard.mlflow_plugin import _entities as ent
from trainyard.mlflow_plugin import _mapping as m
from trainyard.mlflow_plugin._errors import (
    invalid,
    mlflow_error,
    not_found,
    translated,
    unsupported,
)
from trainyard.mlflow_plugin._uri import parse_tracking_uri

if TYPE_CHECKING:
    from trainyard.mlflow_plugin._logged_models import LoggedModelsMixin
else:
    try:
        from trainyard.mlflow_plugin._logged_models import LoggedModelsMixin
    except ImportError:  # MLflow 2.x: no logged-model API (models are plain run artifacts)

        class LoggedModelsMixin:
            pass


_SCRIPT_RUN_TYPE = "azureml.scriptrun"


def open_workspace(store_uri: str) -> Workspace:
    """The workspace a ``trainyard:`` URI names (it must exist)."""
    with translated():
        ref = parse_tracking_uri(store_uri)
        if ref.discover:
            return Workspace.from_config()
        if ref.name is not None:
            return Workspace(workspace_name=ref.name)
        return Workspace(path=ref.path)


class TrainyardStore(LoggedModelsMixin, AbstractStore):
    """MLflow's ``AbstractStore`` on a trainyard workspace.

    Thread-safe: MLflow's async logging calls ``log_batch`` from worker threads. One store exists
    per tracking URI per process (MLflow caches it), and it keeps one ``Run`` handle per run id, so
    metrics logged through MLflow use the run's in-process buffer (a list append, written in the
    background; reads through this store flush first).
    """

    def __init__(self, store_uri: str, artifact_uri: str | None = None) -> None:
        super().__init__()
        self.workspace = open_workspace(store_uri)
        self._handles: dict[str, Run] = {}
        self._lock = threading.Lock()

    # -- handles --------------------------------------------------------------------------------
    def _run(self, run_id: str) -> Run:
        with self._lock:
            run = self._handles.get(run_id)
        if run is not None:
            return run
        run = self._context_run(run_id)
        if run is None:
            try:
                run = Run.get(self.workspace, run_id)
            except NotFoundError:
                raise not_found(f"Run '{run_id}' not found") from None
        with self._lock:
            return self._handles.setdefault(run_id, run)

    def _context_run(self, run_id: str) -> Run | None:
        """The submitted run this process runs in, if ``run_id`` is it (its status is the
        supervisor's to set, so ending it through MLflow only flushes)."""
        with translated():
            ctx = Run.get_context()
        exp = ctx.experiment
        if ctx.id == run_id and exp is not None and exp.workspace.path == self.workspace.path:
            return ctx
        return None

    def _adopt(self, run: Run) -> Run:
        with self._lock:
            self._handles[run.id] = run
        return run

    # -- experiments ----------------------------------------------------------------------------
    def _experiment(self, experiment_id: Any) -> Experiment:
        try:
            tid = m.to_trainyard_experiment_id(str(experiment_id))
        except ValueError:
            raise not_found(f"No Experiment with id={experiment_id} exists") from None
        with translated():
            if tid is None:
                return Experiment(self.workspace, m.DEFAULT_EXPERIMENT_NAME)
            for exp in Experiment.list(self.workspace, view_type="All"):
                if exp.id == tid:
                    return exp
        raise not_found(f"No Experiment with id={experiment_id} exists")

    def _by_name(self, name: str) -> Experiment | None:
        with translated():
            found = Experiment.list(self.workspace, experiment_name=name, view_type="All")
        return found[0] if found else None

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        """All experiments, filtered, ordered and paged with MLflow's own search utilities."""
        with translated():
            exps = Experiment.list(self.workspace, view_type="All")
        exps = [e for e in exps if _view_matches(view_type, e.archived)]
        entities = [ent.experiment_entity(self.workspace.path, e) for e in exps]
        entities = SearchExperimentsUtils.filter(entities, filter_string)
        entities = SearchExperimentsUtils.sort(entities, order_by or ["experiment_id DESC"])
        page, token = SearchUtils.paginate(entities, page_token, max_results)
        return PagedList(page, token)

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: Any = None
    ) -> str:
        """Create experiment ``name`` (a trainyard experiment name); returns its id."""
        if tags:
            raise unsupported("Experiment tags", "trainyard experiments have no tags yet.")
        if not isinstance(name, str) or not name:
            raise invalid("Invalid experiment name: the name must be a non-empty string.")
        if self._by_name(name) is not None:
            raise mlflow_error(
                f"Experiment(name={name}) already exists.", "RESOURCE_ALREADY_EXISTS"
            )
        with translated():
            return str(Experiment(self.workspace, name).id)

    def get_experiment(self, experiment_id: str) -> Any:
        """The experiment with MLflow id ``experiment_id`` (``"0"``: ``Default``)."""
        return ent.experiment_entity(self.workspace.path, self._experiment(experiment_id))

    def get_experiment_by_name(self, experiment_name: str) -> Any:
        """The experiment named ``experiment_name``, or ``None``."""
        exp = self._by_name(experiment_name)
        return None if exp is None else ent.experiment_entity(self.workspace.path, exp)

    def delete_experiment(self, experiment_id: str) -> None:
        """MLflow delete = trainyard ``archive()`` (restorable)."""
        with translated():
            self._experiment(experiment_id).archive()

    def restore_experiment(self, experiment_id: str) -> None:
        """MLflow restore = trainyard ``reactivate()``."""
        with translated():
            self._experiment(experiment_id).reactivate()

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Rename through the store (``Default``, MLflow's ``"0"``, keeps its name)."""
        from trainyard.core._names import validate_experiment_name

        exp = self._experiment(experiment_id)
        if m.DEFAULT_EXPERIMENT_NAME in (exp.name, new_name):
            raise invalid(
                f"The name {m.DEFAULT_EXPERIMENT_NAME!r} belongs to MLflow's default experiment "
                "(id 0): it keeps it, and no other experiment takes it. Pick another name."
            )
        with translated():
            self.workspace.context.store.rename_experiment(
                exp.id, validate_experiment_name(new_name)
            )

    def set_experiment_tag(self, experiment_id: str, tag: Any) -> None:
        """Not supported: trainyard experiments have no tags."""
        self._experiment(experiment_id)
        raise unsupported("Experiment tags", "trainyard experiments have no tags yet.")

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        """Not supported: trainyard experiments have no tags."""
        self.set_experiment_tag(experiment_id, None)

    # -- runs -----------------------------------------------------------------------------------
    def create_run(
        self, experiment_id: str, user_id: str, start_time: int, tags: Any, run_name: str | None
    ) -> Any:
        """A new interactive trainyard run (a child run when ``mlflow.parentRunId`` is given)."""
        exp = self._experiment(experiment_id)
        if exp.archived:
            raise invalid(
                f"The experiment {exp.id} must be in the 'active' state. Current state is deleted."
            )
        tag_map = {t.key: t.value for t in tags or []}
        name = run_name or tag_map.get(m.RUN_NAME_TAG) or _random_name()
        parent_id = tag_map.pop(m.PARENT_RUN_TAG, None)
        tag_map.pop(m.RUN_NAME_TAG, None)
        if user_id and m.USER_TAG not in tag_map:
            tag_map[m.USER_TAG] = user_id
        with translated():
            if parent_id:
                run = self._run(parent_id).child_run(name=name)
            else:
                run = exp.start_logging(display_name=name)
            self._adopt(run)
            if tag_map:
                run.set_tags(tag_map)
            return ent.run_entity(self.workspace.path, run, with_metrics=False)

    def get_run(self, run_id: str) -> Any:
        """The run with its params, tags and latest metrics."""
        with translated():
            return ent.run_entity(self.workspace.path, self._run(run_id))

    def update_run_info(
        self, run_id: str, run_status: Any, end_time: int | None, run_name: str | None
    ) -> Any:
        """Rename and/or change status: FINISHED → ``complete()``, FAILED → ``fail()``,
        KILLED → ``cancel()``. Inside the submitted run itself only buffered metrics are flushed
        (its status is the supervisor's). trainyard's terminal statuses are final."""
        run = self._run(run_id)
        with translated():
            if run_name:
                run.display_name = run_name
            if run_status is not None:
                status = (
                    run_status
                    if isinstance(run_status, str)
                    else MlflowRunStatus.to_string(run_status)
                )
                self._set_status(run, status)
            return ent.run_entity(self.workspace.path, run, with_metrics=False).info

    def _set_status(self, run: Run, status: str) -> None:
        if run is self._context_run(run.id):
            run.flush()
            return
        current = run.get_status()
        if current in m.TERMINAL_STATUSES:
            if m.mlflow_status(current) == status:
                return
            raise mlflow_error(
                f"Run '{run.id}' is {current}; trainyard runs cannot change status once finished "
                f"(asked for {status}). Start a new run instead.",
                "INVALID_STATE",
            )
        if status == "KILLED":
            run.cancel()
        elif run.type == _SCRIPT_RUN_TYPE and status in ("FINISHED", "FAILED"):
            raise mlflow_error(
                f"Run '{run.id}' is a submitted run: its supervisor sets its status when the "
                "script exits. Cancel it with KILLED, or end it from inside the script.",
                "INVALID_STATE",
            )
        elif status == "FINISHED":
            run.complete()
        elif status == "FAILED":
            run.fail(error_details="Marked FAILED through MLflow")
        elif status == "RUNNING" and current == "NotStarted":
            run.start()

    def delete_run(self, run_id: str) -> None:
        """MLflow's soft delete: trainyard keeps the run and marks it (hidden tag), so
        ``search_runs`` leaves it out unless asked for deleted runs."""
        with translated():
            self._run(run_id).set_tags({m.DELETED_TAG: "1"})

    def restore_run(self, run_id: str) -> None:
        """Undo :meth:`delete_run`."""
        with translated():
            self._run(run_id).remove_tags([m.DELETED_TAG])

    def _search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None,
        run_view_type: int,
        max_results: int,
        order_by: Sequence[str] | None,
        page_token: str | None,
    ) -> tuple[list[Any], str | None]:
        entities = []
        seen: set[int] = set()
        with translated():
            for eid in experiment_ids:
                exp = self._experiment(eid)
                if exp.id in seen:
                    continue
                seen.add(exp.id)
                for run in exp.get_runs(include_children=True):
                    details = run.get_details()
                    if m.HOLDER_TAG in details["tags"]:
                        continue
                    deleted = m.DELETED_TAG in details["tags"]
                    if run_view_type != ViewType.ALL and deleted != (
                        run_view_type == ViewType.DELETED_ONLY
                    ):
                        continue
                    entities.append(ent.run_entity(self.workspace.path, run, details=details))
        runs = SearchUtils.filter(entities, filter_string)
        runs = SearchUtils.sort(runs, order_by)
        page: tuple[list[Any], str | None] = SearchUtils.paginate(runs, page_token, max_results)
        return page

    # -- logging --------------------------------------------------------------------------------
    def log_batch(
        self, run_id: str, metrics: Sequence[Any], params: Sequence[Any], tags: Sequence[Any]
    ) -> None:
        """Params → properties, tags → tags, metrics → the run's buffered series (with steps).

        Everything is checked before anything is written: MLflow's limits and value rules, params
        that would change value, metrics for a finished run (the first ``run.log`` refuses them
        before anything is buffered). Params then go in one transaction, tags in another.
        """
        _validate_batch_log_limits(metrics, params, tags)
        _validate_batch_log_data(metrics, params, tags)
        _validate_param_keys_unique(params)
        run = self._run(run_id)
        with translated():
            if params:
                existing = run.get_properties()
                clashes = [
                    {"key": p.key, "old_value": existing[p.key], "new_value": p.value}
                    for p in params
                    if p.key in existing and existing[p.key] != p.value
                ]
                if clashes:
                    raise invalid(
                        "Changing param values is not allowed. Params were already"
                        f" logged='{clashes}' for run ID='{run_id}'."
                    )
            # Metrics first: on a finished run the first run.log raises (RunFinishedError →
            # INVALID_STATE) before anything is buffered or written.
            for metric in self._without_model_duplicates(run, metrics):
                stamp = metric.timestamp / 1000.0 if metric.timestamp else None
                run.log(
                    metric.key, float(metric.value), step=int(metric.step or 0), timestamp=stamp
                )
            if params:
                run.add_properties({p.key: p.value for p in params})
            tag_map = {t.key: t.value for t in tags}
            name = tag_map.pop(m.RUN_NAME_TAG, None)
            tag_map.pop(m.PARENT_RUN_TAG, None)
            if name:
                run.display_name = name
            if tag_map:
                run.set_tags(tag_map)

    def _without_model_duplicates(self, run: Run, metrics: Sequence[Any]) -> list[Any]:
        """MLflow 3's ``log_model`` re-logs the run's metrics with a model id; MLflow's stores
        ignore exact duplicates, so this does too (only for metrics that carry a model id)."""
        tagged = [x for x in metrics if getattr(x, "model_id", None)]
        if not tagged:
            return list(metrics)
        known: dict[str, set[tuple[float, int, int]]] = {}
        for key in {x.key for x in tagged}:
            known[key] = {(x.value, x.timestamp, x.step) for x in ent.metric_history(run, key)}
        return [
            x
            for x in metrics
            if not (getattr(x, "model_id", None) and (x.value, x.timestamp, x.step) in known[x.key])
        ]

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag; ``RESOURCE_DOES_NOT_EXIST`` if the run has no such tag."""
        run = self._run(run_id)
        with translated():
            if key not in run.get_tags():
                raise not_found(f"No tag with name: {key} in run with id {run_id}")
            run.remove_tags([key])

    def get_metric_history(
        self,
        run_id: str,
        metric_key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        """Every point of one metric, in logged order, with steps and millisecond timestamps."""
        with translated():
            history = ent.metric_history(self._run(run_id), metric_key)
        if max_results is None:
            return PagedList(history, None)
        page, token = SearchUtils.paginate(history, page_token, max_results)
        return PagedList(page, token)

    def log_inputs(self, run_id: str, datasets: Any = None, models: Any = None) -> None:
        """Dataset (and MLflow 3 model) inputs, kept as JSON in an internal run tag."""
        run = self._run(run_id)
        items: list[dict[str, Any]] = []
        for d in datasets or []:
            ds = d.dataset
            items.append(
                {
                    "dataset": {
                        "name": ds.name, "digest": ds.digest, "source_type": ds.source_type,
                        "source": ds.source, "schema": ds.schema, "profile": ds.profile,
                    },
                    "tags": [[t.key, t.value] for t in d.tags or []],
                }
            )  # fmt: skip
        items.extend({"model_id": x.model_id} for x in models or [])
        if items:
            self._append_json_tag(run, ent.INPUTS_TAG, items)

    def log_outputs(self, run_id: str, models: Any) -> None:
        """MLflow 3 model outputs, kept as JSON in an internal run tag."""
        items = [{"model_id": x.model_id, "step": x.step} for x in models or []]
        if items:
            self._append_json_tag(self._run(run_id), ent.OUTPUTS_TAG, items)

    def record_logged_model(self, run_id: str, mlflow_model: Any) -> None:
        """Append the model's summary to the run's ``mlflow.log-model.history`` tag (as MLflow)."""
        self._append_json_tag(
            self._run(run_id), m.LOGGED_MODELS_HISTORY_TAG, [mlflow_model.get_tags_dict()]
        )

    def _append_json_tag(self, run: Run, key: str, items: list[Any]) -> None:
        with self._lock, translated():
            raw = run.get_tags().get(key)
            old = json.loads(raw) if raw else []
            run.set_tags({key: json.dumps(old + items)})

    def link_traces_to_run(self, trace_ids: list[str], run_id: str) -> None:
        """Not supported: trainyard stores no traces."""
        raise unsupported("Traces", "trainyard stores no GenAI traces.")


def _view_matches(view_type: int, archived: bool) -> bool:
    if view_type == ViewType.ACTIVE_ONLY:
        return not archived
    if view_type == ViewType.DELETED_ONLY:
        return archived
    return True


def _random_name() -> str:
    from mlflow.utils.name_utils import _generate_random_name

    return str(_generate_random_name())
