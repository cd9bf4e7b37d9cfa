"""The platform module against real processes: locks between processes, process facts, the check
that fails ``import trainyard`` where trainyard cannot run.

Both process-fact sources run here: ``/proc`` (what Linux uses) and psutil (what a system without
``/proc`` uses), so the fallback is exercised on every run, not only on macOS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from trainyard._compat import platform
from trainyard._compat.platform import FileLock, PortableFacts, ProcfsFacts, lock, unlock
from trainyard.exceptions import UnsupportedPlatform

SRC = Path(__file__).resolve().parents[2] / "src"

#: Holds an exclusive lock on argv[1] until its stdin closes (or it is killed).
HOLDER = """
import sys
from pathlib import Path
from trainyard._compat.platform import FileLock
lk = FileLock(Path(sys.argv[1]))
assert lk.acquire(blocking=False), "the lock was already held"
print("held", flush=True)
sys.stdin.read()
"""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    path = tmp_path / "x.lock"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    yield proc, path
    if proc.poll() is None:
        proc.kill()
    proc.wait()


# ---------------------------------------------------------------------------------- file locks
def test_a_lock_held_by_another_process_is_refused_until_it_lets_go(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, path = holder
    mine = FileLock(path)
    assert mine.acquire(blocking=False) is False
    assert not mine.held
    assert proc.stdin is not None
    proc.stdin.close()  # the holder exits normally
    proc.wait()
    assert mine.acquire(blocking=False) is True
    mine.release()
    assert path.exists(), "a lock file is never deleted"


def test_the_kernel_releases_the_lock_of_a_holder_killed_with_sigkill(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, path = holder
    assert FileLock(path).acquire(blocking=False) is False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with FileLock(path) as mine:
        assert mine.held


def test_a_blocking_acquire_waits_for_the_holder(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, path = holder
    mine = FileLock(path)
    got = threading.Event()

    def take() -> None:
        mine.acquire()
        got.set()

    waiter = threading.Thread(target=take, daemon=True)
    waiter.start()
    waiter.join(0.3)
    assert not got.is_set(), "acquired while another process held the lock"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    waiter.join(60)
    assert got.is_set()
    mine.release()


def test_lock_and_unlock_work_on_an_open_data_file_and_keep_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "data.part"
    path.write_bytes(b"kept")
    with open(path, "r+b") as first, open(path, "r+b") as second:
        assert lock(first, blocking=False)
        assert not lock(second.fileno(), blocking=False), "one open file description holds it"
        unlock(first)
        assert lock(second, blocking=False)
        unlock(second)
    assert path.read_bytes() == b"kept"


# ------------------------------------------------------------------------------- process facts
SOURCES = [pytest.param(ProcfsFacts(), id="procfs"), pytest.param(PortableFacts(), id="psutil")]


@pytest.fixture
def family() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A real child process in a session of its own, and the pid of its child (same session)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', "
            "'import sys; sys.stdin.read()'], stdin=subprocess.PIPE); print(c.pid, flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    yield proc, int(proc.stdout.readline())
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_procfs_is_what_this_linux_machine_uses() -> None:
    assert ProcfsFacts.available()
    assert isinstance(platform.facts(), ProcfsFacts)


@pytest.fixture
def child(family: tuple[subprocess.Popen[bytes], int]) -> subprocess.Popen[bytes]:
    return family[0]


def _eventually(check: Callable[[], bool]) -> bool:
    """Whether ``check`` holds within a minute (a bound for a kernel that is slow to finish a
    kill, not a measured time)."""
    deadline = time.monotonic() + 60
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("facts", SOURCES)
def test_start_stamp_of_a_real_child_is_stable_and_gone_with_it(
    facts: ProcfsFacts | PortableFacts, child: subprocess.Popen[bytes]
) -> None:
    first = facts.start(child.pid)
    assert isinstance(first, int)
    assert facts.start(child.pid) == first
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert facts.start(child.pid) is None


def test_procfs_start_stamp_is_clock_ticks_since_boot(child: subprocess.Popen[bytes]) -> None:
    ticks = ProcfsFacts().start(child.pid)
    assert ticks is not None
    since_boot = psutil.Process(child.pid).create_time() - psutil.boot_time()
    assert ticks == round(since_boot * os.sysconf("SC_CLK_TCK"))


@pytest.mark.parametrize("facts", SOURCES)
def test_a_zombie_is_not_running(
    facts: ProcfsFacts | PortableFacts, child: subprocess.Popen[bytes]
) -> None:
    assert facts.running(child.pid)
    os.killpg(child.pid, signal.SIGKILL)
    # Wait until it has exited without reaping it: it stays a zombie until child.wait().
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert not facts.running(child.pid)
    child.wait()
    assert not facts.running(child.pid)


@pytest.mark.parametrize("facts", SOURCES)
def test_session_members_of_a_real_child_started_in_a_new_session(
    facts: ProcfsFacts | PortableFacts, family: tuple[subprocess.Popen[bytes], int]
) -> None:
    child, grandchild = family
    members = facts.session(child.pid)
    assert sorted(members) == sorted([child.pid, grandchild])
    assert os.getpid() not in members
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    # The grandchild got the group's SIGKILL too; once it is dead the session is empty.
    assert _eventually(lambda: not facts.running(grandchild))
    assert facts.session(child.pid) == []


def test_boot_identity_is_the_kernels_boot_id() -> None:
    boot = ProcfsFacts().boot_id()
    assert boot == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert platform.boot_id() == boot
    # sysctl kern.bootsessionuuid is macOS's: elsewhere the portable source says "unknown".
    assert PortableFacts().boot_id() is None or isinstance(PortableFacts().boot_id(), str)


def test_own_process_facts_through_the_module_functions() -> None:
    me = os.getpid()
    assert platform.process_start(me) == ProcfsFacts().start(me)
    assert platform.process_running(me)
    assert me in platform.session_members(os.getsid(0))


# ------------------------------------------------------------------------ unsupported platform
#: Imports trainyard in an interpreter that lacks what native Windows lacks.
WITHOUT_POSIX = """
import os, sys
del os.killpg, os.setsid
sys.modules["fcntl"] = None  # import fcntl -> ImportError
try:
    import trainyard
except ImportError as err:
    from trainyard.exceptions import UnsupportedPlatform
    print(type(err).__name__, isinstance(err, UnsupportedPlatform), err.details["missing"])
    print(err)
else:
    print("imported")
"""


def test_import_trainyard_fails_clearly_without_flock_sessions_and_groups() -> None:
    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_POSIX],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    ).stdout
    first, message = out.splitlines()[:2]
    assert first.startswith("UnsupportedPlatform True")
    for name in ("fcntl.flock", "os.setsid", "os.killpg"):
        assert name in first and name in message
    assert "WSL" in message


def test_missing_capabilities_is_empty_here() -> None:
    assert platform.missing_capabilities() == []
    platform.require_posix()  # does not raise
    assert issubclass(UnsupportedPlatform, ImportError)
