"""Run the team server: bootstrap the first admin, then serve with uvicorn.

With ``--workers N`` uvicorn starts N processes, each building the app from the configuration
passed in ``TRAINYARD_SERVER_CONFIG`` (JSON) — see :func:`app_from_env`.

Example::

    serve(ServerConfig(store_url="sqlite:////srv/ty/trainyard.db", artifacts=Path("/srv/ty")))
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from trainyard.server.config import ServerConfig

CONFIG_ENV = "TRAINYARD_SERVER_CONFIG"


@dataclass(frozen=True)
class Bootstrap:
    """The first admin, created on a server with no users (its token is shown once)."""

    user: str
    token: str | None


def bootstrap(config: ServerConfig) -> Bootstrap:
    """Create the schema and, on a server without users, the first admin and its token."""
    from trainyard.server.state import ServerState

    state = ServerState.open(config)
    if state.accounts.count_users():
        return Bootstrap(user="", token=None)
    admin = state.accounts.create_user("admin", is_admin=True)
    _, secret = state.accounts.create_token(admin.id, name="bootstrap")
    return Bootstrap(user=admin.name, token=secret)


def _config_to_env(config: ServerConfig) -> str:
    data: dict[str, Any] = asdict(config)
    return json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()})


def config_from_env(raw: str) -> ServerConfig:
    """The inverse of what :func:`serve` writes into ``TRAINYARD_SERVER_CONFIG``."""
    data = json.loads(raw)
    for key in ("artifacts", "homes", "tls_cert", "tls_key"):
        if data.get(key) is not None:
            data[key] = Path(data[key])
    for key in ("allowed_hosts", "allowed_origins"):
        data[key] = tuple(data.get(key) or ())
    return ServerConfig(**data)


#: glibc ``mallopt`` parameters (``malloc.h``).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _glibc_mallopt() -> Any:
    """glibc's ``mallopt`` from the C library this process runs on, or ``None`` (musl, macOS…)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def release_large_buffers() -> bool:
    """glibc only: give large blocks back to the system as soon as they are freed.

    A metric upload is a JSON body of base64 text decoded into packed arrays — megabytes that live
    for one request. glibc's default raises its mmap threshold after the first such block is freed
    and then serves the next ones from the heap, which it rarely trims, and keeps an arena per
    thread (8 per core): a server that took a few large uploads kept well over 100 MB it no longer
    used. A fixed threshold (256 KiB) keeps every large block in its own mapping, unmapped when
    freed; two arenas are plenty for a process whose threads mostly wait for the GIL. Skipped when
    the operator set ``MALLOC_*`` variables (theirs win) or the process's C library is not glibc
    (found by its symbols: ``gnu_get_libc_version`` and ``mallopt``; the parameters are glibc's).
    Returns whether it applied.
    """
    if any(k.startswith("MALLOC_") for k in os.environ):
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 256 * 1024)) and bool(mallopt(_M_ARENA_MAX, 2))


def app_from_env() -> Any:
    """The app for one uvicorn worker (``factory=True``)."""
    from trainyard.server.app import create_app

    release_large_buffers()
    return create_app(config_from_env(os.environ[CONFIG_ENV]))


def serve(config: ServerConfig, out: IO[str] | None = None) -> None:
    """Validate, bootstrap, print the URL (and a first admin's token), then serve until stopped."""
    import uvicorn

    config.validate()
    stream = out or sys.stdout
    first = bootstrap(config)
    stream.write(f"trainyard server {config.url} (store {config.store_url.split('@')[-1]})\n")
    if first.token:
        stream.write(
            f"First admin {first.user!r} created. Its token, shown only now:\n  {first.token}\n"
            f"Log in with: trainyard login {config.url} --token {first.token}\n"
        )
    stream.flush()
    os.environ[CONFIG_ENV] = _config_to_env(config)
    uvicorn.run(
        "trainyard.server.main:app_from_env",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
        ssl_keyfile=str(config.tls_key) if config.tls_key else None,
        log_level="warning",
        timeout_graceful_shutdown=30,
        proxy_headers=False,
    )
