"""What one scoring service needs to know: :class:`ServingConfig`, its wire form and the variable names.

The config travels from the launcher to every worker process as JSON in :data:`CONFIG_ENV_VAR`. It never
holds a plain key: only SHA-256 hashes (or the path of a keys file holding them), so neither argv nor the
process environment carries a secret.

Example::

    from trainyard._serving.config import ServingConfig
    cfg = ServingConfig(entry_script="score.py", source_directory="app", model_dir="models/m/1")
    assert ServingConfig.from_json(cfg.to_json()) == cfg
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from trainyard._serving.auth import is_key_hash
from trainyard.exceptions import ConfigError

#: trainyard's model-directory variable (aml-reference §9.6), set before the entry script is imported.
MODEL_DIR_ENV_VAR = "TRAINYARD_MODEL_DIR"
#: v1's name for the same folder; unmodified v1 scoring scripts read this one.
AZUREML_MODEL_DIR_ENV_VAR = "AZUREML_MODEL_DIR"
#: JSON form of :class:`ServingConfig`, set by the launcher for ``app_from_env`` in each worker.
CONFIG_ENV_VAR = "TRAINYARD_SERVING_CONFIG"

#: Default cap on a ``POST /score`` body.
DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: Default service name (shown as the OpenAPI title).
DEFAULT_SERVICE_NAME = "trainyard-service"
#: Seconds a client has to send a request's headers once it connected or started a request.
DEFAULT_HEADER_TIMEOUT_S = 10.0
#: Seconds a client has to send a ``POST /score`` body once its headers arrived.
DEFAULT_BODY_TIMEOUT_S = 30.0
#: Seconds ``run()`` may take (v1's ``scoring_timeout_ms`` default is 60,000).
DEFAULT_RUN_TIMEOUT_S = 60.0
#: The service log is rotated when it would pass this size (with ``log_file``).
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
#: Rotated service logs kept (``service.log.1`` … ``service.log.N``).
DEFAULT_LOG_BACKUPS = 5


def _absolute(path: str | os.PathLike[str] | None) -> Path | None:
    return None if path is None else Path(os.path.abspath(os.fspath(path)))


def resolve_entry_script(
    entry_script: str | os.PathLike[str], source_directory: Path | None
) -> Path:
    """Absolute path of the entry script.

    A relative ``entry_script`` is relative to ``source_directory`` when one is given (v1's
    ``InferenceConfig`` rule); if that file does not exist but the path exists relative to the current
    directory, that one is used. Without a source directory it is relative to the current directory.

    Example::

        resolve_entry_script("score.py", Path("/srv/app"))  # Path('/srv/app/score.py')
    """
    path = Path(entry_script)
    if path.is_absolute():
        return Path(os.path.abspath(path))
    if source_directory is not None:
        inside = source_directory / path
        if inside.exists() or not path.exists():
            return Path(os.path.abspath(inside))
    return Path(os.path.abspath(path))


def _names(values: tuple[str, ...] | list[str], what: str) -> tuple[str, ...]:
    out = []
    for raw in values:
        name = str(raw).strip().lower()
        if not name or any(c.isspace() or not c.isprintable() or c in "/@" for c in name):
            raise ConfigError(
                f"{what}: {raw!r} is not a host name or address (give a name such as "
                "scoring.internal, .example.com for every subdomain, or * for any)."
            )
        out.append(name)
    return tuple(out)


def _origins(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    out = []
    for raw in values:
        origin = str(raw).strip().lower().rstrip("/")
        scheme, sep, authority = origin.partition("://")
        ok = origin in ("*", "null") or (
            sep and scheme in ("http", "https") and authority and "/" not in authority
        )
        if not ok:
            raise ConfigError(
                f"allowed_origins: {raw!r} is not an origin; give scheme://host[:port] "
                "(e.g. https://app.example.com), or * for any."
            )
        out.append(origin)
    return tuple(out)


@dataclass(frozen=True)
class ServingConfig:
    """Everything one scoring service needs; paths are made absolute at construction.

    ``key_hashes`` are lowercase hex SHA-256 digests of the accepted keys (see
    :func:`trainyard._serving.auth.hash_key`). With ``keys_file`` set, the accepted hashes are read from
    that file instead and re-read when it changes, so a key can be regenerated without a restart.
    ``auth_enabled`` needs at least one of the two. ``run_concurrency`` bounds how many ``run()`` calls one
    worker executes at a time (1, the default, is what v1 scripts assume).

    Exposure: ``host`` is the bind address. Requests must name an accepted ``Host`` (loopback, ``host``,
    or one of ``allowed_hosts``; ``"*"``: any) and, from browsers, come from the service's own origin or
    one of ``allowed_origins`` (``"*"``: any); see :mod:`trainyard._serving.hosts`. Binding to anything
    but loopback with auth off is refused unless ``allow_remote_without_auth``.

    Timeouts (seconds; ``None``: no limit): ``header_timeout_s`` for a request's headers,
    ``body_timeout_s`` for a ``POST /score`` body, ``run_timeout_s`` for ``run()``.

    Log: with ``log_file``, the server writes its stdout and stderr (and its workers') to that file,
    rotated at ``log_max_bytes`` with ``log_backups`` old files kept (see
    :mod:`trainyard._serving.logfile`).

    Example::

        ServingConfig(entry_script="score.py", source_directory="app", auth_enabled=True,
                      key_hashes=(hash_key(primary), hash_key(secondary)))
    """

    entry_script: Path
    source_directory: Path | None = None
    model_dir: Path | None = None
    key_hashes: tuple[str, ...] = ()
    keys_file: Path | None = None
    auth_enabled: bool = False
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    service_name: str = DEFAULT_SERVICE_NAME
    run_concurrency: int = 1
    enable_docs: bool = False
    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    allow_remote_without_auth: bool = False
    header_timeout_s: float | None = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float | None = DEFAULT_BODY_TIMEOUT_S
    run_timeout_s: float | None = DEFAULT_RUN_TIMEOUT_S
    log_file: Path | None = None
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES
    log_backups: int = DEFAULT_LOG_BACKUPS

    def __post_init__(self) -> None:
        source = _absolute(self.source_directory)
        object.__setattr__(self, "source_directory", source)
        object.__setattr__(self, "entry_script", resolve_entry_script(self.entry_script, source))
        object.__setattr__(self, "model_dir", _absolute(self.model_dir))
        object.__setattr__(self, "keys_file", _absolute(self.keys_file))
        hashes = tuple(str(h).strip().lower() for h in self.key_hashes)
        bad = [h for h in hashes if not is_key_hash(h)]
        if bad:
            raise ConfigError(
                "key_hashes must be hex SHA-256 digests of the keys (use trainyard._serving.auth.hash_key), "
                f"got {len(bad)} malformed value(s)."
            )
        object.__setattr__(self, "key_hashes", hashes)
        if self.auth_enabled and not hashes and self.keys_file is None:
            raise ConfigError("auth_enabled needs key_hashes or a keys_file; none was given.")
        if not isinstance(self.max_request_bytes, int) or self.max_request_bytes < 1:
            raise ConfigError(
                f"max_request_bytes must be a positive integer, got {self.max_request_bytes!r}."
            )
        if not isinstance(self.run_concurrency, int) or self.run_concurrency < 1:
            raise ConfigError(
                f"run_concurrency must be a positive integer, got {self.run_concurrency!r}."
            )
        object.__setattr__(self, "log_file", _absolute(self.log_file))
        object.__setattr__(self, "allowed_hosts", _names(self.allowed_hosts, "allowed_hosts"))
        object.__setattr__(self, "allowed_origins", _origins(self.allowed_origins))
        for name in ("header_timeout_s", "body_timeout_s", "run_timeout_s"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
            ):
                raise ConfigError(
                    f"{name} must be a positive number of seconds or None (no limit), got {value!r}."
                )
        if not isinstance(self.log_max_bytes, int) or self.log_max_bytes < 1024:
            raise ConfigError(f"log_max_bytes must be at least 1024, got {self.log_max_bytes!r}.")
        if not isinstance(self.log_backups, int) or self.log_backups < 0:
            raise ConfigError(f"log_backups must be 0 or more, got {self.log_backups!r}.")

    @property
    def app_directory(self) -> Path:
        """The folder the service runs in: ``source_directory``, else the entry script's folder."""
        return self.source_directory or self.entry_script.parent

    def to_json(self) -> str:
        """Wire form for :data:`CONFIG_ENV_VAR` (hashes only, never a key)."""
        return json.dumps(
            {
                "entry_script": str(self.entry_script),
                "source_directory": None
                if self.source_directory is None
                else str(self.source_directory),
                "model_dir": None if self.model_dir is None else str(self.model_dir),
                "key_hashes": list(self.key_hashes),
                "keys_file": None if self.keys_file is None else str(self.keys_file),
                "auth_enabled": self.auth_enabled,
                "max_request_bytes": self.max_request_bytes,
                "service_name": self.service_name,
                "run_concurrency": self.run_concurrency,
                "enable_docs": self.enable_docs,
                "host": self.host,
                "allowed_hosts": list(self.allowed_hosts),
                "allowed_origins": list(self.allowed_origins),
                "allow_remote_without_auth": self.allow_remote_without_auth,
                "header_timeout_s": self.header_timeout_s,
                "body_timeout_s": self.body_timeout_s,
                "run_timeout_s": self.run_timeout_s,
                "log_file": None if self.log_file is None else str(self.log_file),
                "log_max_bytes": self.log_max_bytes,
                "log_backups": self.log_backups,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> ServingConfig:
        """Inverse of :meth:`to_json`; raises :class:`ConfigError` on malformed input."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            for key in ("key_hashes", "allowed_hosts", "allowed_origins"):
                data[key] = tuple(data.get(key) or ())
            return cls(**data)
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"{CONFIG_ENV_VAR} does not hold a valid serving config: {err}"
            ) from None
