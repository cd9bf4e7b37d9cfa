"""The metadata seam: :class:`TrackingStore`.

Contract (every implementation — SQL on SQLite or PostgreSQL today, REST later — passes the same
conformance suite in :mod:`trainyard.testing.store`):

* **Thread and process safety.** Every method may be called concurrently from several threads of one
  process and from several processes sharing the same database. Writes are transactional: a call that
  raises has changed nothing.
* **Immutability.** Run ids, run numbers, experiment ids, run types, parents and metric points never
  change once written. Properties are add-only (changing a key raises ``ImmutablePropertyError``);
  tags are mutable. Terminal statuses are final (``InvalidStatusTransition``).
* **Errors.** Lookups of missing things raise the specific ``NotFoundError`` subclass
  (``WorkspaceNotFound``, ``ExperimentNotFound``, ``RunNotFound``, ``EnvironmentNotFound``,
  ``ModelNotFoundException``, ``ComputeTargetNotFound``, ``WebserviceNotFound`` — the last two are
  also v1's ``ComputeTargetException`` / ``WebserviceException``); bad arguments raise
  ``ValidationError``; a database that stays unavailable raises ``StoreError``. Nothing else escapes.
* **Entities.** Every aggregate comes back as a frozen dataclass from
  :mod:`trainyard._store.entities`; mutable dict fields are copies the caller may keep.
* **Ordering.** ``list_runs`` is newest first (by creation, then number) and paginated with an opaque
  cursor. Metric chunks come back in write order. ``search_runs`` (the studio's runs table) sorts on
  any of :data:`RUN_SORT_FIELDS` and pages by offset; the SQL store does both in the database.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from trainyard._store.entities import (
    ChunkSummary,
    ComputeTargetRecord,
    EnvironmentRecord,
    ExperimentInfo,
    MetricChunk,
    ModelInfo,
    NewRun,
    RegisteredModelRecord,
    RunInfo,
    RunPage,
    StatusEvent,
    WebserviceRecord,
    WorkspaceInfo,
)

#: What ``search_runs`` sorts on besides ``tag:<key>`` and ``property:<key>``.
RUN_SORT_FIELDS = (
    "created_at",
    "start_time",
    "end_time",
    "duration",
    "number",
    "status",
    "display_name",
    "submitted_by",
    "target",
    "run_id",
    "run_type",
)


class TrackingStore(abc.ABC):
    """Abstract metadata store: workspaces, experiments, runs, metrics, environments, compute."""

    # -- workspaces -------------------------------------------------------------------------
    @abc.abstractmethod
    def ensure_workspace(self, name: str) -> WorkspaceInfo:
        """Get or create the workspace ``name``; safe when many processes race to create it."""

    @abc.abstractmethod
    def get_workspace(self, name: str) -> WorkspaceInfo:
        """The workspace ``name``; raises ``WorkspaceNotFound``."""

    @abc.abstractmethod
    def list_workspaces(self) -> list[WorkspaceInfo]:
        """Every workspace of the store, by name."""

    # -- experiments ------------------------------------------------------------------------
    @abc.abstractmethod
    def get_or_create_experiment(self, workspace_id: str, name: str) -> ExperimentInfo:
        """Get or create; the caller has validated the name. Race-safe."""

    @abc.abstractmethod
    def get_experiment(self, workspace_id: str, name: str) -> ExperimentInfo:
        """Raises ``ExperimentNotFound``."""

    @abc.abstractmethod
    def get_experiment_by_id(self, experiment_id: int) -> ExperimentInfo:
        """Raises ``ExperimentNotFound``."""

    @abc.abstractmethod
    def list_experiments(
        self, workspace_id: str, include_archived: bool = False
    ) -> list[ExperimentInfo]:
        """All experiments of the workspace, by name."""

    @abc.abstractmethod
    def set_experiment_archived(self, experiment_id: int, archived: bool) -> ExperimentInfo:
        """Archive or reactivate."""

    @abc.abstractmethod
    def rename_experiment(self, experiment_id: int, name: str) -> ExperimentInfo:
        """Give the experiment a new name (the caller has validated it); its runs follow.
        ``AlreadyExistsError`` if the workspace has an experiment of that name."""

    # -- runs -------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_run(self, new: NewRun) -> RunInfo:
        """Insert a run, allocating its per-experiment ``number``; raises ``AlreadyExistsError``."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunInfo:
        """Raises ``RunNotFound``."""

    @abc.abstractmethod
    def list_runs(
        self,
        experiment_id: int | None = None,
        *,
        workspace_id: str | None = None,
        run_type: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str | None] | None = None,
        statuses: Sequence[str] | None = None,
        parent_run_id: str | None = None,
        include_children: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[RunInfo], str | None]:
        """A page of runs, newest first, and the cursor of the next page (``None`` at the end).

        ``tags``/``properties`` filter by key (value ``None``) or key and value. Without
        ``parent_run_id``, children are left out unless ``include_children``.
        """

    def search_runs(
        self,
        workspace_id: str,
        *,
        experiment_id: int | None = None,
        parent_run_id: str | None = None,
        include_children: bool = False,
        statuses: Sequence[str] | None = None,
        text: str | None = None,
        submitted_by: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str | None] | None = None,
        order_by: str = "created_at",
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> RunPage:
        """A page of a workspace's runs sorted on ``order_by`` (one of :data:`RUN_SORT_FIELDS`,
        ``tag:<key>``, ``property:<key>`` — values that read as numbers first, numerically, then
        the rest as text — or ``metric:<name>``, the last logged value of a numeric metric; runs
        without one sort last), from
        ``offset``, and how many match in all. ``text`` matches a substring of the run id or display
        name (case-insensitive); the other filters are as for :meth:`list_runs`. Ties are broken by
        creation, newest first. Raises ``ValidationError`` for an unknown sort field.

        This default reads every matching run through :meth:`list_runs`; the SQL store overrides
        it with one query that sorts and pages in the database.
        """
        from trainyard._store.search import check_search, filter_and_sort

        check_search(order_by, offset, limit)
        found: list[RunInfo] = []
        cursor: str | None = None
        while True:
            page, cursor = self.list_runs(
                experiment_id,
                workspace_id=workspace_id,
                tags=tags,
                properties=properties,
                statuses=statuses,
                parent_run_id=parent_run_id,
                include_children=include_children,
                limit=1000,
                cursor=cursor,
            )
            found.extend(page)
            if cursor is None:
                break
        metrics = None
        if order_by.startswith("metric:"):
            metrics = self.latest_metrics([r.run_id for r in found])
        ordered = filter_and_sort(found, text, submitted_by, order_by, descending, metrics)
        return RunPage(runs=ordered[offset : offset + limit], total=len(ordered))

    def latest_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """run id → {metric name → its last logged value} for the scalar metrics of many runs
        (a runs table's metric columns). Runs that logged nothing are absent. The SQL store reads
        only the last chunk of each metric."""
        from trainyard._store.search import last_value
        from trainyard.exceptions import RunNotFound

        out: dict[str, dict[str, Any]] = {}
        for run_id in run_ids:
            values: dict[str, Any] = {}
            try:
                chunks = self.get_metric_chunks(run_id)
            except RunNotFound:
                continue
            for chunk in chunks:
                value = last_value(chunk)
                if value is not None:
                    values[chunk.name] = value
            if values:
                out[run_id] = values
        return out

    def chart_chunks(
        self, run_id: str, name: str, axis: str, after_seq: int = 0
    ) -> list[MetricChunk]:
        """The chunks of one metric with only what a chart on ``axis`` (``"step"`` or ``"time"``)
        needs: values, and steps or timestamps (the other blob may be empty). With
        ``after_seq``, only chunks whose ``seq`` is greater (what a chart that has read up to
        ``after_seq`` lacks). The SQL store reads only those rows and columns; this default
        filters whole chunks."""
        chunks = self.get_metric_chunks(run_id, [name])
        return [c for c in chunks if c.seq > after_seq] if after_seq else chunks

    def chart_summaries(self, run_id: str, name: str, after_seq: int = 0) -> list[ChunkSummary]:
        """A :class:`ChunkSummary` of every numeric chunk of metric ``name`` (scalar, not JSON,
        not empty), in write order; with ``after_seq``, of those whose ``seq`` is greater. A chart
        of many points draws from these without reading the points. The SQL store reads the
        summaries it wrote with the chunks; this default summarises the chunks it reads."""
        from trainyard._store.summary import is_numeric, summarize

        out = []
        for c in self.get_metric_chunks(run_id, [name]):
            if c.seq > after_seq and is_numeric(c):
                found = summarize(c)
                out.append(
                    ChunkSummary(seq=c.seq, **found) if found else ChunkSummary(c.seq, c.count)
                )
        return out

    @abc.abstractmethod
    def update_run_status(
        self,
        run_id: str,
        status: str,
        *,
        error: Mapping[str, Any] | None = None,
        reason: str | None = None,
        only_from: Sequence[str] | None = None,
    ) -> RunInfo:
        """Move a run to ``status`` through the lifecycle check, atomically.

        Sets ``start_time`` on entering Running and ``end_time`` on a terminal status. With
        ``only_from``, the change happens only if the current status is one of those; otherwise the
        run is returned unchanged (a compare-and-set for races between supervisor, reaper and cancel).
        """

    @abc.abstractmethod
    def update_run(
        self,
        run_id: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        definition: Mapping[str, Any] | None = None,
        runtime: Mapping[str, Any] | None = None,
        target: str | None = None,
        snapshot_id: str | None = None,
    ) -> RunInfo:
        """Update the mutable fields given (``None`` leaves a field alone): ``display_name``,
        ``description``, ``definition`` (replaced), ``runtime`` (merged key by key), ``target``,
        ``snapshot_id``. Raises ``RunNotFound``."""

    @abc.abstractmethod
    def heartbeat(self, run_id: str) -> None:
        """Record that the run's owner is alive now."""

    @abc.abstractmethod
    def status_history(self, run_id: str) -> list[StatusEvent]:
        """Every status the run passed through, oldest first."""

    @abc.abstractmethod
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Add or overwrite tags."""

    @abc.abstractmethod
    def remove_tags(self, run_id: str, keys: Sequence[str]) -> None:
        """Delete tags; missing keys are ignored."""

    @abc.abstractmethod
    def add_properties(self, run_id: str, properties: Mapping[str, str]) -> None:
        """Add properties; re-adding a key with the same value is a no-op, a different value raises
        ``ImmutablePropertyError`` and nothing of the call is stored."""

    # -- metrics ----------------------------------------------------------------------------
    @abc.abstractmethod
    def log_metric_chunks(self, run_id: str, chunks: Sequence[MetricChunk]) -> None:
        """Append chunks in one transaction. Raises ``RunFinishedError`` for a terminal run unless
        the run finished less than a grace period ago (late flushes of a finishing process). A
        chunk whose ``client_key`` the run already has is skipped (a retried upload is stored
        once)."""

    @abc.abstractmethod
    def get_metric_chunks(
        self, run_id: str, names: Sequence[str] | None = None
    ) -> list[MetricChunk]:
        """Chunks in write order, optionally for some names only."""

    # -- environments ------------------------------------------------------------------------
    @abc.abstractmethod
    def register_environment(
        self, workspace_id: str, name: str, spec: Mapping[str, Any], spec_hash: str
    ) -> EnvironmentRecord:
        """A new version when ``spec_hash`` differs from the latest version's, else the latest."""

    @abc.abstractmethod
    def get_environment(
        self, workspace_id: str, name: str, version: int | None = None
    ) -> EnvironmentRecord:
        """Latest version by default; raises ``EnvironmentNotFound``."""

    @abc.abstractmethod
    def list_environments(self, workspace_id: str) -> list[EnvironmentRecord]:
        """The latest version of every name, by name."""

    # -- compute targets ----------------------------------------------------------------------
    @abc.abstractmethod
    def put_compute_target(
        self, workspace_id: str, name: str, target_type: str, config: Mapping[str, Any]
    ) -> ComputeTargetRecord:
        """Create or replace a compute target record."""

    @abc.abstractmethod
    def get_compute_target(self, workspace_id: str, name: str) -> ComputeTargetRecord:
        """Raises ``ComputeTargetNotFound`` (a v1 ``ComputeTargetException``)."""

    @abc.abstractmethod
    def list_compute_targets(self, workspace_id: str) -> list[ComputeTargetRecord]:
        """Every target of the workspace, by name."""

    @abc.abstractmethod
    def delete_compute_target(self, workspace_id: str, name: str) -> None:
        """Remove a target; raises ``ComputeTargetNotFound``."""

    # -- model registry -------------------------------------------------------------------------
    @abc.abstractmethod
    def create_model(self, model: ModelInfo) -> ModelInfo:
        """Insert the next version of ``model.name`` (``model.version`` ignored); race-safe."""

    @abc.abstractmethod
    def get_model(self, workspace_id: str, name: str, version: int | None = None) -> ModelInfo:
        """Latest version by default; raises ``ModelNotFoundException``."""

    @abc.abstractmethod
    def list_models(
        self,
        workspace_id: str,
        name: str | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[ModelInfo]:
        """By name, newest version first; ``latest`` keeps one per name."""

    @abc.abstractmethod
    def update_model(
        self,
        workspace_id: str,
        name: str,
        version: int,
        *,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        add_properties: Mapping[str, str] | None = None,
    ) -> ModelInfo:
        """Replace tags / description; add properties (add-only, ``ImmutablePropertyError``)."""

    @abc.abstractmethod
    def delete_model(self, workspace_id: str, name: str, version: int) -> ModelInfo:
        """Remove one version (its number is never reused); returns what was deleted."""

    @abc.abstractmethod
    def put_registered_model(
        self,
        workspace_id: str,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        aliases: Mapping[str, int] | None = None,
        create: bool = False,
    ) -> RegisteredModelRecord:
        """Create or update the name's record: fields given replace the stored ones, ``None``
        leaves them alone (empty on a new record). With ``create``, ``AlreadyExistsError`` if the
        name already has a record or a live version."""

    @abc.abstractmethod
    def get_registered_model(self, workspace_id: str, name: str) -> RegisteredModelRecord:
        """The name's record; ``ModelNotFoundException`` if it has none (it may still have
        versions: a model registered before any record was written)."""

    @abc.abstractmethod
    def list_registered_models(self, workspace_id: str) -> list[RegisteredModelRecord]:
        """Every record of the workspace, by name."""

    @abc.abstractmethod
    def rename_model(self, workspace_id: str, name: str, new_name: str) -> None:
        """Move every version and the record of ``name`` to ``new_name``, atomically.
        ``ModelNotFoundException`` if ``name`` has neither; ``AlreadyExistsError`` if
        ``new_name`` has either (deleted versions count: numbers are never reused)."""

    @abc.abstractmethod
    def delete_registered_model(self, workspace_id: str, name: str) -> None:
        """Delete the record and every version of ``name``, atomically;
        ``ModelNotFoundException`` if it has neither."""

    # -- web services -------------------------------------------------------------------------
    @abc.abstractmethod
    def create_webservice(
        self, workspace_id: str, name: str, state: str, data: Mapping[str, Any]
    ) -> WebserviceRecord:
        """Insert a service record; ``AlreadyExistsError`` if the name is taken."""

    @abc.abstractmethod
    def get_webservice(self, workspace_id: str, name: str) -> WebserviceRecord:
        """Raises ``WebserviceNotFound`` (a v1 ``WebserviceException``)."""

    @abc.abstractmethod
    def list_webservices(self, workspace_id: str) -> list[WebserviceRecord]:
        """Every service of the workspace, by name."""

    @abc.abstractmethod
    def update_webservice(
        self,
        workspace_id: str,
        name: str,
        *,
        state: str | None = None,
        data: Mapping[str, Any] | None = None,
        only_from: Sequence[str] | None = None,
    ) -> bool:
        """Merge ``data`` into the record and/or set ``state``; with ``only_from``, only when the
        current state is one of those (compare-and-set). Returns whether it changed; raises
        ``WebserviceNotFound``."""

    @abc.abstractmethod
    def delete_webservice(self, workspace_id: str, name: str) -> None:
        """Remove the record; raises ``WebserviceNotFound``."""

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
