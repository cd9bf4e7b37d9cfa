"""Many processes logging into one workspace at the same time: every point is stored, and no
"database is locked" (or any other store error) reaches the user. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trainyard._tracking.codec import decode
from trainyard.core.experiment import Experiment
from trainyard.core.run import Run
from trainyard.core.workspace import Workspace

PROCESSES = 16
POINTS = 20_000
BURSTS = 20  # each process logs in bursts, so its background writer commits many small batches

_CHILD = f"""
import pathlib, sys, time
from trainyard.core.run import Run

gate, me = pathlib.Path(sys.argv[1]), int(sys.argv[2])
run = Run.get_context(allow_offline=False)
(gate / f"ready-{{me}}").touch()
deadline = time.time() + 60
while not (gate / "go").exists():
    if time.time() > deadline:
        sys.exit("the test never opened the gate")
    time.sleep(0.002)
per_burst = {POINTS} // {BURSTS}
for burst in range({BURSTS}):
    for i in range(burst * per_burst, (burst + 1) * per_burst):
        run.log("loss", me * 1_000_000 + i)
    time.sleep(0.005)
run.log("who", me)
run.flush()
print("ok", me)
"""


def _run_children(workspace: Workspace, run_ids: list[str], tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_CHILD))
    procs = []
    for me, run_id in enumerate(run_ids):
        env = {
            **os.environ,
            "TRAINYARD_RUN_ID": run_id,
            "TRAINYARD_WORKSPACE_PATH": str(workspace.path),
            "TRAINYARD_LOG_FLUSH_INTERVAL": "0.01",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(gate), str(me)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        deadline = time.time() + 120
        while len(list(gate.glob("ready-*"))) < len(procs):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.time() < deadline, "children did not start"
            time.sleep(0.01)
        (gate / "go").touch()
        results = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for me, (p, (out, err)) in enumerate(zip(procs, results, strict=True)):
        assert p.returncode == 0, err
        assert out.strip() == f"ok {me}"
        assert "locked" not in err.lower() and "could not be written" not in err, err
        assert "Traceback" not in err, err


def _expected(me: int) -> list[int]:
    return [me * 1_000_000 + i for i in range(POINTS)]


def _points(run: Run, name: str) -> list[int]:
    chunks = run.experiment.workspace.context.store.get_metric_chunks(run.id, [name])
    return [p.value for p in decode(chunks).get(name, ("", []))[1]]


@pytest.mark.slow
def test_each_process_logs_into_its_own_run(workspace: Workspace, tmp_path: Path) -> None:
    exp = Experiment(workspace, "many-runs")
    runs = [exp.start_logging() for _ in range(PROCESSES)]
    _run_children(workspace, [r.id for r in runs], tmp_path)
    for me, run in enumerate(runs):
        assert _points(run, "loss") == _expected(me)  # all of them, in logged order
        assert _points(run, "who") == [me]


@pytest.mark.slow
def test_all_processes_log_into_one_run(workspace: Workspace, tmp_path: Path) -> None:
    run = Experiment(workspace, "one-run").start_logging()
    _run_children(workspace, [run.id] * PROCESSES, tmp_path)
    values = _points(run, "loss")
    assert len(values) == PROCESSES * POINTS
    for me in range(PROCESSES):
        mine = [v for v in values if v // 1_000_000 == me]
        assert mine == _expected(me)  # every point once, each process's points in its order
    assert sorted(_points(run, "who")) == list(range(PROCESSES))
