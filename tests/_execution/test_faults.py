"""Faults, for real: cancel, time limits, kill -9 of the supervisor or the script, SIGTERM, and the
submitting process going away.

Scripts record their process ids in a file (written atomically) so the test can signal them and
check, through ``/proc``, that nothing they started is left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trainyard.core import Environment, Experiment, Run, ScriptRun, ScriptRunConfig, Workspace
from trainyard.core.runconfig import RunConfiguration
from trainyard.testing.fixtures import unique_name

TERMINAL = {"Completed", "Failed", "Canceled"}

#: Written into scripts: record pids atomically as JSON.
_WRITE_PIDS = """
def write_pids(path, **pids):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(pids, fh)
    os.replace(tmp, path)
"""


def _workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, timeout: str) -> Workspace:
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_SECONDS", "0.3")
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_TIMEOUT", timeout)
    monkeypatch.setenv("TRAINYARD_CANCEL_GRACE_SECONDS", "2")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.1")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.5")
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws")


def submit(experiment: Experiment, config: ScriptRunConfig) -> ScriptRun:
    """``experiment.submit(config)``, typed as the ``ScriptRun`` it returns."""
    run = experiment.submit(config)
    assert isinstance(run, ScriptRun)
    return run


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Workspace:
    """Fast heartbeats, a short cancel grace, the default (generous) heartbeat timeout."""
    return _workspace(monkeypatch, tmp_path, "20")


@pytest.fixture
def live_ws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Workspace:
    """Like ``ws`` with a short heartbeat timeout, so a lost supervisor is noticed in seconds."""
    return _workspace(monkeypatch, tmp_path, "4")


def source(tmp_path: Path, body: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text("import json, os\n" + _WRITE_PIDS + textwrap.dedent(body))
    return src


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def wait_terminal(run: Run, timeout: float = 60.0) -> str:
    status: str = wait_until(
        lambda: (s := run.get_status()) in TERMINAL and s, timeout, f"run {run.id} to finish"
    )
    return status


def read_pids(path: Path, run: Run) -> dict[str, int]:
    """The pids the run's script wrote; on a timeout the failure shows where the run got stuck."""
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline:
            live = run.experiment.workspace.path / "runs" / run.id / "live" / "system_logs"
            logs = {p.name: p.read_text()[-2000:] for p in live.glob("*.txt")}
            pytest.fail(f"{path.name} not written in 60 s: {run.get_details()!r}\n{logs}")
        time.sleep(0.05)
    pids: dict[str, int] = json.loads(path.read_text())
    return pids


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for a parent to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def supervisor_pid(run: Run) -> int:
    """The pid of the run's supervisor process (it records itself in the run's runtime)."""
    ident = run.get_info().runtime.get("supervisor") or {}
    if not isinstance(ident.get("pid"), int):
        raise AssertionError(f"no supervisor process recorded for {run.id}")
    return int(ident["pid"])


def history(run: Run) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = run.get_details()["statusHistory"]
    return events


# ---------------------------------------------------------------------------------------------
# cancel


