"""``Run``: one execution of a training script, or an interactive session (v1: ``azureml.core.Run``).

Inside a submitted run, ``Run.get_context()`` finds the run from the ``TRAINYARD_*`` (or v1
``AZUREML_*``) environment variables the supervisor sets. Outside one it returns an *offline* run
whose ``log``/``upload_file``/``tag`` calls print what they would have recorded (as v1 does), so the
same script runs anywhere::

    run = Run.get_context()
    run.log("Accuracy", 0.97)     # recorded in a job; printed when run by hand

Interactive runs come from ``experiment.start_logging()``.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as _dt
import getpass
import importlib
import os
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from trainyard._lifecycle import RunStatus
from trainyard._store.entities import NewRun, RunInfo
from trainyard._store.limits import checked_entries
from trainyard._tracking.buffer import MetricBuffer, install_sigterm_flush, terminating_signal
from trainyard.core._interactive import end_interrupted, own_run, reap_unowned, release_run
from trainyard.core._portal import portal_url
from trainyard.core._run_files import RunFilesMixin
from trainyard.core._run_logs import RunLogsMixin
from trainyard.core._run_metrics import RunMetricsMixin
from trainyard.exceptions import (
    AlreadyExistsError,
    RunEnvironmentException,
    ValidationError,
)
from trainyard.settings import Settings

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext
    from trainyard._store.artifacts import ArtifactStore
    from trainyard._store.base import TrackingStore
    from trainyard.core.experiment import Experiment
    from trainyard.core.workspace import Workspace

SCRIPT_RUN_TYPE = "azureml.scriptrun"
INTERACTIVE_RUN_TYPE = "interactive"


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_run_id(experiment_name: str) -> str:
    """v1's convention: ``<experiment>_<unix seconds>_<8 hex>``."""
    return f"{experiment_name}_{int(time.time())}_{secrets.token_hex(4)}"


