"""``Experiment``: a named group of runs in a workspace (v1: ``azureml.core.Experiment``).

Example::

    exp = Experiment(ws, "mnist")
    with exp.start_logging() as run:
        run.log("accuracy", 0.97)
    for r in exp.get_runs():
        print(r.id, r.get_status())
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from trainyard._store.entities import ExperimentInfo
from trainyard.core._names import validate_experiment_name
from trainyard.exceptions import UserErrorException

if TYPE_CHECKING:
    from trainyard.core.run import Run
    from trainyard.core.workspace import Workspace

_PAGE = 100


def _as_filter(value: str | Mapping[str, Any] | None) -> dict[str, str | None] | None:
    """v1 accepts a key or a ``{key: value}`` dict for tag/property filters."""
    if value is None:
        return None
    if isinstance(value, str):
        return {value: None}
    return {str(k): (None if v is None else str(v)) for k, v in value.items()}


class Experiment:
    """Gets or creates the experiment ``name`` in ``workspace``."""

    def __init__(
        self,
        workspace: Workspace,
        name: str,
        _skip_name_validation: bool = False,
        _id: int | None = None,
        _archived_time: Any = None,
        _create_in_cloud: bool = True,
        _experiment_dto: Any = None,
        **kwargs: Any,
    ) -> None:
        if not _skip_name_validation:
            validate_experiment_name(name)
        info = workspace.context.store.get_or_create_experiment(
            workspace.context.workspace_id, name
        )
        self._set(workspace, info)

    @classmethod
    def _from_info(cls, workspace: Workspace, info: ExperimentInfo) -> Experiment:
        exp = cls.__new__(cls)
        exp._set(workspace, info)
        return exp

    def get_info(self) -> ExperimentInfo:
        """The experiment's record (id, name, archived, creation time)."""
        return self._info

    def _set(self, workspace: Workspace, info: ExperimentInfo) -> None:
        self._workspace = workspace
        self._info = info

    # -- attributes ---------------------------------------------------------------------------
    @property
    def workspace(self) -> Workspace:
        return self._workspace

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def id(self) -> int:
        return self._info.id

    @property
    def archived(self) -> bool:
        return self._info.archived

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name}, Workspace: {self._workspace.name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other._info.id == self._info.id

    def __hash__(self) -> int:
        return hash(self._info.id)

    # -- runs ---------------------------------------------------------------------------------
    def submit(self, config: Any, tags: Mapping[str, str] | None = None, **kwargs: Any) -> Run:
        """Submit a run configuration (``ScriptRunConfig``, an estimator, ``HyperDriveConfig``).

        Validates everything first, stores the run, hands it to the compute target and returns at
        once with a ``ScriptRun`` (or ``HyperDriveRun``).
        """
        if self._info.archived:
            raise UserErrorException(
                f"Experiment {self.name!r} is archived; reactivate it before submitting."
            )
        submit = getattr(config, "_submit_to_experiment", None)
        if submit is None:
            raise UserErrorException(
                f"Cannot submit a {type(config).__name__}: expected a ScriptRunConfig, an "
                "estimator (Chainer, PyTorch, …) or a HyperDriveConfig."
            )
        run: Run = submit(self, dict(tags or {}), **kwargs)
        return run

    def start_logging(
        self,
        *args: Any,
        outputs: str | None = None,
        snapshot_directory: str | None = None,
        display_name: str | None = None,
        **kwargs: Any,
    ) -> Run:
        """Start an interactive run in this process (status Running); use it as a context manager
        or end it with ``run.complete()``."""
        from trainyard.core.run import start_interactive_run

        return start_interactive_run(self, display_name=display_name, outputs=outputs)

    def get_runs(
        self,
        type: str | None = None,
        tags: str | Mapping[str, Any] | None = None,
        properties: str | Mapping[str, Any] | None = None,
        include_children: bool = False,
    ) -> Iterator[Run]:
        """Runs newest first, fetched a page at a time."""
        from trainyard.core.run import run_from_info

        cursor: str | None = None
        while True:
            infos, cursor = self._workspace.context.store.list_runs(
                self._info.id,
                run_type=type,
                tags=_as_filter(tags),
                properties=_as_filter(properties),
                include_children=include_children,
                limit=_PAGE,
                cursor=cursor,
            )
            for info in infos:
                yield run_from_info(self, info)
            if cursor is None:
                return

    def archive(self) -> None:
        """Hide the experiment from ``Experiment.list`` and refuse new submissions."""
        self._info = self._workspace.context.store.set_experiment_archived(self._info.id, True)

    def reactivate(self, new_name: str | None = None) -> None:
        """Undo :meth:`archive`."""
        if new_name is not None and new_name != self.name:
            raise UserErrorException("Renaming on reactivate is not supported; keep the name.")
        self._info = self._workspace.context.store.set_experiment_archived(self._info.id, False)

    @staticmethod
    def list(
        workspace: Workspace,
        experiment_name: str | None = None,
        view_type: str = "ActiveOnly",
        tags: Any = None,
    ) -> list[Experiment]:
        """Experiments of the workspace (``view_type`` ``ActiveOnly``, ``ArchivedOnly`` or ``All``)."""
        infos = workspace.context.store.list_experiments(
            workspace.context.workspace_id, include_archived=view_type != "ActiveOnly"
        )
        if view_type == "ArchivedOnly":
            infos = [i for i in infos if i.archived]
        if experiment_name is not None:
            infos = [i for i in infos if i.name == experiment_name]
        return [Experiment._from_info(workspace, i) for i in infos]


def experiment_from_info(workspace: Workspace, info: ExperimentInfo) -> Experiment:
    """The experiment object for a record already read (no store access)."""
    return Experiment._from_info(workspace, info)
