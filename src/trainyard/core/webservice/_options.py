"""Scoring-server options a deployment configuration carries (trainyard's, not v1's).

They reach ``python -m trainyard._serving`` unchanged: how long ``run()`` and a request body may
take, which ``Host`` names and browser origins are accepted besides loopback, whether a service with
auth off may bind beyond loopback, and how the service log rotates.

Example::

    opts = ServerOptions(run_timeout_seconds=5, allowed_hosts=["scoring.example.org"])
    cfg = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, server_options=opts)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainyard._serving.config import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_LOG_BACKUPS,
    DEFAULT_LOG_MAX_BYTES,
    DEFAULT_RUN_TIMEOUT_S,
)
from trainyard.exceptions import WebserviceException


def _seconds(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise WebserviceException(
            f"Invalid configuration, {what} must be a positive number of seconds or None "
            f"(no limit), got {value!r}."
        )
    return float(value)


def _names(values: Iterable[Any] | None, what: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise WebserviceException(f"Invalid configuration, {what} must be a list of strings.")
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value.strip() or any(ord(c) < 33 for c in value):
            raise WebserviceException(
                f"Invalid configuration, {what} holds {value!r}: each must be a non-empty string "
                "without spaces or control characters."
            )
        out.append(value.strip())
    return tuple(out)


@dataclass(frozen=True)
class ServerOptions:
    """How the scoring server behaves (see the module docstring).

    ``run_timeout_seconds``: a ``run()`` call that takes longer answers 504 (``None``: no limit).
    ``body_timeout_seconds``: a request body that takes longer to arrive answers 408.
    ``allowed_hosts`` / ``allowed_origins``: ``Host`` names and browser origins accepted besides
    loopback and the service's own (``"*"`` accepts any; a DNS-rebinding page is refused otherwise).
    ``allow_remote_without_auth``: let a service with key auth off bind beyond loopback.
    ``log_max_bytes`` / ``log_backups``: the service log rotates before it passes this size,
    keeping this many old files (``get_logs()`` reads across them).

    Example::

        ServerOptions(run_timeout_seconds=10, log_max_bytes=1 << 20, log_backups=2)
    """

    run_timeout_seconds: float | None = DEFAULT_RUN_TIMEOUT_S
    body_timeout_seconds: float | None = DEFAULT_BODY_TIMEOUT_S
    allowed_hosts: Sequence[str] = field(default=())
    allowed_origins: Sequence[str] = field(default=())
    allow_remote_without_auth: bool = False
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES
    log_backups: int = DEFAULT_LOG_BACKUPS

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "run_timeout_seconds", _seconds(self.run_timeout_seconds, "run_timeout_seconds")
        )
        object.__setattr__(
            self,
            "body_timeout_seconds",
            _seconds(self.body_timeout_seconds, "body_timeout_seconds"),
        )
        object.__setattr__(self, "allowed_hosts", _names(self.allowed_hosts, "allowed_hosts"))
        object.__setattr__(self, "allowed_origins", _names(self.allowed_origins, "allowed_origins"))
        if not isinstance(self.allow_remote_without_auth, bool):
            raise WebserviceException(
                "Invalid configuration, allow_remote_without_auth must be True or False."
            )
        size = self.log_max_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size < 1024:
            raise WebserviceException(
                f"Invalid configuration, log_max_bytes must be an integer of at least 1024, "
                f"got {size!r}."
            )
        backups = self.log_backups
        if isinstance(backups, bool) or not isinstance(backups, int) or backups < 0:
            raise WebserviceException(
                f"Invalid configuration, log_backups must be an integer of 0 or more, got {backups!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON form kept in the service record."""
        return {
            "runTimeoutSeconds": self.run_timeout_seconds,
            "bodyTimeoutSeconds": self.body_timeout_seconds,
            "allowedHosts": list(self.allowed_hosts),
            "allowedOrigins": list(self.allowed_origins),
            "allowRemoteWithoutAuth": self.allow_remote_without_auth,
            "logMaxBytes": self.log_max_bytes,
            "logBackups": self.log_backups,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ServerOptions:
        """Inverse of :meth:`to_dict`; a record without options gets the defaults."""
        if not data:
            return cls()
        return cls(
            run_timeout_seconds=data.get("runTimeoutSeconds"),
            body_timeout_seconds=data.get("bodyTimeoutSeconds"),
            allowed_hosts=tuple(data.get("allowedHosts") or ()),
            allowed_origins=tuple(data.get("allowedOrigins") or ()),
            allow_remote_without_auth=bool(data.get("allowRemoteWithoutAuth")),
            log_max_bytes=int(data.get("logMaxBytes") or DEFAULT_LOG_MAX_BYTES),
            log_backups=int(data.get("logBackups", DEFAULT_LOG_BACKUPS)),
        )

    def argv(self) -> list[str]:
        """The scoring server's command-line flags for these options (log file excluded)."""
        args = [
            "--run-timeout",
            f"{self.run_timeout_seconds or 0:g}",
            "--body-timeout",
            f"{self.body_timeout_seconds or 0:g}",
            "--log-max-bytes",
            str(self.log_max_bytes),
            "--log-backups",
            str(self.log_backups),
        ]
        for host in self.allowed_hosts:
            args += ["--allowed-host", host]
        for origin in self.allowed_origins:
            args += ["--allowed-origin", origin]
        if self.allow_remote_without_auth:
            args.append("--allow-remote-without-auth")
        return args
