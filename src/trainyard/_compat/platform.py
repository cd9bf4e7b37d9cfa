"""What trainyard needs from the operating system, in one place, chosen by capability.

trainyard runs on POSIX systems (Linux and macOS; tested on Linux). Everything that differs between
them lives here and is picked by what this interpreter and kernel offer, never by ``sys.platform``:

- **File locks** (:func:`lock`, :func:`unlock`, :class:`FileLock`): an exclusive ``flock`` on a
  file that is never deleted (deleting lock files races). The kernel drops it when its holder
  dies, kill -9 included, so a dead process never leaks a slot, an upload or a spool.
- **Process facts** (:func:`process_start`, :func:`process_running`, :func:`session_members`,
  :func:`boot_id`): from ``/proc`` where the kernel has one (Linux: the start time in clock ticks
  since boot, which no clock change moves; the kernel's boot id), else from psutil (macOS, the
  BSDs; the boot identity from ``sysctl kern.bootsessionuuid`` where there is one). Without either,
  every fact is "unknown" (``None``, or a ``kill(pid, 0)`` check), which callers already accept.

Importing this module checks what trainyard cannot work without — ``fcntl.flock``, sessions
(``os.setsid``) and process groups (``os.killpg``) — and raises
:class:`~trainyard.exceptions.UnsupportedPlatform` naming what is missing (native Windows: run
trainyard under WSL 2 or in a Linux container). ``import trainyard`` imports it first.

Example::

    from trainyard._compat.platform import FileLock, process_start
    with FileLock(folder / ".lock"):
        ...
    process_start(os.getpid())     # e.g. 1234567 (a stamp: compare it, do not interpret it)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from trainyard.exceptions import UnsupportedPlatform

#: What trainyard cannot run without: (module, attribute, what it is used for).
REQUIRED = (
    ("fcntl", "flock", "advisory file locks released when their holder dies"),
    ("os", "setsid", "sessions: every run and service is started in one of its own"),
    ("os", "killpg", "process groups: cancel and time limits signal a run's whole group"),
)


def missing_capabilities() -> list[str]:
    """The entries of :data:`REQUIRED` this interpreter lacks, as ``module.name (use)`` strings."""
    missing = []
    for module, name, use in REQUIRED:
        try:
            found = hasattr(__import__(module), name)
        except ImportError:
            found = False
        if not found:
            missing.append(f"{module}.{name} ({use})")
    return missing


def require_posix() -> None:
    """Raise :class:`UnsupportedPlatform` when a capability of :data:`REQUIRED` is missing."""
    missing = missing_capabilities()
    if missing:
        raise UnsupportedPlatform(
            "trainyard needs a POSIX system (Linux or macOS); this Python lacks "
            + "; ".join(missing)
            + ". On Windows, run trainyard under WSL 2 or in a Linux container.",
            missing=missing,
        )


require_posix()

import fcntl  # noqa: E402 - only once require_posix() said it is there


# ------------------------------------------------------------------------------------ file locks
class _HasFileno(Protocol):
    def fileno(self) -> int: ...


def _fd(file: int | _HasFileno) -> int:
    return file if isinstance(file, int) else file.fileno()


def lock(file: int | _HasFileno, *, blocking: bool = True) -> bool:
    """Take an exclusive lock on an open file (descriptor or file object).

    Waits for it when ``blocking``; otherwise returns ``False`` at once when another open file
    description holds it. The lock goes with the open file: closing it, or the death of the
    process, releases it.
    """
    try:
        fcntl.flock(_fd(file), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def unlock(file: int | _HasFileno) -> None:
    """Release a lock taken with :func:`lock` (the file stays open)."""
    fcntl.flock(_fd(file), fcntl.LOCK_UN)


class FileLock:
    """An exclusive lock on ``path``, a file created if missing and never deleted.

    Example::

        with FileLock(home / ".lock"):          # blocks until held
            ...
        lk = FileLock(cache / "abc.lock")
        if lk.acquire(blocking=False):
            try: ...
            finally: lk.release()
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; ``False`` when ``blocking`` is false and another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            held = lock(fd, blocking=blocking)
        except BaseException:
            os.close(fd)
            raise
        if not held:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Release the lock (no-op when not held)."""
        if self._fd is not None:
            unlock(self._fd)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


# -------------------------------------------------------------------------------- process facts
class ProcfsFacts:
    """Process facts read from ``/proc`` (Linux): exact, and unmoved by clock changes."""

    ROOT = Path("/proc")

    @classmethod
    def available(cls) -> bool:
        """Whether this kernel has a Linux-style ``/proc``."""
        return (cls.ROOT / "self" / "stat").is_file()

    def _stat(self, pid: int) -> list[str] | None:
        try:
            raw = (self.ROOT / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        # The command name (field 2) is in parentheses and may hold spaces: split after its last ')'.
        return raw.rpartition(")")[2].split()

    def start(self, pid: int) -> int | None:
        """Start time of ``pid`` in clock ticks since boot (field 22 of its ``stat``)."""
        fields = self._stat(pid)
        if fields is None or len(fields) < 20:
            return None
        try:
            return int(fields[19])  # fields[0] is field 3 (state)
        except ValueError:
            return None

    def running(self, pid: int) -> bool:
        """Whether ``pid`` exists and is not a zombie."""
        fields = self._stat(pid)
        return fields is not None and len(fields) > 0 and fields[0] not in ("Z", "X")

    def session(self, sid: int) -> list[int]:
        """Live (not zombie) processes of session ``sid``."""
        out: list[int] = []
        try:
            names = os.listdir(self.ROOT)
        except OSError:
            return out
        for name in names:
            if not name.isdigit():
                continue
            fields = self._stat(int(name))
            if fields and len(fields) > 3 and fields[3] == str(sid) and fields[0] not in ("Z", "X"):
                out.append(int(name))
        return out

    def boot_id(self) -> str | None:
        """The kernel's random boot id (new at every boot)."""
        try:
            path = self.ROOT / "sys" / "kernel" / "random" / "boot_id"
            return path.read_text(encoding="ascii").strip() or None
        except OSError:
            return None


