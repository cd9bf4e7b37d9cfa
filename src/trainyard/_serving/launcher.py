"""Run the scoring app under uvicorn: one worker in-process, or N workers sharing one socket.

The socket is bound here (before any worker starts) so that ``port=0`` works and the chosen port is
printed as ``trainyard-serving: listening on http://HOST:PORT``. With ``workers > 1`` uvicorn's own
supervisor starts the workers from :func:`trainyard._serving.app.app_from_env`; if any of them exits with
:data:`EXIT_INIT_FAILED`, the others are stopped and :func:`serve` returns that code too.

Before binding, the launcher refuses (:data:`~trainyard._serving.process.EXIT_USAGE`) an address other
machines can reach (``0.0.0.0``, ``::``, a non-loopback address or name) while auth is off, unless the
config says ``allow_remote_without_auth``. With ``log_file`` it first redirects its output (and so its
workers') into the size-rotated log (:mod:`trainyard._serving.logfile`), and makes sure that log is
complete before it exits. Connections get a header deadline (:mod:`trainyard._serving.protocol`).

Example::

    from trainyard._serving.launcher import serve
    code = serve(ServingConfig(entry_script="score.py"), port=5001, workers=2)
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
from types import FrameType

from trainyard._serving import protocol
from trainyard._serving.config import CONFIG_ENV_VAR, ServingConfig
from trainyard._serving.hosts import is_loopback_name
from trainyard._serving.logfile import LogRedirect
from trainyard._serving.process import EXIT_INIT_FAILED, EXIT_OK, EXIT_USAGE, prepare_process
from trainyard.exceptions import ConfigError, MissingExtraError

#: Exit code when the address cannot be bound (port in use, bad host).
EXIT_BIND_FAILED = 4

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_BACKLOG = 2048


def _stop_requested(signum: int, frame: FrameType | None) -> None:
    """Placeholder handler that uvicorn restores (and re-raises into) after a graceful stop."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket bound to ``(host, port)`` (``port=0``: the kernel picks one).

    Raises ``OSError`` if the address cannot be bound.

    Example::

        sock = bind_socket("127.0.0.1", 0)
        print(sock.getsockname()[1])
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it Nagle + delayed ACK add ~40 ms to every keep-alive response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listen at once: connections made before the workers start wait in the backlog rather than
        # being refused, so "listening on" is true as soon as it is printed.
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def exposure_error(config: ServingConfig) -> str | None:
    """Why serving ``config`` on its ``host`` is refused, or ``None`` when it is fine.

    Example::

        exposure_error(ServingConfig(entry_script="score.py", host="0.0.0.0"))   # 'refusing ...'
    """
    if config.auth_enabled or config.allow_remote_without_auth or is_loopback_name(config.host):
        return None
    return (
        f"refusing to listen on {config.host} with auth off: other machines (and any web page "
        "their browsers open) could call run(). Pass --keys-file to require a key, bind to "
        "127.0.0.1, or pass --allow-remote-without-auth if this network is trusted."
    )


def serve(
    config: ServingConfig, *, host: str | None = None, port: int = 5001, workers: int = 1
) -> int:
    """Serve ``config`` until SIGTERM/SIGINT; return the process exit code.

    ``host`` (default: ``config.host``) is the bind address. Codes:
    :data:`~trainyard._serving.process.EXIT_OK` after a clean shutdown,
    :data:`~trainyard._serving.process.EXIT_INIT_FAILED` when the script's import or ``init()`` failed
    (single worker: the worker process itself exits with it), :data:`EXIT_BIND_FAILED` when the address
    cannot be bound, :data:`~trainyard._serving.process.EXIT_USAGE` when the exposure is refused or the
    log file cannot be written.

    Example::

        sys.exit(serve(config, port=0))
    """
    if host is not None and host != config.host:
        config = dataclasses.replace(config, host=host)
    redirect = None
    if config.log_file is not None:
        try:
            redirect = LogRedirect.start(
                config.log_file, max_bytes=config.log_max_bytes, backups=config.log_backups
            )
        except ConfigError as err:
            print(f"trainyard-serving: {err}", file=sys.stderr, flush=True)
            return EXIT_USAGE
    try:
        return _serve(config, port, workers)
    finally:
        if redirect is not None:
            redirect.finish()


def _serve(config: ServingConfig, port: int, workers: int) -> int:
    host = config.host
    refusal = exposure_error(config)
    if refusal is not None:
        print(f"trainyard-serving: {refusal}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    try:
        import uvicorn
        from uvicorn.supervisors import Multiprocess
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise MissingExtraError.for_extra("serving", "The scoring server", "uvicorn") from None

    prepare_process(config)
    try:
        sock = bind_socket(host, port)
    except OSError as err:
        print(
            f"trainyard-serving: cannot listen on {host}:{port}: {err}", file=sys.stderr, flush=True
        )
        return EXIT_BIND_FAILED
    bound_port = sock.getsockname()[1]
    if not config.auth_enabled and not is_loopback_name(host):
        print(
            f"trainyard-serving: warning: {host} is reachable from other machines and auth is off "
            "(--allow-remote-without-auth); anyone who can reach it can score.",
            file=sys.stderr,
            flush=True,
        )
    protocol.configure(config.header_timeout_s)
    shown_host = f"[{host}]" if ":" in host else host
    print(
        f"trainyard-serving: listening on http://{shown_host}:{bound_port} "
        f"(service {config.service_name}, {workers} worker{'s' if workers != 1 else ''})",
        flush=True,
    )
    common = {
        "host": host,
        "port": bound_port,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "server_header": False,
        "timeout_worker_healthcheck": 30,
        "http": protocol.protocol_class(),
    }
    if workers <= 1:
        from trainyard._serving.app import create_app

        server = uvicorn.Server(uvicorn.Config(create_app(config), **common))
        # uvicorn re-raises the stop signal after its graceful shutdown, restoring the handler it found;
        # make that handler a no-op so that a requested stop ends with EXIT_OK instead of -SIGTERM.
        previous = {sig: signal.signal(sig, _stop_requested) for sig in _STOP_SIGNALS}
        try:
            server.run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return EXIT_OK

    os.environ[CONFIG_ENV_VAR] = config.to_json()
    uv_config = uvicorn.Config(
        "trainyard._serving.app:app_from_env",
        factory=True,
        workers=workers,
        **common,
    )
    supervisor = Multiprocess(uv_config, sockets=[sock])
    supervisor.run()
    if any(p.exitcode == EXIT_INIT_FAILED for p in supervisor.processes):
        return EXIT_INIT_FAILED
    return EXIT_OK
