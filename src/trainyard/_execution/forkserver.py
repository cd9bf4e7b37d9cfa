"""A warm fork server for trainyard's detached processes.

Starting a supervisor cold costs an interpreter start-up plus its imports (SQLAlchemy, the store,
the execution layer): most of the time from ``submit`` to a script's first line, and most of a
sweep's per-child overhead. The fork server is one long-lived process per user, interpreter and
trainyard source tree that has already imported those modules — and opened no database connection
and started no thread, so forking it is safe. :func:`try_spawn` asks it (over a Unix socket in a
0700 folder, peer credentials checked) to fork an :class:`~trainyard._execution.daemon.Entrypoint`:
the child starts a new session, points stdin at ``/dev/null`` and stdout/stderr at the entrypoint's
log, takes the caller's environment and working folder, reseeds ``random`` and calls the module's
``main(argv)``. When no server answers, :func:`try_spawn` starts one in the background and returns
``None`` — that spawn starts cold, the next ones start warm.

The server exits after ``TRAINYARD_FORKSERVER_IDLE_SECONDS`` (default 600) without a request, or
when the trainyard source it loaded changes (the socket name carries a stamp of the tree, so a
changed tree simply gets a new server). ``TRAINYARD_FORKSERVER=0`` turns it off.

Example::

    pid = try_spawn(entrypoint, env, cwd)     # None: start it cold yourself
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard._compat.platform import lock as lock_file

if TYPE_CHECKING:
    from trainyard._execution.daemon import Entrypoint

#: Modules the server imports before it serves: everything a supervisor (and a sweep controller)
#: imports on its way to starting the script, lazily imported ones included.
PRELOAD = (
    "sqlite3",
    "sqlalchemy.dialects.sqlite",
    "packaging.requirements",
    "packaging.specifiers",
    "packaging.tags",
    "trainyard._context",
    "trainyard._store.sql.store",
    "trainyard._store.artifacts",
    "trainyard._execution.supervisor",
    "trainyard._execution.snapshot",
    "trainyard._execution.reaper",
    "trainyard._execution.inputs",
    "trainyard._execution.targets",
    "trainyard._execution.slots",
    "trainyard._execution.prepare",
    "trainyard._execution.environments.spec",
    "trainyard._execution.environments.builder",
    "trainyard.core.environment",
    "trainyard.train.hyperdrive._controller",
)
#: Imported when installed (a PostgreSQL workspace's supervisor needs them).
OPTIONAL_PRELOAD = ("psycopg", "sqlalchemy.dialects.postgresql.psycopg")
_MODULE = "trainyard._execution.forkserver"
_CONNECT_TIMEOUT_S = 2.0
_MAX_REQUEST = 4 << 20


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether spawns may use a fork server (``TRAINYARD_FORKSERVER``, default on)."""
    from trainyard.settings import load_settings

    try:
        wanted = load_settings(env).forkserver
    except Exception:
        return False
    return wanted and hasattr(os, "fork") and hasattr(socket, "AF_UNIX")


@functools.lru_cache(maxsize=1)
def _source_stamp() -> str:
    """A stamp of the loaded trainyard tree (paths, sizes, mtimes): a changed tree → new server."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(f"{sys.executable}\0{sys.version}\0{root}".encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                digest.update(f"{dirpath}/{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


def socket_path(stamp: str | None = None) -> Path:
    """Where this user's server for this interpreter and tree listens."""
    folder = Path(tempfile.gettempdir()) / f"trainyard-{os.getuid()}"
    return folder / f"fs-{stamp or _source_stamp()}.sock"


