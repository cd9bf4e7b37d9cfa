"""The per-target FIFO queue: runs wait Queued for a slot and start in submission order."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trainyard.core import Experiment, Run, ScriptRun, ScriptRunConfig, Workspace
from trainyard.core.compute import ComputeTarget, LocalCompute
from trainyard.testing.fixtures import unique_name

TERMINAL = {"Completed", "Failed", "Canceled"}
BUSY = {"Preparing", "Running", "Finalizing"}


def submit(experiment: Experiment, config: ScriptRunConfig) -> ScriptRun:
    """``experiment.submit(config)``, typed as the ``ScriptRun`` it returns."""
    run = experiment.submit(config)
    assert isinstance(run, ScriptRun)
    return run


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Workspace:
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_SECONDS", "0.3")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.1")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.5")
    workspace = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    ComputeTarget.create(
        workspace, "single", LocalCompute.provisioning_configuration(max_concurrent_runs=1)
    )
    return workspace


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_capacity_one_runs_in_submission_order(ws: Workspace, tmp_path: Path) -> None:
    record = tmp_path / "record"
    record.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        textwrap.dedent(
            f"""
            import json, sys, time
            from trainyard.core import Run
            index = int(sys.argv[1])
            start = time.time()
            time.sleep(0.5)
            Run.get_context().log("index", index)
            with open({str(record)!r} + f"/{{index}}.json", "w") as fh:
                json.dump({{"start": start, "end": time.time()}}, fh)
            """
        )
    )
    exp = Experiment(ws, "fifo")
    runs: list[Run] = [
        submit(exp, ScriptRunConfig(src, "train.py", arguments=[i], compute_target="single"))
        for i in range(4)
    ]

    # Sample every run's status in one query while they execute: never two busy at once, and the
    # runs after the busy one are all still Queued.
    order = [r.id for r in runs]
    samples = 0
    while True:
        infos, _ = ws.context.store.list_runs(workspace_id=ws.context.workspace_id, limit=100)
        status = {i.run_id: i.status for i in infos}
        busy = [rid for rid in order if status[rid] in BUSY]
        assert len(busy) <= 1, status
        if busy:
            samples += 1
            later = order[order.index(busy[0]) + 1 :]
            assert all(status[rid] == "Queued" for rid in later), status
        if all(status[rid] in TERMINAL for rid in order):
            break
        assert samples < 10_000
        time.sleep(0.05)
    assert samples > 0

    assert [r.get_status() for r in runs] == ["Completed"] * 4
    spans = [json.loads((record / f"{i}.json").read_text()) for i in range(4)]
    starts = [s["start"] for s in spans]
    assert starts == sorted(starts), "runs started out of submission order"
    for before, after in zip(spans, spans[1:], strict=False):
        assert after["start"] >= before["end"], "two runs overlapped on a target of capacity 1"
    assert [r.get_metrics()["index"] for r in runs] == [0, 1, 2, 3]
    running_at = [r.get_details()["startTimeUtc"] for r in runs]
    assert running_at == sorted(running_at)


def test_queued_run_cancels_without_starting(ws: Workspace, tmp_path: Path) -> None:
    release = tmp_path / "release"
    started = tmp_path / "started"
    src = tmp_path / "src"
    src.mkdir()
    (src / "hold.py").write_text(
        textwrap.dedent(
            f"""
            import os, time
            open({str(started)!r}, "w").close()
            while not os.path.exists({str(release)!r}):
                time.sleep(0.05)
            """
        )
    )
    (src / "never.py").write_text(f"open({str(tmp_path / 'never-ran')!r}, 'w').close()\n")
    exp = Experiment(ws, "cancel-queued")
    holder = submit(exp, ScriptRunConfig(src, "hold.py", compute_target="single"))
    waiting = submit(exp, ScriptRunConfig(src, "never.py", compute_target="single"))
    try:
        wait_until(started.exists, what="the first run to start")
        assert waiting.get_status() == "Queued"
        assert waiting.cancel() is True
        wait_until(lambda: waiting.get_status() in TERMINAL, 30, "the queued run to end")
    finally:
        release.write_text("go")
    assert waiting.get_status() == "Canceled"
    details = waiting.get_details()
    history = [e["status"] for e in details["statusHistory"]]
    assert "Running" not in history and "Preparing" not in history
    assert history[-2:] == ["CancelRequested", "Canceled"]
    assert details["startTimeUtc"] is None
    assert "user_logs/std_log.txt" not in waiting.get_file_names()
    assert not (tmp_path / "never-ran").exists()
    assert waiting.cancel() is False  # already finished

    assert holder.wait_for_completion(wait_post_processing=True)["status"] == "Completed"
    # the canceled run gave its turn away: the next submission runs
    after = submit(exp, ScriptRunConfig(src, "hold.py", compute_target="single"))
    assert after.wait_for_completion(wait_post_processing=True)["status"] == "Completed"


def test_cancel_right_after_submit_never_starts(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "never.py").write_text(f"open({str(tmp_path / 'never-ran')!r}, 'w').close()\n")
    run = submit(Experiment(ws, "cancel-now"), ScriptRunConfig(src, "never.py"))
    assert run.cancel() is True
    wait_until(lambda: run.get_status() in TERMINAL, 30, "the run to end")
    assert run.get_status() == "Canceled"
    assert run.get_details()["startTimeUtc"] is None
    assert not (tmp_path / "never-ran").exists()
