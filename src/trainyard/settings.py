"""Every ``TRAINYARD_*`` environment variable, declared once, typed, with its default.

Library code never reads ``os.environ`` directly: it calls :func:`load_settings` (or receives a
:class:`Settings`) at construction and passes values down. The run-context variables
(``TRAINYARD_RUN_ID`` …) that a supervisor sets for a script are listed in :data:`RUN_ENV_VARS`.

Example::

    from trainyard.settings import load_settings
    s = load_settings()
    print(s.home, s.log_buffer_points)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Variables a supervisor sets inside a run, trainyard name → v1 name(s) also set for ported code.
RUN_ENV_VARS: dict[str, tuple[str, ...]] = {
    "TRAINYARD_RUN_ID": ("AZUREML_RUN_ID",),
    "TRAINYARD_EXPERIMENT_NAME": ("AZUREML_ARM_PROJECT_NAME",),
    "TRAINYARD_WORKSPACE_NAME": ("AZUREML_ARM_WORKSPACE_NAME",),
    "TRAINYARD_WORKSPACE_PATH": (),
    "TRAINYARD_TRACKING_URI": ("AZUREML_SERVICE_ENDPOINT",),
    "TRAINYARD_SUBSCRIPTION_ID": ("AZUREML_ARM_SUBSCRIPTION",),
    "TRAINYARD_RESOURCE_GROUP": ("AZUREML_ARM_RESOURCEGROUP",),
    # The supervisor's store relay (trainyard._store.relay): the script's records go through it.
    "TRAINYARD_RUN_RELAY": (),
    "TRAINYARD_RUN_RELAY_KEY": (),
}


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        from trainyard.exceptions import ConfigError

        raise ConfigError(
            f"{name}={raw!r} is not an integer; unset it or give a whole number."
        ) from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        from trainyard.exceptions import ConfigError

        raise ConfigError(f"{name}={raw!r} is not a number; unset it or give a number.") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        from trainyard.exceptions import ConfigError

        raise ConfigError(
            f"{name}={raw!r} is not one of {', '.join(choices)}; unset it or pick one."
        )
    return raw


@dataclass(frozen=True)
class Settings:
    """Process-wide configuration read from the environment."""

    #: ``TRAINYARD_HOME``: default root for workspaces and caches (``~/.trainyard``).
    home: Path = field(default_factory=lambda: Path.home() / ".trainyard")
    #: ``TRAINYARD_ENV_CACHE``: where built environments live (``<home>/envs``).
    env_cache: Path | None = None
    #: ``TRAINYARD_LOG_BUFFER_POINTS``: metric points buffered in a process before ``log`` blocks.
    log_buffer_points: int = 1_000_000
    #: ``TRAINYARD_LOG_FLUSH_INTERVAL``: seconds between background metric flushes.
    log_flush_interval: float = 0.25
    #: ``TRAINYARD_SQLITE_BUSY_TIMEOUT_MS``: how long SQLite waits for a lock before retrying.
    sqlite_busy_timeout_ms: int = 60_000
    #: ``TRAINYARD_SNAPSHOT_MAX_BYTES`` (default 300 MB, as v1).
    snapshot_max_bytes: int = 300 * 1024 * 1024
    #: ``TRAINYARD_SNAPSHOT_MAX_FILES`` (default 2000, as v1).
    snapshot_max_files: int = 2000
    #: ``TRAINYARD_SNAPSHOT_NO_FILE_LIMIT`` or v1's ``AML_SNAPSHOT_NO_FILE_LIMIT`` lifts the file cap.
    snapshot_no_file_limit: bool = False
    #: ``TRAINYARD_HEARTBEAT_SECONDS``: supervisor heartbeat period.
    heartbeat_seconds: float = 2.0
    #: ``TRAINYARD_HEARTBEAT_TIMEOUT``: a run whose heartbeat is older than this is presumed dead.
    heartbeat_timeout: float = 20.0
    #: ``TRAINYARD_POLLING_INTERVAL_MIN`` / ``_MAX`` (or v1's ``AZUREML_RUN_POLLING_INTERVAL_*``).
    polling_interval_min: float = 0.2
    polling_interval_max: float = 2.0
    #: ``TRAINYARD_CANCEL_GRACE_SECONDS``: SIGTERM → SIGKILL grace period.
    cancel_grace_seconds: float = 10.0
    #: ``TRAINYARD_SYSTEM_METRICS_SECONDS``: how often a run's supervisor samples the script's CPU,
    #: memory, disk and network use (and NVML GPUs); 0 turns sampling off.
    system_metrics_seconds: float = 5.0
    #: ``TRAINYARD_FORKSERVER``: start detached processes from a warm fork server (default on).
    forkserver: bool = True
    #: ``TRAINYARD_FORKSERVER_IDLE_SECONDS``: a fork server with no request for this long exits.
    forkserver_idle_seconds: float = 600.0
    #: ``TRAINYARD_SERVER_RETRY_SECONDS``: how long a call to a team server is retried while it
    #: cannot be reached (connection refused, 502/503/504) before ``ServerUnreachable``.
    server_retry_seconds: float = 60.0
    #: ``TRAINYARD_SPOOL_EXIT_SECONDS``: at exit, how long a process waits for its spooled records
    #: to reach the team server before leaving them for ``trainyard sync``.
    spool_exit_seconds: float = 30.0
    #: ``TRAINYARD_AMLCOMPUTE_BACKEND``: what runs an ``AmlCompute`` target provisioned without
    #: ``backend=``: ``local`` (processes on this machine, ``max_nodes`` at once) or ``ray`` (a
    #: Ray cluster trainyard starts on this machine).
    amlcompute_backend: str = "local"
    #: ``TRAINYARD_STUDIO_URL``: the studio that shows this machine's runs (``Web View:`` links).
    studio_url: str | None = None

    @property
    def env_cache_dir(self) -> Path:
        return self.env_cache or (self.home / "envs")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read :class:`Settings` from ``env`` (default: ``os.environ``)."""
    e = os.environ if env is None else env
    home = (
        Path(e["TRAINYARD_HOME"]).expanduser()
        if e.get("TRAINYARD_HOME")
        else Path.home() / ".trainyard"
    )
    cache = Path(e["TRAINYARD_ENV_CACHE"]).expanduser() if e.get("TRAINYARD_ENV_CACHE") else None
    return Settings(
        home=home,
        env_cache=cache,
        log_buffer_points=max(1000, _int(e, "TRAINYARD_LOG_BUFFER_POINTS", 1_000_000)),
        log_flush_interval=_float(e, "TRAINYARD_LOG_FLUSH_INTERVAL", 0.25),
        sqlite_busy_timeout_ms=_int(e, "TRAINYARD_SQLITE_BUSY_TIMEOUT_MS", 60_000),
        snapshot_max_bytes=_int(e, "TRAINYARD_SNAPSHOT_MAX_BYTES", 300 * 1024 * 1024),
        snapshot_max_files=_int(e, "TRAINYARD_SNAPSHOT_MAX_FILES", 2000),
        snapshot_no_file_limit=_bool(e, "TRAINYARD_SNAPSHOT_NO_FILE_LIMIT", False)
        or _bool(e, "AML_SNAPSHOT_NO_FILE_LIMIT", False),
        heartbeat_seconds=_float(e, "TRAINYARD_HEARTBEAT_SECONDS", 2.0),
        heartbeat_timeout=_float(e, "TRAINYARD_HEARTBEAT_TIMEOUT", 20.0),
        system_metrics_seconds=max(0.0, _float(e, "TRAINYARD_SYSTEM_METRICS_SECONDS", 5.0)),
        polling_interval_min=_float(
            e, "TRAINYARD_POLLING_INTERVAL_MIN", _float(e, "AZUREML_RUN_POLLING_INTERVAL_MIN", 0.2)
        ),
        polling_interval_max=_float(
            e, "TRAINYARD_POLLING_INTERVAL_MAX", _float(e, "AZUREML_RUN_POLLING_INTERVAL_MAX", 2.0)
        ),
        cancel_grace_seconds=_float(e, "TRAINYARD_CANCEL_GRACE_SECONDS", 10.0),
        forkserver=_bool(e, "TRAINYARD_FORKSERVER", True),
        forkserver_idle_seconds=max(1.0, _float(e, "TRAINYARD_FORKSERVER_IDLE_SECONDS", 600.0)),
        server_retry_seconds=max(0.0, _float(e, "TRAINYARD_SERVER_RETRY_SECONDS", 60.0)),
        spool_exit_seconds=max(0.0, _float(e, "TRAINYARD_SPOOL_EXIT_SECONDS", 30.0)),
        studio_url=e.get("TRAINYARD_STUDIO_URL") or None,
        amlcompute_backend=_choice(e, "TRAINYARD_AMLCOMPUTE_BACKEND", ("local", "ray"), "local"),
    )


#: Every other ``TRAINYARD_*`` variable, read at one boundary each (never deep in library code).
OTHER_VARIABLES: dict[str, str] = {
    "TRAINYARD_WORKSPACE": "CLI only: the workspace folder or config.json to use (else .trainyard/config.json).",
    "TRAINYARD_RAY_TOKEN": "CLI only: the Ray auth token `trainyard compute attach` sends (else --token).",
    "TRAINYARD_MNIST_DIR": "Folder with the four MNIST IDX files (trainyard._data.mnist search order).",
    "TRAINYARD_MODEL_DIR": "Set by the scoring server (and AZUREML_MODEL_DIR) to the deployed model folder.",
    "TRAINYARD_SERVING_CONFIG": "Scoring-server config as JSON for multi-worker processes (no keys, only hashes).",
    "TRAINYARD_RUN_ID": "Set by the supervisor inside a run (see RUN_ENV_VARS for the others).",
    "TRAINYARD_TEST_POSTGRES_URL": "Tests only: PostgreSQL URL for the PostgreSQL variants (CI sets it).",
}
