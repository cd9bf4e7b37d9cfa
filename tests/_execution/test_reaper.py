"""The reaper's cleanup kills a stale run's process group only when it provably is the run's
(issue: nothing lost, nobody in — item 4)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from trainyard._execution import reaper
from trainyard._execution.processes import ProcessId


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process leading its own group (as a reused pid would)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    yield proc
    proc.kill()
    proc.wait()


def _runtime(ident: ProcessId) -> dict[str, object]:
    return {"script_pgid": ident.pid, "script": ident.to_dict(), "host": ident.host}


def _still_running(proc: subprocess.Popen[bytes]) -> bool:
    time.sleep(0.2)
    return proc.poll() is None


def test_the_runs_own_group_is_killed(bystander: subprocess.Popen[bytes]) -> None:
    assert reaper._kill_orphan(_runtime(ProcessId.of(bystander.pid)))
    assert bystander.wait(10) == -9


def test_a_reused_pid_is_spared(bystander: subprocess.Popen[bytes]) -> None:
    ident = ProcessId.of(bystander.pid)
    recorded = dataclasses.replace(ident, start=(ident.start or 0) - 12345)  # another process then
    assert not reaper._kill_orphan(_runtime(recorded))
    assert _still_running(bystander)


def test_a_group_recorded_on_another_machine_is_spared(
    bystander: subprocess.Popen[bytes],
) -> None:
    recorded = dataclasses.replace(ProcessId.of(bystander.pid), host="another-machine")
    assert not reaper._kill_orphan(_runtime(recorded))
    assert _still_running(bystander)


def test_a_group_recorded_before_a_reboot_is_spared(bystander: subprocess.Popen[bytes]) -> None:
    ident = ProcessId.of(bystander.pid)
    if ident.boot is None:
        pytest.skip("this kernel exposes no boot id")
    recorded = dataclasses.replace(ident, boot="00000000-0000-0000-0000-000000000000")
    assert not reaper._kill_orphan(_runtime(recorded))
    assert _still_running(bystander)


def test_a_record_without_the_process_identity_kills_nothing(
    bystander: subprocess.Popen[bytes],
) -> None:
    assert not reaper._kill_orphan({"script_pgid": bystander.pid, "host": ProcessId.of(1).host})
    assert _still_running(bystander)


def test_a_team_server_gives_interactive_clients_longer(tmp_path: object) -> None:
    from pathlib import Path

    from trainyard.core import Experiment, Workspace

    ws = Workspace.create("reap-grace", path=Path(str(tmp_path)) / "ws")
    run = Experiment(ws, "i").start_logging()
    ws.context.store.heartbeat(run.id)
    time.sleep(0.1)
    # A client cut off by the network for longer than the heartbeat timeout keeps its run ...
    assert reaper.reap_stale_runs(ws.context, 0.05, interactive_timeout=60.0) == []
    assert run.get_status() == "Running"
    # ... which the plain timeout would have failed.
    assert reaper.reap_stale_runs(ws.context, 0.05) == [run.id]
