"""``trainyard server``'s configuration: where the metadata and files live, where it listens,
and who may reach it.

Example::

    config = ServerConfig(store_url="postgresql://ty@db/trainyard", artifacts=Path("/srv/ty"))
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from trainyard.exceptions import ConfigError

#: Largest request body accepted for store calls (metric chunks included); artifact uploads stream.
DEFAULT_MAX_JSON_BYTES = 64 * 1024 * 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or name) is this machine's loopback."""
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """What a server needs; see ``trainyard server --help`` for each option."""

    store_url: str
    artifacts: Path
    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = 1
    #: ``Host`` header values accepted besides loopback names and the bind address.
    allowed_hosts: tuple[str, ...] = ()
    #: Browser origins allowed to call the API (CORS); same-origin requests always pass.
    allowed_origins: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_allow_remote: bool = False
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    #: Failed authentications allowed per client address per minute before 429.
    auth_failures_per_minute: int = 20
    #: Where runs submitted to this server execute (their supervisors' workspace homes).
    homes: Path = field(default_factory=lambda: Path("."))

    def validate(self) -> None:
        """Refuse a configuration that would expose the server unsafely."""
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1.")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("Give both --tls-cert and --tls-key, or neither.")
        if not is_loopback(self.host) and self.tls_cert is None and not self.insecure_allow_remote:
            raise ConfigError(
                f"Refusing to listen on {self.host}: a non-loopback address needs TLS "
                "(--tls-cert and --tls-key), or --insecure-allow-remote if the network in between "
                "is trusted (tokens would cross it in clear text)."
            )

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert is not None else "http"

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"


def default_data_dir() -> Path:
    """The embedded default's folder: ``$XDG_DATA_HOME/trainyard/server`` (``~/.local/share``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "trainyard" / "server"