class Run(RunMetricsMixin, RunLogsMixin, RunFilesMixin):
    """A run of an experiment. ``Run(experiment, run_id)`` loads an existing one."""

    _context_run: ClassVar[Run | None] = None

    def __init__(
        self, experiment: Experiment, run_id: str, outputs: Any = None, **kwargs: Any
    ) -> None:
        info = experiment.workspace.context.store.get_run(run_id)
        self._init(experiment, info)

    # -- construction -------------------------------------------------------------------------
    def _init(self, experiment: Experiment, info: RunInfo, *, in_job: bool = False) -> None:
        self._experiment = experiment
        self._workspace: Workspace = experiment.workspace
        self._ctx: WorkspaceContext = experiment.workspace.context
        self._store: TrackingStore = self._ctx.store
        self._settings: Settings = self._ctx.settings
        self._info = info
        self._run_id = info.run_id
        self._in_job = in_job
        self._interactive = False
        self._finished = RunStatus.parse(info.status).is_terminal()
        self._buffer_obj: MetricBuffer | None = None
        self._known_names: set[str] = set()
        self._outputs: str | None = None

    @classmethod
    def _from_info(cls, experiment: Experiment, info: RunInfo, *, in_job: bool = False) -> Run:
        if info.run_type not in _RUN_TYPES:
            _load_run_types()
        klass = _RUN_TYPES.get(info.run_type, cls)
        run = klass.__new__(klass)
        run._init(experiment, info, in_job=in_job)
        return run

    @classmethod
    def _create(
        cls,
        experiment: Experiment,
        *,
        run_id: str | None = None,
        run_type: str = SCRIPT_RUN_TYPE,
        status: str = RunStatus.NOT_STARTED.value,
        parent_run_id: str | None = None,
        display_name: str | None = None,
        target: str | None = None,
        definition: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> Run:
        info = experiment.workspace.context.store.create_run(
            NewRun(
                run_id=run_id or new_run_id(experiment.name),
                experiment_id=experiment.id,
                run_type=run_type,
                status=status,
                parent_run_id=parent_run_id,
                display_name=display_name,
                target=target,
                definition=dict(definition or {}),
                tags=checked_entries("Tag", tags or {}),
                properties=checked_entries("Property", properties or {}),
                submitted_by=current_user(),
            )
        )
        return cls._from_info(experiment, info)

    @classmethod
    def _start_interactive(
        cls,
        experiment: Experiment,
        *,
        display_name: str | None = None,
        outputs: str | None = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
    ) -> Run:
        run = cls._create(
            experiment,
            run_id=run_id,
            run_type=INTERACTIVE_RUN_TYPE,
            status=RunStatus.RUNNING.value,
            display_name=display_name,
            parent_run_id=parent_run_id,
            target="local",
        )
        run._interactive = True
        run._outputs = outputs
        own_run(run, run._store, run._settings.heartbeat_seconds)
        return run

    @classmethod
    def get_context(
        cls, allow_offline: bool = True, used_for_context_manager: bool = False, **kwargs: Any
    ) -> Run:
        """The current submitted run, found from environment variables; else an offline run.

        Offline runs print ``Attempted to log scalar metric <name>:\\n<value>`` and the like instead
        of recording. With ``allow_offline=False`` outside a run, raises ``RunEnvironmentException``.
        """
        if Run._context_run is not None:
            return Run._context_run
        env = os.environ
        run_id = env.get("TRAINYARD_RUN_ID") or env.get("AZUREML_RUN_ID")
        ws_path = env.get("TRAINYARD_WORKSPACE_PATH")
        if not run_id or not ws_path:
            if not allow_offline:
                raise RunEnvironmentException(
                    "Run.get_context(allow_offline=False) was called outside a submitted run: no "
                    "TRAINYARD_RUN_ID / TRAINYARD_WORKSPACE_PATH in the environment. Submit the "
                    "script with experiment.submit(...) or `trainyard submit`."
                )
            from trainyard.core._offline import OfflineRun

            return OfflineRun()
        from pathlib import Path

        from trainyard._context import open_context
        from trainyard.core.workspace import Workspace

        ws = Workspace.from_context(open_context(Path(ws_path), spool_name=run_id))
        run = run_from_id(ws, run_id, in_job=True)
        install_sigterm_flush()
        Run._context_run = run
        return run

    @classmethod
    def get_submitted_run(cls, **kwargs: Any) -> Run:
        """Deprecated v1 alias of ``get_context(allow_offline=False)``."""
        return cls.get_context(allow_offline=False)

    @staticmethod
    def get(workspace: Workspace, run_id: str) -> Run:
        """Load a run of any experiment of ``workspace`` by id."""
        return run_from_id(workspace, run_id)

    @staticmethod
    def list(
        experiment: Experiment,
        type: str | None = None,
        tags: Any = None,
        properties: Any = None,
        status: str | None = None,
        include_children: bool = False,
        _rehydrate_runs: bool = True,
    ) -> Iterator[Run]:
        """Runs of ``experiment`` newest first, optionally filtered."""
        for run in experiment.get_runs(
            type=type, tags=tags, properties=properties, include_children=include_children
        ):
            if status is None or run._info.status == status:
                yield run

    # -- identity -----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._run_id

    @property
    def number(self) -> int:
        return self._info.number

    @property
    def type(self) -> str:
        return self._info.run_type

    @property
    def experiment(self) -> Experiment:
        return self._experiment

    @property
    def parent(self) -> Run | None:
        pid = self._info.parent_run_id
        return None if pid is None else Run.get(self._workspace, pid)

    @property
    def status(self) -> str:
        return self.get_status()

    @property
    def display_name(self) -> str:
        return self._info.display_name or self._run_id

    @display_name.setter
    def display_name(self, value: str) -> None:
        self._info = self._store.update_run(self._run_id, display_name=str(value))

    @property
    def name(self) -> str:
        return self.display_name

    @property
    def description(self) -> str | None:
        return self._info.description

    @description.setter
    def description(self, value: str) -> None:
        self._info = self._store.update_run(self._run_id, description=str(value))

    @property
    def tags(self) -> dict[str, str]:
        return self.get_tags()

    @property
    def properties(self) -> dict[str, str]:
        return self.get_properties()

    @property
    def _artifact_store(self) -> ArtifactStore:
        return self._ctx.artifacts

    def get_info(self, refresh: bool = True) -> RunInfo:
        """The run's record as a typed, frozen :class:`~trainyard.core.RunInfo` (ids, status,
        times, target, definition, runtime details, error, tags, properties); read afresh unless
        ``refresh=False`` (then the last one read)."""
        return self._refresh() if refresh else self._info

    def get_portal_url(self) -> str:
        """The run's studio page when a studio is reachable, else its folder (v1: studio URL)."""
        return portal_url(self._ctx, self._run_id)

    def _refresh(self) -> RunInfo:
        self._info = self._store.get_run(self._run_id)
        if not self._in_job:
            self._finished = RunStatus.parse(self._info.status).is_terminal()
        return self._info

    def __repr__(self) -> str:
        return (
            f"Run(Experiment: {self._experiment.name},\nId: {self._run_id},\nType: {self.type},\n"
            f"Status: {self._info.status})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other._run_id == self._run_id

    def __hash__(self) -> int:
        return hash(self._run_id)

    # -- tags and properties ------------------------------------------------------------------
    def tag(self, key: str, value: Any = None) -> None:
        """Set one tag (value defaults to an empty string)."""
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Add or overwrite tags."""
        if not isinstance(tags, Mapping):
            raise ValidationError(f"set_tags expects a dict, got {type(tags).__name__}.")
        self._store.set_tags(self._run_id, checked_entries("Tag", tags))

    def get_tags(self) -> dict[str, str]:
        return dict(self._refresh().tags)

    def remove_tags(self, tags: Sequence[str]) -> None:
        """Delete tags by key."""
        self._store.remove_tags(self._run_id, [str(t) for t in tags])

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        """Add properties; existing keys are immutable (``ImmutablePropertyError``)."""
        if not isinstance(properties, Mapping):
            raise ValidationError(
                f"add_properties expects a dict, got {type(properties).__name__}."
            )
        self._store.add_properties(self._run_id, checked_entries("Property", properties))

    def get_properties(self) -> dict[str, str]:
        return dict(self._refresh().properties)

    # -- children -----------------------------------------------------------------------------
    def child_run(
        self, name: str | None = None, run_id: str | None = None, outputs: str | None = None
    ) -> Run:
        """Create and start a child run (usable as a context manager)."""
        for _ in range(5):
            cid = run_id or f"{self._run_id}_{secrets.token_hex(4)}"
            try:
                return Run._start_interactive(
                    self._experiment,
                    display_name=name,
                    outputs=outputs,
                    parent_run_id=self._run_id,
                    run_id=cid,
                )
            except AlreadyExistsError:
                if run_id is not None:
                    raise
        raise AlreadyExistsError("Could not allocate a child run id.")  # pragma: no cover

    def create_children(
        self,
        count: int | None = None,
        tag_key: str | None = None,
        tag_values: Sequence[str] | None = None,
    ) -> builtins.list[Run]:
        """Create ``count`` children, or one per value in ``tag_values`` tagged ``tag_key``."""
        if tag_values is not None:
            if tag_key is None:
                raise ValidationError("create_children: tag_values needs tag_key.")
            values: list[str | None] = [str(v) for v in tag_values]
        elif count is not None and count >= 0:
            values = [None] * count
        else:
            raise ValidationError("create_children needs count or tag_key with tag_values.")
        children = []
        for v in values:
            child = self.child_run()
            if v is not None and tag_key is not None:
                child.tag(tag_key, v)
            children.append(child)
        return children

    def get_children(
        self,
        recursive: bool = False,
        tags: Any = None,
        properties: Any = None,
        type: str | None = None,
        status: str | None = None,
        _rehydrate_runs: bool = True,
    ) -> Iterator[Run]:
        """Child runs, newest first; ``recursive`` includes grandchildren."""
        from trainyard.core.experiment import _as_filter

        cursor: str | None = None
        while True:
            infos, cursor = self._store.list_runs(
                None,
                parent_run_id=self._run_id,
                run_type=type,
                tags=_as_filter(tags),
                properties=_as_filter(properties),
                statuses=[status] if status else None,
                cursor=cursor,
            )
            for info in infos:
                child = Run._from_info(self._experiment, info)
                yield child
                if recursive:
                    yield from child.get_children(
                        recursive=True, tags=tags, properties=properties, type=type, status=status
                    )
            if cursor is None:
                return

    # -- models -------------------------------------------------------------------------------
    def register_model(
        self,
        model_name: str,
        model_path: str | None = None,
        tags: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        description: str | None = None,
        datasets: Any = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Register the run's file or folder ``model_path`` (default ``model_name``) as a model.

        The files are referenced, not copied. A path that matches nothing raises
        ``ModelPathNotFoundException`` listing the run's files.
        """
        from trainyard.core.model import register_model_from_run

        self.flush()
        return register_model_from_run(
            self,
            model_name,
            model_path,
            tags,
            properties,
            model_framework,
            model_framework_version,
            description,
        )

    # -- status -------------------------------------------------------------------------------
    def get_status(self) -> str:
        """The v1 status string (``Running``, ``Completed`` …); an interactive run whose process
        stopped heartbeating is ended by the reaper first (checked every few seconds at most)."""
        if self._info.run_type == INTERACTIVE_RUN_TYPE and not self._finished:
            reap_unowned(self._ctx, self._run_id)
        return self._refresh().status

    def get_detailed_status(self) -> dict[str, Any]:
        info = self._refresh()
        history = self._store.status_history(self._run_id)
        return {"status": info.status, "details": history[-1].reason if history else None}

    def get_details(self) -> dict[str, Any]:
        """v1's details dict: runId, target, status, times, properties, runDefinition, logFiles …"""
        info = self._refresh()
        details: dict[str, Any] = {
            "runId": info.run_id,
            "runUuid": info.run_id,
            "displayName": self.display_name,
            "target": info.target or "local",
            "status": info.status,
            "startTimeUtc": _iso(info.start_time),
            "properties": dict(info.properties),
            "tags": dict(info.tags),
            "inputDatasets": [],
            "outputDatasets": [],
            "runDefinition": dict(info.definition),
            "logFiles": {
                n: self._artifact_store.uri(f"runs/{self._run_id}/{n}")
                for n in self.get_file_names()
                if n.startswith(("user_logs/", "system_logs/", "azureml-logs/", "logs/"))
            },
            "submittedBy": info.submitted_by,
            "statusHistory": [
                {
                    "status": e.status,
                    "timeUtc": _iso(e.at),
                    **({"reason": e.reason} if e.reason else {}),
                }
                for e in self._store.status_history(self._run_id)
            ],
        }
        if info.end_time is not None:
            details["endTimeUtc"] = _iso(info.end_time)
        if info.error:
            details["error"] = info.error
        # What the snapshot skipped, the resolved packages, the cluster node it ran on.
        named = (("warnings", "warnings"), ("resolved_packages", "resolvedPackages"), ("node",) * 2)
        for key, name in named:
            if info.runtime.get(key):
                details[name] = info.runtime[key]
        return details

    def _end(self, status: RunStatus, error: Mapping[str, Any] | None = None) -> None:
        self.flush()
        # Inside a job the runtime decides the terminal status from the exit code (v1).
        if self._in_job:
            return
        release_run(self._run_id)
        if self._outputs and os.path.isdir(self._outputs) and status == RunStatus.COMPLETED:
            self.upload_folder("outputs", self._outputs)
        self._info = self._store.update_run_status(self._run_id, status.value, error=error)
        self._finished = True
        if self._buffer_obj is not None:
            self._buffer_obj.close()

    def start(self) -> None:
        """Mark an interactive run Running."""
        self._info = self._store.update_run_status(self._run_id, RunStatus.RUNNING.value)

    def complete(self, _set_status: bool = True) -> None:
        """Flush and mark the run Completed (inside a submitted run: flush only)."""
        self._end(RunStatus.COMPLETED)

    def fail(
        self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True
    ) -> None:
        """Flush and mark the run Failed with ``error_details`` (inside a submitted run: flush only)."""
        err: dict[str, Any] = {
            "message": str(error_details) if error_details is not None else "Failed"
        }
        if error_code:
            err["code"] = error_code
        self._end(RunStatus.FAILED, err)

    def cancel(self) -> bool:
        """Cancel the run: CancelRequested, then Canceled once its process has stopped."""
        info = self._refresh()
        if RunStatus.parse(info.status).is_terminal():
            return False
        self._store.update_run_status(self._run_id, RunStatus.CANCEL_REQUESTED.value)
        if self._interactive or info.run_type == INTERACTIVE_RUN_TYPE:
            release_run(self._run_id)
            self.flush()
            self._info = self._store.update_run_status(self._run_id, RunStatus.CANCELED.value)
            self._finished = True
        return True

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None or (exc_type is SystemExit and not getattr(exc, "code", 0)):
            self.complete()
        elif exc_type is KeyboardInterrupt:
            self.cancel()
        elif exc_type is SystemExit and (sig := terminating_signal()) is not None:
            end_interrupted(self, sig)  # raised by SIGTERM's flush handler
        else:
            self.fail(error_details=f"{exc_type.__name__}: {exc}")


_RUN_TYPES: dict[str, type[Run]] = {}


def register_run_type(run_type: str, cls: type[Run]) -> None:
    """Make ``cls`` the class of loaded runs whose type is ``run_type`` (``ScriptRun``,
    ``HyperDriveRun`` register themselves)."""
    _RUN_TYPES[run_type] = cls


def start_interactive_run(
    experiment: Experiment, *, display_name: str | None = None, outputs: str | None = None
) -> Run:
    """A new interactive run of ``experiment``, Running in this process (``start_logging``)."""
    return Run._start_interactive(experiment, display_name=display_name, outputs=outputs)


def run_from_info(experiment: Experiment, info: RunInfo, *, in_job: bool = False) -> Run:
    """The run object (of its registered class) for a record already read."""
    return Run._from_info(experiment, info, in_job=in_job)


def run_from_id(workspace: Workspace, run_id: str, *, in_job: bool = False) -> Run:
    """Load a run of any experiment of ``workspace`` by id."""
    from trainyard.core.experiment import experiment_from_info

    store = workspace.context.store
    info = store.get_run(run_id)
    exp = experiment_from_info(workspace, store.get_experiment_by_id(info.experiment_id))
    return Run._from_info(exp, info, in_job=in_job)


def _load_run_types() -> None:
    for mod in ("trainyard.core.script_run", "trainyard.train.hyperdrive.run"):
        with contextlib.suppress(ImportError):
            importlib.import_module(mod)


def current_user() -> str:
    """The OS user submitting (v1's ``submittedBy``); ``unknown`` when it cannot be told."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
