"""``RunDetails`` outside a kernel and its views: the terminal's one ``Live`` view (in a real
pseudo-terminal, from a real process), the printed view, and a real HyperDrive sweep's children
table and primary-metric chart."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainyard.core import Experiment, Run, ScriptRunConfig, Workspace
from trainyard.widgets import RunDetails
from trainyard.widgets._html import render_html
from trainyard.widgets._svg import line_chart
from trainyard.widgets._terminal import sparkline
from trainyard.widgets._view import collect

TRAIN = """\
import argparse, time
from trainyard.core import Run

p = argparse.ArgumentParser()
p.add_argument("--quality", type=float, default=0.5)
a = p.parse_args()
run = Run.get_context()
for i in range(4):
    run.log("Accuracy", a.quality + i / 100)
    time.sleep(0.4)
print("trained")
"""

FOLLOW = """\
import sys
from trainyard.core import Run, Workspace
from trainyard.widgets import RunDetails

ws = Workspace.from_config(path=sys.argv[1])
RunDetails(Run.get(ws, sys.argv[2]), refresh_seconds=0.3).show(wait=True)
print("FOLLOW-DONE")
"""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = Workspace.create("widget", path=tmp_path / "ws")
    ws.write_config(path=tmp_path)
    return ws


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text(TRAIN)
    return folder


def _read_pty(proc: subprocess.Popen[bytes], master: int, timeout: float) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    # poll, not select: a worker that has run many tests may hold descriptors past FD_SETSIZE.
    poller = select.poll()
    poller.register(master, select.POLLIN)
    while time.monotonic() < deadline:
        ready = poller.poll(200)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            out += data
        elif proc.poll() is not None:
            break
    return bytes(out)


def test_wait_in_a_terminal_redraws_one_live_view(ws: Workspace, src: Path, tmp_path: Path) -> None:
    run = Experiment(ws, "live").submit(ScriptRunConfig(src, "train.py"))
    (tmp_path / "follow.py").write_text(FOLLOW)
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS="120", LINES="40", TERM="xterm")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "follow.py"), str(tmp_path), run.id],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    try:
        out = _read_pty(proc, master, 120).decode("utf-8", "replace")
        assert proc.wait(timeout=30) == 0, out
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert "FOLLOW-DONE" in out and "Completed" in out and "Accuracy" in out, out
    assert "\x1b[1A" in out or "\x1b[2K" in out, "no redraw: not a Live view"  # cursor up / erase
    assert run.get_status() == "Completed"  # it ended because the run did
    final = out.rsplit("Status", 1)[1]
    assert "Completed" in final and "0.5300" in final  # the last frame is the final state


def test_show_without_wait_prints_once_and_returns(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Experiment(ws, "once").start_logging()
    run.log("loss", 0.25)
    started = time.monotonic()
    RunDetails(run, refresh_seconds=0.1).show()
    assert time.monotonic() - started < 30
    out = capsys.readouterr().out
    assert run.id in out and "Running" in out and "loss" in out
    run.complete()
    details = RunDetails(run)
    assert details.get_widget_data()["status"] == "Completed"
    assert details.wait(0)


def test_a_failed_run_shows_its_error(ws: Workspace) -> None:
    run = Experiment(ws, "failing").start_logging()
    run.fail(error_details="the data went missing")
    html = render_html(collect(run))
    assert 'data-status="Failed"' in html and "the data went missing" in html
    assert "(no metrics logged)" in html


def test_chart_helpers_keep_spikes_and_skip_non_finite() -> None:
    values = [0.0] * 5000
    values[2500] = 100.0
    values[10] = float("nan")
    svg = line_chart("loss", [("a", values)])
    assert svg.startswith("<svg") and "100" in svg and "nan" not in svg.lower()
    assert "no values yet" in line_chart("empty", [("a", [float("inf")])])
    assert sparkline([1.0, 2.0, 3.0]) == "▁▄█"
    assert len(sparkline([float(i) for i in range(1000)], width=40)) == 40


def test_a_sweep_shows_its_children_and_their_primary_metric(
    ws: Workspace, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainyard.train.hyperdrive import (
        GridParameterSampling,
        HyperDriveConfig,
        PrimaryMetricGoal,
        choice,
    )

    config = HyperDriveConfig(
        run_config=ScriptRunConfig(src, "train.py"),
        hyperparameter_sampling=GridParameterSampling({"--quality": choice(0.25, 0.75)}),
        primary_metric_name="Accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=2,
        max_concurrent_runs=2,
    )
    sweep = Experiment(ws, "sweep").submit(config)
    details = RunDetails(sweep, refresh_seconds=0.5)
    details.show(wait=True)
    view = details.last_view
    assert view is not None and view.status == "Completed" and view.terminal
    assert view.primary == ("Accuracy", "maximize")
    assert [c.best for c in view.children] == [0.78, 0.28]  # best first for the goal
    assert all(len(c.series) == 4 and c.status == "Completed" for c in view.children)
    html = render_html(view)
    assert "Best Accuracy (maximize)" in html and "Accuracy by interval" in html
    assert html.count("<polyline") == 2
    assert view.children[0].run_id in html and "0.75" in view.children[0].hyperparameters
    assert Run.get(ws, view.children[0].run_id).get_status() == "Completed"