def _private_folder(path: Path) -> bool:
    """Create ``path`` 0700, or accept it only if this user owns it and nobody else can enter."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()
    return (
        path.is_dir()
        and not path.is_symlink()
        and st.st_uid == os.getuid()
        and (st.st_mode & 0o077) == 0
    )


# ------------------------------------------------------------------------------ client
def try_spawn(entrypoint: Entrypoint, env: Mapping[str, str], cwd: Path) -> int | None:
    """The pid of ``entrypoint`` forked by the running server, or ``None`` (start it cold).

    When no server runs, one is started in the background for the next spawns.
    """
    if not enabled(env):
        return None
    try:
        path = socket_path()
        if not _private_folder(path.parent):
            return None
    except OSError:
        return None
    request = {
        "module": entrypoint.module,
        "argv": ["--workspace", str(entrypoint.home), *entrypoint.args],
        "log": str(entrypoint.log),
        "cwd": str(cwd),
        "env": dict(env),
    }
    try:
        return _ask(path, request)
    except (FileNotFoundError, ConnectionRefusedError):
        _start_server(path, env)
        return None
    except (OSError, ValueError):
        return None


def _ask(path: Path, request: dict[str, Any]) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_CONNECT_TIMEOUT_S)
        sock.connect(str(path))
        _send(sock, request)
        reply = _recv(sock)
    if not isinstance(reply, dict) or not isinstance(reply.get("pid"), int):
        raise ValueError(f"fork server: bad reply {reply!r}")
    return int(reply["pid"])


def _start_server(path: Path, env: Mapping[str, str]) -> None:
    with contextlib.suppress(OSError):
        subprocess.Popen(
            [sys.executable, "-m", _MODULE, "--socket", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env={k: v for k, v in env.items() if not k.startswith(("TRAINYARD_RUN", "AZUREML_"))},
        )


def _send(sock: socket.socket, obj: Any) -> None:
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack("!I", len(data)) + data)


def _recv(sock: socket.socket) -> Any:
    head = _read_exact(sock, 4)
    (size,) = struct.unpack("!I", head)
    if size > _MAX_REQUEST:
        raise ValueError("fork server: message too large")
    return json.loads(_read_exact(sock, size))


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("fork server: connection closed")
        buf += chunk
    return bytes(buf)


# ------------------------------------------------------------------------------ server
def _peer_is_me(conn: socket.socket) -> bool:
    cred = getattr(socket, "SO_PEERCRED", None)
    if cred is None:
        return True  # the 0700 folder already limits who can connect
    raw = conn.getsockopt(socket.SOL_SOCKET, cred, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return bool(uid == os.getuid())


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the entrypoint; never returns."""
    rc = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, 65536)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request["env"].items()})
        import random

        random.seed()
        module = str(request["module"])
        argv = [str(a) for a in request["argv"]]
        sys.argv = [module, *argv]
        rc = int(importlib.import_module(module).main(argv) or 0)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(rc)


def serve(path: Path, idle_seconds: float) -> int:
    """Preload, listen on ``path`` and fork one child per request until idle; returns 0."""
    if not _private_folder(path.parent):
        return 2
    lock = open(path.with_suffix(".lock"), "a+")  # noqa: SIM115 - held for the server's life
    if not lock_file(lock, blocking=False):
        lock.close()
        return 0  # another server for this tree is already running
    for name in PRELOAD:
        importlib.import_module(name)
    for name in OPTIONAL_PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o600)
    server.listen(64)
    server.settimeout(idle_seconds)
    # Children are reaped by the kernel; each resets this before it runs its entrypoint.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    path.with_suffix(".pid").write_text(str(os.getpid()))
    try:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                return 0
            with conn:
                try:
                    conn.settimeout(_CONNECT_TIMEOUT_S)
                    if not _peer_is_me(conn):
                        continue
                    request = _recv(conn)
                    pid = os.fork()
                    if pid == 0:
                        server.close()
                        conn.close()
                        _child(request)
                    _send(conn, {"pid": pid})
                except (OSError, ValueError, KeyError, TypeError):
                    continue
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            path.with_suffix(".pid").unlink()
        server.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m trainyard._execution.forkserver --socket PATH``."""
    import argparse

    parser = argparse.ArgumentParser(prog="trainyard-forkserver")
    parser.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    from trainyard.settings import load_settings

    return serve(Path(args.socket), load_settings().forkserver_idle_seconds)


if __name__ == "__main__":
    sys.exit(main())
