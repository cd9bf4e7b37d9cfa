"""Process facts and signals for service processes: liveness (with pid-reuse and zombie checks), stop.

A service's scoring server runs in its own session (``start_new_session=True``), so its process group
id is its pid and a signal to the group also reaches its uvicorn workers. A pid is only trusted
together with the process start time read when it was recorded (``trainyard._compat.platform``), so a pid
reused by another program is never taken for the service (or signalled).

Example::

    ident = ProcessId.of(proc.pid)
    ident.alive()                   # True while it runs (False once it is a zombie)
    stop_process(ident, grace_s=10)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any

from trainyard._compat.platform import boot_id, process_running, process_start
from trainyard._compat.platform import session_members as session_members

_POLL_S = 0.02

_BOOT = boot_id()


def start_ticks(pid: int) -> int | None:
    """A stamp of when ``pid`` started, or ``None`` if unknown (see
    :func:`trainyard._compat.platform.process_start`: clock ticks since boot where there is a
    ``/proc``).

    Example::

        start_ticks(os.getpid())   # e.g. 1234567
    """
    return process_start(pid)


def signal_session(sid: int, sig: int) -> int:
    """Send ``sig`` to every process of session ``sid``; how many received it."""
    sent = 0
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            sent += 1
    return sent


@dataclass(frozen=True)
class ProcessId:
    """A process on this machine: pid, its start time and the host it was recorded on.

    Example::

        ident = ProcessId.of(1234)
        ProcessId.from_dict(ident.to_dict()) == ident   # True
    """

    pid: int
    start: int | None
    host: str
    #: The kernel's boot id when recorded: after a reboot, pids and start times repeat.
    boot: str | None = None

    @staticmethod
    def of(pid: int) -> ProcessId:
        """Identify the running process ``pid`` (start time read now)."""
        return ProcessId(pid=pid, start=start_ticks(pid), host=socket.gethostname(), boot=_BOOT)

    @staticmethod
    def from_dict(data: Any) -> ProcessId | None:
        """Inverse of :meth:`to_dict`; ``None`` for a missing or malformed value."""
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
            return None
        start = data.get("start")
        boot = data.get("boot")
        return ProcessId(
            pid=int(data["pid"]),
            start=start if isinstance(start, int) else None,
            host=str(data.get("host") or ""),
            boot=boot if isinstance(boot, str) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the service record."""
        return {"pid": self.pid, "start": self.start, "host": self.host, "boot": self.boot}

    @property
    def before_reboot(self) -> bool:
        """Recorded on this host before it last booted: the process is gone, its pid means
        nothing now."""
        return (
            self.host == socket.gethostname()
            and self.boot is not None
            and _BOOT is not None
            and self.boot != _BOOT
        )

    @property
    def local(self) -> bool:
        """Whether the process was recorded on this machine (only then can it be checked)."""
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """True while the process runs; False once it exited, is a zombie, or the pid was reused.

        A process recorded on another host is reported alive (it cannot be checked from here).
        """
        if self.before_reboot:
            return False
        if not self.local:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        if not process_running(self.pid):
            return False
        return self.start is None or start_ticks(self.pid) == self.start

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the process group led by this process; whether anything received it.

        Nothing is sent when the pid now belongs to another program (a reused pid). When no process
        has the pid any more, the group can only hold this process's orphans: Linux never hands out
        a pid that is still some group's id.
        """
        if not self.local or self.before_reboot:
            return False
        current = start_ticks(self.pid)
        if current is not None and self.start is not None and current != self.start:
            return False
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def signal_session(self, sig: int) -> bool:
        """Send ``sig`` to every process of the session this process leads (an MPI run's ranks
        have groups of their own in it), with the same checks as :meth:`signal_group`."""
        if not self.local or self.before_reboot:
            return False
        current = start_ticks(self.pid)
        if current is not None and self.start is not None and current != self.start:
            return False
        return signal_session(self.pid, sig) > 0


def wait_gone(ident: ProcessId, timeout_s: float) -> bool:
    """Poll until ``ident`` is no longer alive or ``timeout_s`` passed; whether it is gone.

    Example::

        wait_gone(ident, 5.0)
    """
    deadline = time.monotonic() + timeout_s
    while ident.alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def stop_process(ident: ProcessId, grace_s: float) -> None:
    """Stop a service process and its workers: SIGTERM to its group, SIGKILL after ``grace_s``.

    uvicorn finishes the requests in flight on SIGTERM. The group gets SIGKILL at the end in any
    case, so workers orphaned by a killed supervisor never outlive it. Processes on another host
    are left alone.

    Example::

        stop_process(ProcessId.of(pid), grace_s=10)
    """
    if not ident.local:
        return
    if ident.alive():
        if not ident.signal_group(signal.SIGTERM):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(ident.pid, signal.SIGTERM)
        wait_gone(ident, grace_s)
    if ident.alive():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(ident.pid, signal.SIGKILL)
        wait_gone(ident, 5.0)
    # Workers left over from a supervisor that died (kill -9) still carry its group id.
    ident.signal_group(signal.SIGKILL)


class ExitWatcher:
    """Wait until any of several local processes exits, or a timeout passes.

    Where the kernel offers process file descriptors (``os.pidfd_open``, Linux 5.3+), a wait wakes
    the moment a watched process ends and costs nothing while it waits; elsewhere it sleeps the
    timeout (callers poll). A sweep controller watches its children's supervisors, so a freed slot
    is seen at once instead of at the next poll.

    Example::

        watcher = ExitWatcher()
        watcher.watch("run-1", ProcessId.of(pid))
        watcher.wait(0.1)          # returns early when pid exits
        watcher.close()
    """

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def watch(self, key: str, ident: ProcessId | None) -> None:
        """Watch ``ident`` under ``key`` (ignored when it is remote, gone or already watched)."""
        opener = getattr(os, "pidfd_open", None)
        if key in self._fds or ident is None or opener is None or not ident.alive():
            return
        try:
            fd = opener(ident.pid)
        except OSError:
            return
        if not ident.alive():  # the pid was reused between the check and the open
            os.close(fd)
            return
        self._fds[key] = fd

    def unwatch(self, key: str) -> None:
        """Stop watching ``key``."""
        fd = self._fds.pop(key, None)
        if fd is not None:
            os.close(fd)

    def wait(self, timeout: float) -> None:
        """Return when a watched process exits or after ``timeout`` seconds."""
        if not self._fds:
            time.sleep(timeout)
            return
        import select

        ready, _, _ = select.select(list(self._fds.values()), [], [], timeout)
        for key, fd in list(self._fds.items()):
            if fd in ready:
                self.unwatch(key)

    def close(self) -> None:
        """Stop watching everything."""
        for key in list(self._fds):
            self.unwatch(key)
