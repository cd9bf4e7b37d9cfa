"""The supervisor's wait on its script: exit codes as ``Popen`` reports them, ``None`` while running."""

from __future__ import annotations

import signal
import subprocess
import sys

from trainyard._execution.supervisor import _ExitWaiter


def _start(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_running_then_exit_code() -> None:
    proc = _start("import sys, time; time.sleep(0.5); sys.exit(3)")
    waiter = _ExitWaiter(proc)
    try:
        assert waiter.wait(0.01) is None
        rc = None
        for _ in range(300):
            rc = waiter.wait(0.1)
            if rc is not None:
                break
        assert rc == 3
        assert proc.returncode == 3
    finally:
        waiter.close()
        proc.kill()
        proc.wait()


def test_killed_by_a_signal_is_negative() -> None:
    proc = _start("import time; time.sleep(60)")
    waiter = _ExitWaiter(proc)
    try:
        proc.send_signal(signal.SIGKILL)
        rc = None
        for _ in range(300):
            rc = waiter.wait(0.1)
            if rc is not None:
                break
        assert rc == -signal.SIGKILL
    finally:
        waiter.close()
        waiter.close()  # closing twice is harmless


def test_already_reaped_process_falls_back_to_popen() -> None:
    proc = _start("pass")
    proc.wait()
    waiter = _ExitWaiter(proc)  # no pidfd for a reaped pid: Popen.wait answers
    try:
        assert waiter.wait(0.1) == 0
    finally:
        waiter.close()