def test_cancel_kills_the_script_and_its_children(ws: Workspace, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    src = source(
        tmp_path,
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        write_pids({str(pids_file)!r}, script=os.getpid(), child=child.pid)
        print("working", flush=True)
        time.sleep(300)
        """,
    )
    run = submit(Experiment(ws, "cancel"), ScriptRunConfig(src, "train.py"))
    pids = read_pids(pids_file, run)
    assert alive(pids["script"]) and alive(pids["child"])
    assert run.get_status() == "Running"

    assert run.cancel() is True
    assert run.get_status() in ("CancelRequested", "Canceled")
    assert wait_terminal(run, 30) == "Canceled"
    wait_until(
        lambda: not alive(pids["script"]) and not alive(pids["child"]), 10, "processes to end"
    )

    statuses = [e["status"] for e in history(run)]
    assert statuses[-3:] == ["Running", "CancelRequested", "Canceled"]
    assert "error" not in run.get_details()
    assert "user_logs/std_log.txt" in run.get_file_names()
    assert run.cancel() is False
    # wait_for_completion on a canceled run returns its details (no exception)
    assert run.wait_for_completion()["status"] == "Canceled"


def test_processes_left_behind_end_with_the_run(ws: Workspace, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    src = source(
        tmp_path,
        f"""
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        write_pids({str(pids_file)!r}, script=os.getpid(), child=child.pid)
        print("exiting, leaving a child behind")
        """,
    )
    run = submit(Experiment(ws, "stragglers"), ScriptRunConfig(src, "train.py"))
    assert wait_terminal(run, 30) == "Completed"
    child = read_pids(pids_file, run)["child"]
    wait_until(lambda: not alive(child), 10, "the left-behind child to be ended")


def test_script_ignoring_sigterm_is_killed_after_the_grace(ws: Workspace, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    got_term = tmp_path / "got-sigterm"
    src = source(
        tmp_path,
        f"""
        import signal, time
        def on_term(signum, frame):
            open({str(got_term)!r}, "w").close()   # noted, and ignored
        signal.signal(signal.SIGTERM, on_term)
        write_pids({str(pids_file)!r}, script=os.getpid())
        while True:
            time.sleep(0.05)
        """,
    )
    run = submit(Experiment(ws, "stubborn"), ScriptRunConfig(src, "train.py"))
    pid = read_pids(pids_file, run)["script"]
    asked = time.monotonic()
    run.cancel()
    wait_until(got_term.exists, 10, "the script to receive SIGTERM")
    assert alive(pid)  # it survived SIGTERM …
    assert wait_terminal(run, 30) == "Canceled"
    assert not alive(pid)  # … but not the SIGKILL after the grace
    assert time.monotonic() - asked >= 1.5  # the grace (2 s) was granted
    log = tmp_path / "supervisor.txt"
    run.download_file("system_logs/supervisor.txt", str(log))
    assert "SIGKILL" in log.read_text()


def test_max_run_duration_cancels_with_a_reason(ws: Workspace, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    src = source(
        tmp_path,
        f"""
        import time
        write_pids({str(pids_file)!r}, script=os.getpid())
        time.sleep(120)
        """,
    )
    config = ScriptRunConfig(src, "train.py", max_run_duration_seconds=2)
    run = submit(Experiment(ws, "limit"), config)
    assert wait_terminal(run, 40) == "Canceled"
    assert not alive(read_pids(pids_file, run)["script"])
    details = run.get_details()
    assert details["runDefinition"]["maxRunDurationSeconds"] == 2
    assert details["error"]["code"] == "MaxRunDurationExceeded"
    assert "max_run_duration_seconds=2" in details["error"]["message"]
    reasons = [e.get("reason", "") for e in details["statusHistory"]]
    assert any("max_run_duration_seconds=2" in r for r in reasons)


# ---------------------------------------------------------------------------------------------
# liveness


def test_killed_supervisor_fails_the_run(live_ws: Workspace, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    src = source(
        tmp_path,
        f"""
        import time
        write_pids({str(pids_file)!r}, script=os.getpid())
        time.sleep(300)
        """,
    )
    run = submit(Experiment(live_ws, "orphan"), ScriptRunConfig(src, "train.py"))
    script = read_pids(pids_file, run)["script"]
    assert run.get_status() == "Running"
    os.kill(supervisor_pid(run), signal.SIGKILL)

    assert wait_terminal(run, 20) == "Failed"
    error = run.get_details()["error"]
    assert error["code"] == "SupervisorLost"
    assert "supervisor" in error["message"]
    assert error["stage"] == "Running"
    # the orphaned script does not keep running unowned
    wait_until(lambda: not alive(script), 10, "the orphaned script to be killed")


def test_startup_gets_a_longer_grace_than_a_running_supervisor(ws: Workspace) -> None:
    """Before its first heartbeat a supervisor is starting (many at once on a busy machine start
    slowly): it is reaped only after ``STARTUP_TIMEOUTS`` timeouts; afterwards after one."""
    from trainyard._execution.reaper import STARTUP_TIMEOUTS, reap_stale_runs

    assert STARTUP_TIMEOUTS >= 2
    timeout = 1.0
    exp = Experiment(ws, "no-supervisor")
    # runs stored Queued with no supervisor process behind them
    starting = Run._create(exp, run_type="azureml.scriptrun")
    beating = Run._create(exp, run_type="azureml.scriptrun")
    for r in (starting, beating):
        ws.context.store.update_run_status(r.id, "Queued")
    ws.context.store.heartbeat(beating.id)
    time.sleep(timeout + 0.3)
    assert reap_stale_runs(ws.context, timeout) == [beating.id]
    assert "stopped responding" in beating.get_details()["error"]["message"]
    assert starting.get_status() == "Queued"
    time.sleep(timeout * STARTUP_TIMEOUTS - timeout)
    assert reap_stale_runs(ws.context, timeout) == [starting.id]
    error = starting.get_details()["error"]
    assert error["code"] == "SupervisorLost" and "never reported" in error["message"]


def test_killed_script_fails_the_run(ws: Workspace, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    src = source(
        tmp_path,
        f"""
        import time
        write_pids({str(pids_file)!r}, script=os.getpid())
        time.sleep(300)
        """,
    )
    run = submit(Experiment(ws, "kill9"), ScriptRunConfig(src, "train.py"))
    os.kill(read_pids(pids_file, run)["script"], signal.SIGKILL)
    assert wait_terminal(run, 30) == "Failed"
    error = run.get_details()["error"]
    assert error["message"] == "The script was killed by signal SIGKILL."
    assert error["exitCode"] == -signal.SIGKILL


def test_sigterm_flushes_buffered_metrics(ws: Workspace, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    src = source(
        tmp_path,
        f"""
        import time
        from trainyard.core import Run
        run = Run.get_context()
        for i in range(137):
            run.log("step_loss", i * 0.5)
        run.log("final", 1.0)
        write_pids({str(pids_file)!r}, script=os.getpid())
        time.sleep(300)
        """,
    )
    rc = RunConfiguration()
    # no background flush during the test: only the SIGTERM handler can save these metrics
    rc.environment_variables = {"TRAINYARD_LOG_FLUSH_INTERVAL": "3600"}
    run = submit(Experiment(ws, "sigterm"), ScriptRunConfig(src, "train.py", run_config=rc))
    pid = read_pids(pids_file, run)["script"]
    assert run.get_metrics() == {}  # still buffered in the script
    os.kill(pid, signal.SIGTERM)
    assert wait_terminal(run, 30) == "Failed"
    metrics = run.get_metrics()
    assert metrics["step_loss"] == [i * 0.5 for i in range(137)]
    assert metrics["final"] == 1.0
    error = run.get_details()["error"]
    assert error["message"] == "The script was killed by signal SIGTERM."


def test_silent_preparing_longer_than_the_timeout_is_not_reaped(
    live_ws: Workspace, tmp_path: Path
) -> None:
    """Preparing can be silent for long (a large download, waiting for another run's build of the
    same environment): the supervisor is alive and must keep heartbeating through it."""
    real = os.path.realpath(sys.executable)
    wrapper = tmp_path / "slowpython" / "bin" / "python"
    wrapper.parent.mkdir(parents=True)
    # Slow only when asked about itself while the environment is prepared (no run id yet).
    wrapper.write_text(
        f'#!/bin/sh\nif [ -z "$TRAINYARD_RUN_ID" ]; then sleep 6; fi\nexec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    env = Environment("slow-prepare")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = str(wrapper)
    src = source(tmp_path, "print('prepared and ran')\n")
    run = submit(
        Experiment(live_ws, "slow-prep"), ScriptRunConfig(src, "train.py", environment=env)
    )
    assert wait_terminal(run, 60) == "Completed", run.get_details().get("error")
    history_ = history(run)
    times = {e["status"]: e["timeUtc"] for e in history_}
    assert "Preparing" in times and "Running" in times


# ---------------------------------------------------------------------------------------------
# the submitter goes away


def test_run_survives_the_process_that_submitted_it(ws: Workspace, tmp_path: Path) -> None:
    release = tmp_path / "release"
    src = source(
        tmp_path,
        f"""
        import time
        from trainyard.core import Run
        while not os.path.exists({str(release)!r}):
            time.sleep(0.05)
        Run.get_context().log("survived", 1)
        """,
    )
    code = textwrap.dedent(
        f"""
        from trainyard.core import Experiment, ScriptRunConfig, Workspace
        ws = Workspace.get({ws.name!r}, path={str(ws.path)!r})
        run = Experiment(ws, "orphaned-submit").submit(ScriptRunConfig({str(src)!r}, "train.py"))
        print(run.id)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip().splitlines()[-1]
    run = Run.get(ws, run_id)
    wait_until(lambda: run.get_status() == "Running", 30, "the run to start")
    release.write_text("go")  # the submitter is gone by now
    assert wait_terminal(run, 30) == "Completed"
    assert run.get_metrics()["survived"] == 1