def _session_of(pid: int) -> int | None:
    """The session of ``pid``; where the kernel hides other sessions, its process group (a
    session's leader also leads a group of the same id), ``None`` when it is gone."""
    try:
        return os.getsid(pid)
    except PermissionError:
        try:
            return os.getpgid(pid)
        except OSError:
            return None
    except OSError:
        return None


class PortableFacts:
    """Process facts from psutil (where there is no ``/proc``), or "unknown" without it.

    The start stamp is psutil's creation time in milliseconds: it is compared, never interpreted.
    """

    def _psutil(self) -> Any:
        try:
            import psutil
        except ImportError:
            return None
        return psutil

    def start(self, pid: int) -> int | None:
        """A stamp of when ``pid`` started (milliseconds since the epoch), or ``None``."""
        psutil = self._psutil()
        if psutil is None:
            return None
        try:
            return round(float(psutil.Process(pid).create_time()) * 1000)
        except (psutil.Error, OSError):
            return None

    def running(self, pid: int) -> bool:
        """Whether ``pid`` exists and is not a zombie (existence only, without psutil)."""
        psutil = self._psutil()
        if psutil is None:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                pass
            return True
        try:
            status = psutil.Process(pid).status()
        except psutil.AccessDenied:
            return True
        except (psutil.Error, OSError):
            return False
        return status not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)

    def session(self, sid: int) -> list[int]:
        """Live processes of session ``sid`` (``[]`` without psutil)."""
        psutil = self._psutil()
        if psutil is None:
            return []
        out: list[int] = []
        for proc in psutil.process_iter():
            pid = int(proc.pid)
            if _session_of(pid) == sid and self.running(pid):
                out.append(pid)
        return out

    def boot_id(self) -> str | None:
        """``sysctl kern.bootsessionuuid`` (macOS), or ``None`` where there is none."""
        import ctypes

        try:
            libc = ctypes.CDLL(None)
            sysctlbyname = libc.sysctlbyname
        except (OSError, AttributeError):
            return None
        buf = ctypes.create_string_buffer(128)
        size = ctypes.c_size_t(len(buf))
        rc = sysctlbyname(
            b"kern.bootsessionuuid", buf, ctypes.byref(size), None, ctypes.c_size_t(0)
        )
        if rc != 0:
            return None
        return buf.value.decode("ascii", errors="replace").strip() or None


Facts = ProcfsFacts | PortableFacts


@functools.cache
def facts() -> Facts:
    """The process-facts source this machine offers (``/proc`` first)."""
    return ProcfsFacts() if ProcfsFacts.available() else PortableFacts()


def process_start(pid: int) -> int | None:
    """A stamp of when ``pid`` started (equal for the same process, read by any process on this
    machine; different for a later process that reuses the pid), or ``None`` if unknown.

    Example::

        process_start(os.getpid())   # e.g. 1234567
    """
    return facts().start(pid)


def process_running(pid: int) -> bool:
    """Whether ``pid`` exists on this machine and is not a zombie."""
    return facts().running(pid)


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid`` on this machine.

    Example::

        session_members(os.getsid(0))   # [1234, 1240, …]
    """
    return facts().session(sid)


@functools.cache
def boot_id() -> str | None:
    """An identity of the current boot of this machine (pids repeat after a reboot), or ``None``."""
    return facts().boot_id()
