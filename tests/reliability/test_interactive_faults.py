"""Interactive runs end when their process dies (issue 11, item 3).

A real ``python`` process opens the workspace, ``start_logging()``s a run, logs points that are
still buffered (a long flush interval) and waits; the test then kills it with kill -9, SIGTERM or
SIGINT and reads the run back from the workspace: its status, its error, every point counted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainyard._execution import reaper
from trainyard._execution.reaper import reap_stale_runs
from trainyard.core import _interactive
from trainyard.core.experiment import Experiment
from trainyard.core.run import INTERACTIVE_RUN_TYPE, Run
from trainyard.core.workspace import Workspace

pytestmark = pytest.mark.reliability

POINTS = 3000
#: The child: logs POINTS points (buffered: nothing flushes for an hour), prints the run id, waits.
#: argv: workspace folder, "with" (inside ``with exp.start_logging() as run:``) or "plain".
_CHILD = f"""
import sys, time
from trainyard.core import _interactive
from trainyard.core.experiment import Experiment
from trainyard.core.workspace import Workspace

ws = Workspace.get("ws", path=sys.argv[1])
exp = Experiment(ws, "interactive")

def body(run):
    for i in range({POINTS}):
        run.log("loss", float(i))
    print(run.id, flush=True)
    while True:
        time.sleep(0.05)

if sys.argv[2] == "with":
    with exp.start_logging() as run:
        body(run)
else:
    run = exp.start_logging()
    body(run)
"""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.create("ws", path=tmp_path / "workspace")


class Child:
    def __init__(self, ws: Workspace, mode: str) -> None:
        env = {
            **os.environ,
            "TRAINYARD_LOG_FLUSH_INTERVAL": "3600",
            "TRAINYARD_HEARTBEAT_SECONDS": "0.2",
        }
        for name in ("TRAINYARD_RUN_ID", "AZUREML_RUN_ID", "TRAINYARD_WORKSPACE_PATH"):
            env.pop(name, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(ws.context.home), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.run_id = self.proc.stdout.readline().strip()
        assert self.run_id, self.proc.stderr.read() if self.proc.stderr else ""

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(60)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr else ""


@pytest.fixture
def child(ws: Workspace) -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for c in started:
        c.close()


def _start(ws: Workspace, children: list[Child], mode: str) -> Child:
    c = Child(ws, mode)
    children.append(c)
    return c


def _first_beat(ws: Workspace, run_id: str) -> float:
    deadline = time.monotonic() + 10
    while (at := ws.context.store.get_run(run_id).heartbeat_at) is None:
        assert time.monotonic() < deadline, "the interactive run never heartbeated"
        time.sleep(0.05)
    return at


def _points(ws: Workspace, run_id: str) -> list[float]:
    run = Run.get(ws, run_id)
    return [float(p.value) for p in run.get_metric_points("loss")]


def test_the_reaper_watches_interactive_runs() -> None:
    assert INTERACTIVE_RUN_TYPE in reaper.SUPERVISED_TYPES


def test_interactive_run_heartbeats_from_a_thread_and_a_live_one_is_never_reaped(
    ws: Workspace, child: list[Child]
) -> None:
    c = _start(ws, child, "plain")
    store = ws.context.store
    first = _first_beat(ws, c.run_id)
    deadline = time.monotonic() + 10
    while store.get_run(c.run_id).heartbeat_at == first and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (store.get_run(c.run_id).heartbeat_at or 0) > first  # the main thread only sleeps
    time.sleep(1.0)
    assert c.run_id not in reap_stale_runs(ws.context, timeout=1.0)
    assert Run.get(ws, c.run_id).get_status() == "Running"


def test_kill_9_interactive_run_is_failed_by_the_reaper_with_a_reason(
    ws: Workspace, child: list[Child]
) -> None:
    c = _start(ws, child, "plain")
    _first_beat(ws, c.run_id)
    assert c.stop(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(1.5)
    assert reap_stale_runs(ws.context, timeout=1.0) == [c.run_id]
    info = ws.context.store.get_run(c.run_id)
    assert info.status == "Failed"
    assert info.error is not None and info.error["code"] == "InteractiveProcessLost"
    assert "start_logging" in info.error["message"]


def test_get_status_of_a_dead_interactive_run_ends_it(
    ws: Workspace, child: list[Child], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever looks at the run (another process) ends it once its owner is gone."""
    c = _start(ws, child, "plain")
    _first_beat(ws, c.run_id)
    c.stop(signal.SIGKILL)
    run = Run.get(ws, c.run_id)
    info = ws.context.store.get_run(c.run_id)
    stale = (info.heartbeat_at or 0) + ws.context.settings.heartbeat_timeout + 1
    monkeypatch.setattr(time, "time", lambda: stale)
    # the look-up reaps at most every few seconds per process: another test here may just have
    monkeypatch.setattr(_interactive, "_last_reap", float("-inf"))
    assert run.get_status() == "Failed"


@pytest.mark.parametrize("mode", ["plain", "with"])
def test_sigterm_flushes_every_point_and_fails_the_run_with_the_signal(
    ws: Workspace, child: list[Child], mode: str
) -> None:
    c = _start(ws, child, mode)
    rc = c.stop(signal.SIGTERM)
    assert rc == -signal.SIGTERM, c.stderr()  # still dies "of SIGTERM" for its parent
    info = ws.context.store.get_run(c.run_id)
    assert info.status == "Failed", c.stderr()
    assert info.error is not None and info.error["code"] == "ProcessTerminated"
    assert "SIGTERM" in info.error["message"]
    assert _points(ws, c.run_id) == [float(i) for i in range(POINTS)]


@pytest.mark.parametrize("mode", ["plain", "with"])
def test_sigint_flushes_every_point_and_cancels_the_run(
    ws: Workspace, child: list[Child], mode: str
) -> None:
    c = _start(ws, child, mode)
    rc = c.stop(signal.SIGINT)
    assert rc != 0
    info = ws.context.store.get_run(c.run_id)
    assert info.status == "Canceled", c.stderr()
    assert _points(ws, c.run_id) == [float(i) for i in range(POINTS)]


def test_a_completed_run_is_not_touched_by_a_later_sigterm(ws: Workspace, tmp_path: Path) -> None:
    script = tmp_path / "done.py"
    script.write_text(
        "import sys, time\n"
        "from trainyard.core.experiment import Experiment\n"
        "from trainyard.core.workspace import Workspace\n"
        "ws = Workspace.get('ws', path=sys.argv[1])\n"
        "run = Experiment(ws, 'interactive').start_logging()\n"
        "run.log('loss', 1.0)\n"
        "run.complete()\n"
        "print(run.id, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ws.context.home)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert ws.context.store.get_run(run_id).status == "Completed"
    assert Experiment(ws, "interactive").name == "interactive"
