"""Conformance suite for :class:`~trainyard._execution.backends.base.ComputeBackend`.

Every backend — local processes today, a Ray cluster later — must pass it. Subclass
:class:`BackendConformance` in a test module and provide a ``backend_env`` fixture that returns a
:class:`BackendEnv`: a workspace whose compute target ``target`` (capacity 1 — one run at a time)
and ``wide_target`` (capacity ≥ 2) are served by the backend under test, with short heartbeats
(``TRAINYARD_HEARTBEAT_SECONDS`` ≈ 0.3 s, ``TRAINYARD_HEARTBEAT_TIMEOUT`` ≈ 3 s) set for the
processes the backend starts, and ``kill_owner(run)`` that kill -9's the process owning a running
run (its supervisor). The checks go through the public API (``experiment.submit``) and the backend
the registry picks for the target::

    from trainyard.testing.backend import BackendConformance, BackendEnv

    class TestLocalBackend(BackendConformance):
        @pytest.fixture
        def backend_env(self, tmp_path, monkeypatch) -> BackendEnv:
            ...

What is checked: submit runs a script to Completed and its output is in its log; a non-zero exit
ends Failed with the exit code; runs on a one-slot target start in submission order and never
overlap; cancelling a queued run ends it Canceled without ever starting it; cancelling a running
run delivers SIGTERM to the script and ends Canceled; ``max_run_duration_seconds`` cancels with
``MaxRunDurationExceeded``; a kill -9 of the owner ends the run Failed with a reason; logs read by
offset add up to the whole log; a HyperDrive sweep (its controller launched through the same
backend) completes with its children on the target.
"""

from __future__ import annotations

import json
import signal
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainyard._execution.backends import ComputeBackend, backend_for
from trainyard._lifecycle import RunStatus
from trainyard.core import Experiment, ScriptRun, ScriptRunConfig, Workspace

_TERMINAL = {"Completed", "Failed", "Canceled"}


@dataclass
class BackendEnv:
    """What the suite needs from a backend's test set-up (see the module docstring)."""

    workspace: Workspace
    target: str
    wide_target: str
    kill_owner: Callable[[ScriptRun], None]
    timeout: float = 120.0

    def backend(self, target: str | None = None) -> ComputeBackend:
        """The backend the registry picks for ``target`` (default: the one-slot target)."""
        return backend_for(self.workspace.context, target or self.target)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 20 ms until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def _source(root: Path, name: str, body: str) -> Path:
    src = root / name
    src.mkdir(parents=True, exist_ok=True)
    (src / "train.py").write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return src


def _submit(env: BackendEnv, experiment: str, config: ScriptRunConfig) -> ScriptRun:
    run = Experiment(env.workspace, experiment).submit(config)
    assert isinstance(run, ScriptRun)
    return run


def _wait_terminal(env: BackendEnv, run: ScriptRun) -> str:
    status: str = wait_until(
        lambda: (s := run.get_status()) in _TERMINAL and s,
        env.timeout,
        f"run {run.id} to end",
    )
    return status


