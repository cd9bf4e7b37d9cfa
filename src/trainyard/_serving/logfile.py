"""The service log, owned by the server and rotated by size (``--log-file``).

Why a pump process rather than a logging handler: what reaches a service log is written by many
hands: the access line, uvicorn's warnings, the entry script's ``print`` and its C libraries'
writes to fd 2, tracebacks printed just before ``os._exit``, and every worker process uvicorn
spawns. All of them write to file descriptors 1 and 2. So the launcher points fds 1 and 2 (which
the workers inherit) at a pipe, and a small helper process, started first, copies the pipe into
the log file, rotating it when the next write would pass ``max_bytes``:
``service.log`` → ``service.log.1`` → … → ``service.log.N`` (the oldest is deleted; ``N = 0``
truncates instead). Rotation happens at a line boundary whenever the data has one.

The helper ignores SIGTERM/SIGINT/SIGHUP, which stop the server's process group: it drains the pipe
until every writer has closed it, so a shutdown's last lines and an ``init()`` traceback are never
lost. :func:`finish` (called on the server's way out, including the ``init()`` failure exit) hands
the pipe back and waits for the helper to write everything before the server process ends, so that
whoever sees the server exit finds the whole log on disk.

Example::

    redirect = LogRedirect.start(Path("service.log"), max_bytes=10 << 20, backups=5)
    print("hello")          # ends up in service.log
    redirect.finish()
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

from trainyard.exceptions import ConfigError

_READ_CHUNK = 1 << 16
_PUMP_MODULE = "trainyard._serving.logfile"
_FINISH_TIMEOUT_S = 5.0


def rotated_name(path: Path, index: int) -> Path:
    """``service.log`` → ``service.log.<index>``."""
    return path.with_name(f"{path.name}.{index}")


class RotatingFile:
    """Append-only file that rotates by size; used by the pump process.

    Example::

        out = RotatingFile(Path("service.log"), max_bytes=1 << 20, backups=3)
        out.write(b"a line\\n")
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._fh: io.FileIO = io.FileIO(path, "a")
        self.size = self._fh.tell()

    def write(self, data: bytes) -> None:
        """Append ``data``, rotating first whenever it would not fit."""
        while data:
            room = self.max_bytes - self.size
            if len(data) <= room:
                self._put(data)
                return
            cut = data.rfind(b"\n", 0, room) + 1 if room > 0 else 0
            if cut == 0 and self.size == 0:
                cut = max(room, 1)  # one line longer than a whole file: split it
            if cut:
                self._put(data[:cut])
                data = data[cut:]
            self.rotate()

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = self._fh.write(view) or 0
            except OSError:  # disk full: the bytes are lost, the server must not be
                return
            self.size += written
            view = view[written:]

    def rotate(self) -> None:
        """Shift ``path.i`` to ``path.i+1`` (dropping the oldest), ``path`` to ``path.1``."""
        self._fh.close()
        try:
            if self.backups > 0:
                for i in range(self.backups - 1, 0, -1):
                    older = rotated_name(self.path, i)
                    if older.exists():
                        os.replace(older, rotated_name(self.path, i + 1))
                os.replace(self.path, rotated_name(self.path, 1))
                mode = "a"
            else:
                mode = "w"
        except OSError:
            mode = "w"  # cannot rename: truncate rather than grow without bound
        self._fh = io.FileIO(self.path, mode)
        self.size = self._fh.tell()

    def close(self) -> None:
        """Close the current file."""
        self._fh.close()


def pump(fd: int, out: RotatingFile) -> None:
    """Copy ``fd`` into ``out`` until end of file."""
    while True:
        try:
            data = os.read(fd, _READ_CHUNK)
        except InterruptedError:  # pragma: no cover - PEP 475 retries reads already
            continue
        if not data:
            return
        out.write(data)


def main(argv: list[str]) -> int:
    """``python -m trainyard._serving.logfile PATH MAX_BYTES BACKUPS``: pump stdin into PATH."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    path, max_bytes, backups = Path(argv[0]), int(argv[1]), int(argv[2])
    out = RotatingFile(path, max_bytes, backups)
    try:
        pump(0, out)
    finally:
        out.close()
    return 0


class LogRedirect:
    """This process's fds 1 and 2 going through a pipe into a rotated log (see the module docstring).

    Example::

        redirect = LogRedirect.start(Path("service.log"), max_bytes=10 << 20, backups=5)
    """

    _active: LogRedirect | None = None

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @classmethod
    def start(cls, path: Path, *, max_bytes: int, backups: int) -> LogRedirect:
        """Start the pump and point fds 1 and 2 at it. Raises :class:`ConfigError` when ``path``
        cannot be opened for appending."""
        try:
            with open(path, "ab"):
                pass
        except OSError as err:
            raise ConfigError(
                f"Cannot write the service log {path}: {err.strerror}. Give a --log-file in a "
                "folder that exists and is writable."
            ) from None
        read_end, write_end = os.pipe()
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", _PUMP_MODULE, str(path), str(max_bytes), str(backups)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                close_fds=True,
                env=env,
            )
        finally:
            os.close(read_end)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        os.close(write_end)
        redirect = cls(proc)
        LogRedirect._active = redirect
        return redirect

    def finish(self, timeout: float = _FINISH_TIMEOUT_S) -> None:
        """Stop writing into the pipe and wait (up to ``timeout``) until the pump wrote it all.

        Processes that still hold the pipe (workers, children of ``init()``) keep it open; the
        pump then goes on after ``timeout`` and ends when they do.
        """
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        if LogRedirect._active is self:
            LogRedirect._active = None


def finish_active_log(timeout: float = _FINISH_TIMEOUT_S) -> None:
    """:meth:`LogRedirect.finish` for this process's redirect, if it has one (else nothing)."""
    active = LogRedirect._active
    if active is not None:
        active.finish(timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
