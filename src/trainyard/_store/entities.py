"""Frozen records the :class:`~trainyard._store.base.TrackingStore` returns and accepts.

Entities are plain data: they never call back into a store. Public objects (``Run``, ``Experiment``)
wrap them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WorkspaceInfo:
    """A workspace row: its id is stable, its name unique in the store."""

    id: str
    name: str
    created_at: float


@dataclass(frozen=True)
class ExperimentInfo:
    """An experiment row."""

    id: int
    workspace_id: str
    name: str
    archived: bool
    created_at: float


@dataclass(frozen=True)
class NewRun:
    """What ``create_run`` needs; the store allocates ``number`` and timestamps."""

    run_id: str
    experiment_id: int
    run_type: str
    status: str = "NotStarted"
    parent_run_id: str | None = None
    display_name: str | None = None
    description: str | None = None
    target: str | None = None
    definition: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    snapshot_id: str | None = None
    submitted_by: str | None = None


@dataclass(frozen=True)
class RunInfo:
    """A run as stored, including its tags and properties."""

    run_id: str
    experiment_id: int
    experiment_name: str
    workspace_id: str
    number: int
    run_type: str
    status: str
    parent_run_id: str | None
    display_name: str | None
    description: str | None
    target: str | None
    created_at: float
    start_time: float | None
    end_time: float | None
    heartbeat_at: float | None
    definition: dict[str, Any]
    error: dict[str, Any] | None
    runtime: dict[str, Any]
    snapshot_id: str | None
    submitted_by: str | None
    tags: dict[str, str]
    properties: dict[str, str]


@dataclass(frozen=True)
class RunPage:
    """One page of :meth:`~trainyard._store.base.TrackingStore.search_runs`: the runs and how
    many match in all (for a pager)."""

    runs: list[RunInfo]
    total: int


@dataclass(frozen=True)
class StatusEvent:
    """One status change with its time, for ``get_details`` and the UI."""

    status: str
    at: float
    reason: str | None = None


#: Metric kinds: v1's wire types (``azureml.v1.scalar`` …) map onto these short names.
METRIC_KINDS = (
    "scalar",
    "list",
    "table",
    "row",
    "image",
    "confusion_matrix",
    "accuracy_table",
    "residuals",
    "predictions",
)


@dataclass(frozen=True)
class MetricChunk:
    """A run of consecutive points of one metric, stored as one row.

    Numeric scalars travel as packed little-endian arrays (``values`` float64, ``timestamps`` float64,
    ``steps`` int64 or ``None`` when the user gave no steps); everything else (strings, booleans,
    lists, tables, image references) travels as a JSON array in ``data`` with one element per point.
    ``dtype`` is ``"f"`` (floats), ``"i"`` (all values were ints) or ``"j"`` (JSON).
    """

    name: str
    kind: str
    dtype: str
    count: int
    timestamps: bytes
    values: bytes | None = None
    steps: bytes | None = None
    data: str | None = None
    description: str | None = None
    seq: int = 0
    #: Set by a client that may send the chunk again (a spool's sender): the store keeps one copy
    #: per run and key. ``None``: no deduplication.
    client_key: str | None = None


@dataclass(frozen=True)
class ChunkSummary:
    """What a chart of many points needs of one numeric chunk of a metric (``seq`` is the
    chunk's): its point count, step and time range, and per block of points its min, max and
    last value with the last point's step and time (``blocks``, packed as
    :mod:`trainyard._store.summary` describes). ``blocks`` is ``None`` where the store holds no
    summary of the chunk (read the chunk itself); ``first_step``/``last_step`` are ``None`` for a
    chunk logged without steps."""

    seq: int
    count: int
    first_step: int | None = None
    last_step: int | None = None
    first_time: float | None = None
    last_time: float | None = None
    blocks: bytes | None = None


@dataclass(frozen=True)
class MetricPoint:
    """One logged value with its step and timestamp (``Run.get_metric_points``)."""

    step: int
    timestamp: float
    value: Any


@dataclass(frozen=True)
class ModelInfo:
    """A registered model version. Files live under ``storage_prefix`` in the artifact store;
    ``model_root`` is the registered file or folder name and ``files`` the paths below the prefix."""

    workspace_id: str
    name: str
    version: int
    description: str | None
    tags: dict[str, str]
    properties: dict[str, str]
    run_id: str | None
    experiment_name: str | None
    framework: str | None
    framework_version: str | None
    created_at: float
    storage_prefix: str
    model_root: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class RegisteredModelRecord:
    """What a model *name* carries beyond its versions (MLflow's registered model): a
    description, tags, and aliases (alias → version). A name with versions but no record is still
    a registered model; a record with no versions is an empty one."""

    workspace_id: str
    name: str
    description: str | None
    tags: dict[str, str]
    aliases: dict[str, int]
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class EnvironmentRecord:
    """A registered environment version: the spec is the environment's dict form."""

    workspace_id: str
    name: str
    version: int
    spec: dict[str, Any]
    spec_hash: str
    created_at: float


@dataclass(frozen=True)
class ComputeTargetRecord:
    """A compute target: ``target_type`` picks the backend (``local``, ``amlcompute`` …)."""

    workspace_id: str
    name: str
    target_type: str
    config: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class WebserviceRecord:
    """A deployed web service: its state (``Healthy``, ``Transitioning`` …) and its data."""

    workspace_id: str
    name: str
    state: str
    data: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class UserInfo:
    """An account of a team server. ``is_admin``: may manage users and every workspace."""

    id: str
    name: str
    is_admin: bool
    disabled: bool
    created_at: float


@dataclass(frozen=True)
class TokenInfo:
    """An API token (its secret is shown once and stored only as a hash).

    ``kind`` is ``user`` (acts as its user) or ``run`` (a run-scoped credential: it may write only
    run ``run_id`` and its children, and read its workspace ``workspace_id``).
    """

    id: str
    kind: str
    user_id: str | None
    workspace_id: str | None
    run_id: str | None
    prefix: str
    name: str | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    def usable(self, now: float) -> bool:
        """Not revoked and not expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)
