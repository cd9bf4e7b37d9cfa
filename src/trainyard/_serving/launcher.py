"""Run the scoring app under uvicorn: one worker in-process, or N workers sharing one socket.

The socket is bound here (before any worker starts) so that ``port=0`` works and the chosen port is
printed as ``trainyard-serving: listening on http://HOST:PORT``. With ``workers > 1`` uvicorn's own
supervisor starts the workers from :func:`trainyard._serving.app.app_from_env`; if any of them exits with
:data:`EXIT_INIT_FAILED`, the others are stopped and :func:`serve` returns that code too.

Example::

    from trainyard._serving.launcher import serve
    code = serve(ServingConfig(entry_script="score.py"), port=5001, workers=2)
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys
from types import FrameType

from trainyard._serving.config import CONFIG_ENV_VAR, ServingConfig
from trainyard._serving.process import EXIT_INIT_FAILED, EXIT_OK, prepare_process
from trainyard.exceptions import MissingExtraError

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


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    config: ServingConfig, *, host: str = "127.0.0.1", port: int = 5001, workers: int = 1
) -> int:
    """Serve ``config`` until SIGTERM/SIGINT; return the process exit code.

    Codes: :data:`~trainyard._serving.process.EXIT_OK` after a clean shutdown,
    :data:`~trainyard._serving.process.EXIT_INIT_FAILED` when the script's import or ``init()`` failed
    (single worker: the worker process itself exits with it), :data:`EXIT_BIND_FAILED` when the address
    cannot be bound.

    Example::

        sys.exit(serve(config, port=0))
    """
    try:
        import uvicorn
        from uvicorn.supervisors import Multiprocess
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise MissingExtraError(
            "The scoring server needs uvicorn: pip install 'trainyard[serving]'"
        ) from None

    prepare_process(config)
    try:
        sock = bind_socket(host, port)
    except OSError as err:
        print(
            f"trainyard-serving: cannot listen on {host}:{port}: {err}", file=sys.stderr, flush=True
        )
        return EXIT_BIND_FAILED
    bound_port = sock.getsockname()[1]
    if not config.auth_enabled and not _is_loopback(host):
        print(
            f"trainyard-serving: warning: {host} is reachable from other machines and auth is off; "
            "anyone who can reach it can score (pass --keys-file to require a key).",
            file=sys.stderr,
            flush=True,
        )
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