class BackendConformance:
    """The checks every compute backend passes; subclass it and provide ``backend_env``."""

    @pytest.fixture
    def backend_env(self) -> BackendEnv:  # pragma: no cover - provided by the subclass
        raise NotImplementedError("provide a backend_env fixture (see trainyard.testing.backend)")

    # -- submit -------------------------------------------------------------------------------
    def test_submit_runs_to_completion(self, backend_env: BackendEnv, tmp_path: Path) -> None:
        src = _source(tmp_path, "ok", "print('hello from the backend', flush=True)\n")
        run = _submit(
            backend_env,
            "conf-ok",
            ScriptRunConfig(src, "train.py", compute_target=backend_env.target),
        )
        assert _wait_terminal(backend_env, run) == "Completed"
        backend = backend_env.backend()
        assert backend.status(run.id) == RunStatus.COMPLETED
        assert b"hello from the backend" in backend.read_log(run.id, "user_logs/std_log.txt")
        assert "user_logs/std_log.txt" in backend.log_names(run.id)
        info = run.get_info()
        assert info.start_time is not None and info.end_time is not None
        assert info.end_time >= info.start_time

    def test_exit_code_fails_the_run(self, backend_env: BackendEnv, tmp_path: Path) -> None:
        src = _source(tmp_path, "exit3", "import sys\nprint('about to fail')\nsys.exit(3)\n")
        run = _submit(
            backend_env,
            "conf-exit",
            ScriptRunConfig(src, "train.py", compute_target=backend_env.target),
        )
        assert _wait_terminal(backend_env, run) == "Failed"
        error = run.get_details()["error"]
        assert error["exitCode"] == 3
        assert "3" in error["message"]

    # -- queueing -----------------------------------------------------------------------------
    def test_one_slot_runs_in_submission_order(
        self, backend_env: BackendEnv, tmp_path: Path
    ) -> None:
        record = tmp_path / "record"
        record.mkdir()
        src = _source(
            tmp_path,
            "fifo",
            f"""
            import json, sys, time
            index = int(sys.argv[1])
            start = time.time()
            time.sleep(0.4)
            with open({str(record)!r} + f"/{{index}}.json", "w") as fh:
                json.dump({{"start": start, "end": time.time()}}, fh)
            """,
        )
        runs = [
            _submit(
                backend_env,
                "conf-fifo",
                ScriptRunConfig(src, "train.py", arguments=[i], compute_target=backend_env.target),
            )
            for i in range(3)
        ]
        for run in runs:
            assert _wait_terminal(backend_env, run) == "Completed"
        spans = [json.loads((record / f"{i}.json").read_text()) for i in range(3)]
        starts = [s["start"] for s in spans]
        assert starts == sorted(starts), "runs on a one-slot target start in submission order"
        for before, after in zip(spans, spans[1:], strict=False):
            assert after["start"] >= before["end"], "runs on a one-slot target never overlap"

    # -- cancel -------------------------------------------------------------------------------
    def test_cancel_of_a_queued_run(self, backend_env: BackendEnv, tmp_path: Path) -> None:
        marker = tmp_path / "queued-started"
        blocker_src = _source(tmp_path, "block", "import time\ntime.sleep(60)\n")
        queued_src = _source(tmp_path, "queued", f"open({str(marker)!r}, 'w').write('ran')\n")
        blocker = _submit(
            backend_env,
            "conf-cq",
            ScriptRunConfig(blocker_src, "train.py", compute_target=backend_env.target),
        )
        wait_until(
            lambda: blocker.get_status() == "Running", backend_env.timeout, "the blocker to run"
        )
        queued = _submit(
            backend_env,
            "conf-cq",
            ScriptRunConfig(queued_src, "train.py", compute_target=backend_env.target),
        )
        assert queued.get_status() == "Queued"
        assert backend_env.backend().cancel(queued.id) is True
        assert _wait_terminal(backend_env, queued) == "Canceled"
        assert queued.get_info().start_time is None, "a cancelled queued run never starts"
        assert blocker.cancel() is True
        assert _wait_terminal(backend_env, blocker) == "Canceled"
        assert not marker.exists()
        assert backend_env.backend().cancel(queued.id) is False, (
            "a finished run cannot be cancelled"
        )

    def test_cancel_of_a_running_run_sends_sigterm(
        self, backend_env: BackendEnv, tmp_path: Path
    ) -> None:
        src = _source(
            tmp_path,
            "term",
            f"""
            import signal, sys, time
            def bye(signum, frame):
                print("got SIGTERM {int(signal.SIGTERM)}", flush=True)
                sys.exit(0)
            signal.signal(signal.SIGTERM, bye)
            print("ready", flush=True)
            time.sleep(120)
            """,
        )
        run = _submit(
            backend_env,
            "conf-cr",
            ScriptRunConfig(src, "train.py", compute_target=backend_env.target),
        )
        backend = backend_env.backend()
        wait_until(
            lambda: b"ready" in backend.read_log(run.id, "user_logs/std_log.txt"),
            backend_env.timeout,
            "the script to start",
        )
        assert backend.cancel(run.id) is True
        assert _wait_terminal(backend_env, run) == "Canceled"
        assert b"got SIGTERM" in run.read_log("user_logs/std_log.txt")
        statuses = [e["status"] for e in run.get_details()["statusHistory"]]
        assert "CancelRequested" in statuses and statuses[-1] == "Canceled"

    def test_max_run_duration(self, backend_env: BackendEnv, tmp_path: Path) -> None:
        src = _source(
            tmp_path, "slow", "import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n"
        )
        config = ScriptRunConfig(
            src, "train.py", compute_target=backend_env.target, max_run_duration_seconds=1
        )
        run = _submit(backend_env, "conf-max", config)
        assert _wait_terminal(backend_env, run) == "Canceled"
        assert run.get_details()["error"]["code"] == "MaxRunDurationExceeded"

    # -- faults -------------------------------------------------------------------------------
    def test_killed_owner_fails_the_run_with_a_reason(
        self, backend_env: BackendEnv, tmp_path: Path
    ) -> None:
        src = _source(tmp_path, "orphan", "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
        run = _submit(
            backend_env,
            "conf-kill",
            ScriptRunConfig(src, "train.py", compute_target=backend_env.target),
        )
        wait_until(
            lambda: b"up" in run.read_log("user_logs/std_log.txt"),
            backend_env.timeout,
            "the script to start",
        )
        backend_env.kill_owner(run)
        assert _wait_terminal(backend_env, run) == "Failed"
        error = run.get_details()["error"]
        assert error["code"] == "SupervisorLost"
        assert "heartbeat" in error["message"]

    # -- logs ---------------------------------------------------------------------------------
    def test_logs_by_offset(self, backend_env: BackendEnv, tmp_path: Path) -> None:
        src = _source(
            tmp_path,
            "lines",
            """
            import time
            for i in range(30):
                print(f"line {i:03d}", flush=True)
                time.sleep(0.02)
            """,
        )
        run = _submit(
            backend_env,
            "conf-logs",
            ScriptRunConfig(src, "train.py", compute_target=backend_env.target),
        )
        backend = backend_env.backend()
        pieces: list[bytes] = []
        offset = 0
        deadline = time.monotonic() + backend_env.timeout
        while time.monotonic() < deadline:
            done = run.get_status() in _TERMINAL
            chunk = backend.read_log(run.id, "user_logs/std_log.txt", offset, limit=64)
            if chunk:
                pieces.append(chunk)
                offset += len(chunk)
                continue
            if done:
                break
            time.sleep(0.01)
        whole = backend.read_log(run.id, "user_logs/std_log.txt")
        assert b"".join(pieces) == whole
        assert [ln for ln in whole.decode().splitlines() if ln.startswith("line")] == [
            f"line {i:03d}" for i in range(30)
        ]
        assert len(pieces) > 1
        assert backend.read_log(run.id, "user_logs/std_log.txt", len(whole)) == b""

    # -- sweeps -------------------------------------------------------------------------------
    def test_sweep_runs_through_the_backend(self, backend_env: BackendEnv, tmp_path: Path) -> None:
        from trainyard.train.hyperdrive import (
            GridParameterSampling,
            HyperDriveConfig,
            PrimaryMetricGoal,
            choice,
        )

        src = _source(
            tmp_path,
            "sweep",
            """
            import argparse
            from trainyard.core import Run
            p = argparse.ArgumentParser()
            p.add_argument("--x", type=float)
            args = p.parse_args()
            Run.get_context().log("score", -(args.x - 2) ** 2)
            """,
        )
        config = HyperDriveConfig(
            run_config=ScriptRunConfig(src, "train.py", compute_target=backend_env.wide_target),
            hyperparameter_sampling=GridParameterSampling({"--x": choice(1, 2, 3)}),
            primary_metric_name="score",
            primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
            max_total_runs=3,
            max_concurrent_runs=2,
        )
        sweep = Experiment(backend_env.workspace, "conf-sweep").submit(config)
        status = wait_until(
            lambda: (s := sweep.get_status()) in _TERMINAL and s,
            backend_env.timeout * 2,
            "the sweep",
        )
        assert status == "Completed"
        children = list(sweep.get_children())
        assert len(children) == 3
        assert {c.get_status() for c in children} == {"Completed"}
        assert {c.get_info().target for c in children} == {backend_env.wide_target}
        best = sweep.get_best_run_by_primary_metric()  # type: ignore[attr-defined]
        assert best is not None
        assert best.get_metrics()["score"] == 0


def fast_liveness(monkeypatch: pytest.MonkeyPatch) -> None:
    """The short heartbeats, polling and cancel grace the suite expects of the processes a
    backend starts (set in this process's environment, which they inherit)."""
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_SECONDS", "0.3")
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_TIMEOUT", "3")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.1")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.3")
    monkeypatch.setenv("TRAINYARD_CANCEL_GRACE_SECONDS", "3")


def kill_owner_by_pid(run: ScriptRun) -> None:
    """``kill_owner`` for backends whose supervisor records its pid in the run's runtime."""
    import os

    ident = run.get_info().runtime.get("supervisor") or {}
    pid = ident.get("pid")
    if not isinstance(pid, int):
        pytest.fail(f"run {run.id} recorded no supervisor pid")
    os.kill(pid, signal.SIGKILL)


__all__ = [
    "BackendConformance",
    "BackendEnv",
    "fast_liveness",
    "kill_owner_by_pid",
    "wait_until",
]
