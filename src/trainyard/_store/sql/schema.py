"""SQLAlchemy Core tables. The database itself is created and upgraded only by Alembic migrations
(``migrations/versions``); these definitions must match the head revision (a test checks it)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

workspaces = Table(
    "ty_workspaces",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

experiments = Table(
    "ty_experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace_id", String(36), ForeignKey("ty_workspaces.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("archived", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("run_counter", Integer, nullable=False, default=0),
    UniqueConstraint("workspace_id", "name", name="uq_experiment_name"),
)

runs = Table(
    "ty_runs",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(255), nullable=False, unique=True),
    Column("experiment_id", Integer, ForeignKey("ty_experiments.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("run_type", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("parent_run_id", String(255), nullable=True),
    Column("display_name", String(255), nullable=True),
    Column("description", Text, nullable=True),
    Column("target", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("start_time", Float, nullable=True),
    Column("end_time", Float, nullable=True),
    Column("heartbeat_at", Float, nullable=True),
    Column("definition", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("runtime", Text, nullable=True),
    Column("snapshot_id", String(128), nullable=True),
    Column("submitted_by", String(255), nullable=True),
    Index("ix_runs_experiment_created", "experiment_id", "created_at"),
    Index("ix_runs_created", "created_at"),
    Index("ix_runs_parent", "parent_run_id"),
    Index("ix_runs_status", "status"),
)

run_status_events = Table(
    "ty_run_status_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_pk", Integer, ForeignKey("ty_runs.pk"), nullable=False),
    Column("status", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Column("reason", Text, nullable=True),
    Index("ix_status_events_run", "run_pk"),
)

run_tags = Table(
    "ty_run_tags",
    metadata,
    Column("run_pk", Integer, ForeignKey("ty_runs.pk"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

run_properties = Table(
    "ty_run_properties",
    metadata,
    Column("run_pk", Integer, ForeignKey("ty_runs.pk"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

metric_chunks = Table(
    "ty_metric_chunks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_pk", Integer, ForeignKey("ty_runs.pk"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("dtype", String(1), nullable=False),
    Column("count", Integer, nullable=False),
    Column("timestamps", LargeBinary, nullable=False),
    Column("vals", LargeBinary, nullable=True),
    Column("steps", LargeBinary, nullable=True),
    Column("data", Text, nullable=True),
    Column("description", Text, nullable=True),
    #: Set by clients that may retry an upload (the spool's sender): a repeat is ignored.
    Column("client_key", String(96), nullable=True),
    Index("ix_metric_chunks_run_name", "run_pk", "name"),
    Index("ux_metric_chunks_client_key", "run_pk", "client_key", unique=True),
)

#: A numeric chunk's x range and per-block min/max/last (``trainyard._store.summary``), written with
#: the chunk: a chart of many points reads these instead of the blobs. Their own table, because
#: SQLite reads a column stored after a row's blobs by walking the blobs' overflow pages.
metric_summaries = Table(
    "ty_metric_summaries",
    metadata,
    Column("chunk_id", Integer, ForeignKey("ty_metric_chunks.id"), primary_key=True),
    Column("run_pk", Integer, ForeignKey("ty_runs.pk"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("count", Integer, nullable=False),
    #: NULL when the chunk was logged without steps.
    Column("first_step", BigInteger, nullable=True),
    Column("last_step", BigInteger, nullable=True),
    Column("first_time", Float, nullable=False),
    Column("last_time", Float, nullable=False),
    Column("blocks", LargeBinary, nullable=False),
    Index("ix_metric_summaries_run_name", "run_pk", "name", "chunk_id"),
)

#: The last numeric value of each metric of each run, kept by ``log_metric_chunks`` in the same
#: transaction: the runs table sorts on it through its indexes and ``latest_metrics`` reads it.
run_latest_metrics = Table(
    "ty_run_latest_metrics",
    metadata,
    Column("run_pk", Integer, ForeignKey("ty_runs.pk"), primary_key=True),
    Column("name", String(255), primary_key=True),
    #: The last value when it is finite, else NULL (the sort key: missing values sort last).
    Column("value", Float, nullable=True),
    #: The last value exactly as logged (little-endian float64: NaN and ±inf kept), and its dtype.
    Column("last", LargeBinary, nullable=True),
    Column("dtype", String(1), nullable=True),
    Column("step", BigInteger, nullable=True),
    #: The newest scalar chunk of the name holds no number (a string, say): ``latest_metrics``
    #: leaves the name out, as it reads the newest chunk; the sort keeps the last number.
    Column("shadowed", Boolean, nullable=False, default=False),
    #: The run's creation time (never changes), so ties of a sort are broken, newest first, by the
    #: index rather than by sorting every tied run.
    Column("created_at", Float, nullable=False),
    Column("updated", Float, nullable=False),
)
_lm = run_latest_metrics.c
#: Ascending pages: value, then newest first. Descending pages read the other index backwards.
Index("ix_latest_metrics_up", _lm.name, _lm.value, _lm.created_at.desc(), _lm.run_pk.desc())
Index("ix_latest_metrics_down", _lm.name, _lm.value, _lm.created_at, _lm.run_pk)

environments = Table(
    "ty_environments",
    metadata,
    Column("workspace_id", String(36), ForeignKey("ty_workspaces.id"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("spec", Text, nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

compute_targets = Table(
    "ty_compute_targets",
    metadata,
    Column("workspace_id", String(36), ForeignKey("ty_workspaces.id"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("target_type", String(64), nullable=False),
    Column("config", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

models = Table(
    "ty_models",
    metadata,
    Column("workspace_id", String(36), ForeignKey("ty_workspaces.id"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=False),
    Column("properties", Text, nullable=False),
    Column("run_id", String(255), nullable=True),
    Column("experiment_name", String(255), nullable=True),
    Column("framework", String(64), nullable=True),
    Column("framework_version", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("storage_prefix", Text, nullable=False),
    Column("model_root", Text, nullable=False),
    Column("files", Text, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Index("ix_models_run", "run_id"),
)

registered_models = Table(
    "ty_registered_models",
    metadata,
    Column("workspace_id", String(36), ForeignKey("ty_workspaces.id"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=False),
    Column("aliases", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

webservices = Table(
    "ty_webservices",
    metadata,
    Column("workspace_id", String(36), ForeignKey("ty_workspaces.id"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("state", String(32), nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

users = Table(
    "ty_users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

tokens = Table(
    "ty_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("user_id", String(36), ForeignKey("ty_users.id"), nullable=True),
    Column("workspace_id", String(36), nullable=True),
    Column("run_id", String(255), nullable=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("name", String(128), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    Index("ix_tokens_user", "user_id"),
)

role_bindings = Table(
    "ty_role_bindings",
    metadata,
    Column("workspace_id", String(36), ForeignKey("ty_workspaces.id"), primary_key=True),
    Column("user_id", String(36), ForeignKey("ty_users.id"), primary_key=True),
    Column("role", String(16), nullable=False),
)

idempotency = Table(
    "ty_idempotency",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("operation", String(64), nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
