"""End to end: HyperDrive sweeps with real child runs under a real controller process.

Every child runs ``train.py`` below (no ML framework): it logs ``Accuracy`` = ``--quality`` once per
"epoch" and sleeps a little, so each child's primary metric is known in advance from its sampled
hyperparameters. ``--slow_below`` makes low-quality children run ~40 epochs (long enough to be
cancelled), ``--fail_at`` makes one value fail after logging, ``--quality 0`` logs nothing.
Children use the default user-managed environment (this interpreter).
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trainyard.core import Experiment, Run, ScriptRunConfig, Workspace
from trainyard.exceptions import ActivityFailedException
from trainyard.testing.fixtures import BACKENDS, unique_name
from trainyard.train.hyperdrive import (
    BanditPolicy,
    BayesianParameterSampling,
    GridParameterSampling,
    HyperDriveConfig,
    HyperDriveRun,
    PrimaryMetricGoal,
    RandomParameterSampling,
    choice,
)

TERMINAL = {"Completed", "Failed", "Canceled"}

TRAIN = """
import argparse, time
from pathlib import Path
from trainyard.core import Run

p = argparse.ArgumentParser()
p.add_argument("--quality", type=float, default=0.5)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--batchsize", type=int, default=0)
p.add_argument("--slow_below", type=float, default=-1.0)
p.add_argument("--fail_at", type=float, default=None)
p.add_argument("--sleep", type=float, default=0.15)
p.add_argument("--resume-from", dest="resume_from", default=None)
a = p.parse_args()
run = Run.get_context()
if a.resume_from:
    run.log("resumed_value", float(Path(a.resume_from, "ckpt.txt").read_text()))
Path("outputs").mkdir(exist_ok=True)
Path("outputs/ckpt.txt").write_text(str(a.quality))
epochs = 40 if a.quality < a.slow_below else a.epochs
for epoch in range(epochs):
    if a.quality != 0:
        run.log("Accuracy", a.quality)
    time.sleep(a.sleep)
if a.fail_at is not None and a.quality == a.fail_at:
    raise RuntimeError(f"deliberate failure for quality {a.quality}")
print("trained", vars(a))
"""


def make_workspace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, timeout: float = 10.0, uri: str | None = None
) -> Workspace:
    """A workspace whose processes heartbeat and poll quickly (settings set before it opens)."""
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_SECONDS", "0.3")
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_TIMEOUT", str(timeout))
    monkeypatch.setenv("TRAINYARD_CANCEL_GRACE_SECONDS", "1")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.1")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.5")
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws", tracking_uri=uri)


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Workspace:
    return make_workspace(monkeypatch, tmp_path)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text(textwrap.dedent(TRAIN))
    return folder


def script(src: Path, *arguments: Any) -> ScriptRunConfig:
    return ScriptRunConfig(source_directory=src, script="train.py", arguments=list(arguments))


def sweep(
    template: ScriptRunConfig,
    space: dict[str, Any],
    *,
    max_total_runs: int,
    max_concurrent_runs: int = 2,
    grid: bool = True,
    **kwargs: Any,
) -> HyperDriveConfig:
    sampling = GridParameterSampling(space) if grid else RandomParameterSampling(space)
    return HyperDriveConfig(
        run_config=template,
        hyperparameter_sampling=sampling,
        primary_metric_name="Accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=max_total_runs,
        max_concurrent_runs=max_concurrent_runs,
        **kwargs,
    )


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def wait_terminal(run: Run, timeout: float = 90.0) -> str:
    status: str = wait_until(
        lambda: (s := run.get_status()) in TERMINAL and s, timeout, f"run {run.id} to finish"
    )
    return status


def children_by_index(run: HyperDriveRun) -> dict[int, Run]:
    return {int(c.id.rsplit("_", 1)[1]): c for c in run.get_children()}


def controller_log(run: Run) -> str:
    return run._artifact_store.read_bytes(f"runs/{run.id}/system_logs/hyperdrive.txt").decode()


def hyperparameters(run: HyperDriveRun) -> list[dict[str, Any]]:
    return [json.loads(v) for v in run.get_hyperparameters().values()]


# ---------------------------------------------------------------------------------------------
# a whole grid sweep


@pytest.mark.parametrize("backend", BACKENDS)
def test_grid_sweep_runs_every_point_and_records_the_best(
    backend: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    src: Path,
) -> None:
    uri = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    ws = make_workspace(monkeypatch, tmp_path, uri=uri)
    template = script(src, "--batchsize", 128, "--epochs", 2)
    config = sweep(
        template,
        {"--batchsize": choice(64, 256), "--quality": choice(0.5, 0.8)},
        max_total_runs=10,
    )
    hd = Experiment(ws, "grid").submit(config, tags={"team": "vision"})
    assert isinstance(hd, HyperDriveRun) and hd.type == "hyperdrive"
    assert hd.id.startswith("HD_") and len(hd.id) == 3 + 32
    assert wait_terminal(hd) == "Completed"

    kids = children_by_index(hd)
    assert sorted(kids) == [0, 1, 2, 3]  # grid size 4 < max_total_runs 10
    grid = [(64, 0.5), (64, 0.8), (256, 0.5), (256, 0.8)]
    tags = hd.get_tags()
    for i, (bs, q) in enumerate(grid):
        child = kids[i]
        assert child.id == f"{hd.id}_{i}" and child.parent == hd
        assert child.get_status() == "Completed"
        args = child.get_details()["runDefinition"]["arguments"]
        # the template's arguments first, then the sampled pairs (argparse: last one wins)
        assert args == [
            "--batchsize",
            "128",
            "--epochs",
            "2",
            "--batchsize",
            str(bs),
            "--quality",
            str(q),
        ]
        assert json.loads(tags[f"_aml_system_{child.id}"]) == {"--batchsize": bs, "--quality": q}
        assert tags[f"_aml_system_{child.id}"] == json.dumps({"--batchsize": bs, "--quality": q})
        props = child.get_properties()
        assert json.loads(props["hyperparameters"]) == {"--batchsize": bs, "--quality": q}
        assert props["--batchsize"] == str(bs)
        assert child.get_metrics()["Accuracy"] == [q, q]

    # the config is rebuilt from the parent's tags; the properties hold the warm-start inputs
    assert tags["team"] == "vision"
    assert json.loads(tags["generator_config"]) == config.hyperparameter_sampling.to_json()
    assert json.loads(tags["primary_metric_config"]) == {"name": "Accuracy", "goal": "maximize"}
    assert (tags["max_total_jobs"], tags["max_concurrent_jobs"]) == ("10", "2")
    assert tags["max_duration_minutes"] == "10080"
    assert json.loads(tags["policy_config"]) == {"name": "Default"}
    assert json.loads(tags["platform_config"])["Definition"]["Overrides"]["script"] == "train.py"
    props = hd.get_properties()
    assert (props["resume_from"], props["resume_child_runs"], props["platform"]) == (
        "null",
        "null",
        "local",
    )
    history = [e["status"] for e in hd.get_details()["statusHistory"]]
    assert history == ["NotStarted", "Queued", "Running", "Completed"]

    best = hd.get_best_run_by_primary_metric()
    assert best is not None and best.id in (kids[1].id, kids[3].id)
    table = Run.get_metrics(hd)["best_child_by_primary_metric"]
    assert table["final"][-1] is True and not any(table["final"][:-1])
    assert table["run_id"][-1] == best.id and table["metric_value"][-1] == 0.8
    assert "system_logs/hyperdrive.txt" in hd.get_file_names()
    log = controller_log(hd)
    assert "child 3 (" in log and "sweep Completed (4 Completed)" in log


# ---------------------------------------------------------------------------------------------
# early termination, failures, cancellation, time budget


def test_bandit_cancels_a_clearly_worse_child(ws: Workspace, src: Path) -> None:
    config = sweep(
        script(src, "--slow_below", 0.5),
        {"--quality": choice(0.9, 0.2)},
        max_total_runs=2,
        policy=BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=2),
    )
    hd = Experiment(ws, "bandit").submit(config)
    assert wait_terminal(hd) == "Completed"
    kids = children_by_index(hd)
    assert kids[0].get_status() == "Completed"
    assert kids[1].get_status() == "Canceled"  # 0.2 < 0.9/1.1, long before its 40 epochs
    assert 2 <= len(kids[1].get_metrics()["Accuracy"]) < 40
    assert "child 1 cancelled at interval" in controller_log(hd)
    assert "0.2 < 0.9/1.1 (Bandit slack_factor=0.1)" in controller_log(hd)
    assert hd.get_best_run_by_primary_metric() == kids[0]


def test_a_failing_child_does_not_stop_the_sweep(ws: Workspace, src: Path) -> None:
    config = sweep(
        script(src, "--fail_at", 0.7),
        {"--quality": choice(0.7, 0.4, 0.6)},
        max_total_runs=3,
    )
    hd = Experiment(ws, "failing").submit(config)
    assert wait_terminal(hd) == "Completed"
    kids = children_by_index(hd)
    assert [kids[i].get_status() for i in range(3)] == ["Failed", "Completed", "Completed"]
    # the failed child logged the best value: the flags decide whether it counts
    assert hd.get_best_run_by_primary_metric() == kids[0]
    assert hd.get_best_run_by_primary_metric(include_failed=False) == kids[2]


def test_a_sweep_whose_first_children_all_fail_ends_failed(ws: Workspace, src: Path) -> None:
    config = sweep(script(src, "--fail_at", 0.5), {"--quality": choice(0.5)}, max_total_runs=1)
    hd = Experiment(ws, "broken").submit(config)
    with pytest.raises(ActivityFailedException, match="child runs all failed"):
        hd.wait_for_completion()
    assert hd.get_status() == "Failed"
    assert hd.get_details()["error"]["code"] == "ChildRunsFailed"


def test_cancel_stops_running_children_and_ends_canceled(ws: Workspace, src: Path) -> None:
    config = sweep(
        script(src, "--slow_below", 1.0),  # every child runs 40 epochs
        {"--quality": choice(0.1, 0.2, 0.3, 0.4)},
        max_total_runs=4,
    )
    hd = Experiment(ws, "cancel").submit(config)
    wait_until(
        lambda: sum(c.get_status() == "Running" for c in hd.get_children()) == 2,
        what="two running children",
    )
    assert hd.cancel() is True
    assert wait_terminal(hd) == "Canceled"
    statuses = [c.get_status() for c in hd.get_children()]
    assert statuses == ["Canceled", "Canceled"]
    assert hd.cancel() is False
    assert "the sweep was cancelled" in controller_log(hd)


def test_max_duration_cancels_running_children(ws: Workspace, src: Path) -> None:
    config = sweep(
        script(src, "--slow_below", 1.0),
        {"--quality": choice(0.1, 0.2, 0.3)},
        max_total_runs=3,
        max_duration_minutes=0.04,  # 2.4 s, less than one child needs
    )
    hd = Experiment(ws, "duration").submit(config)
    assert wait_terminal(hd) == "Completed"
    assert {c.get_status() for c in hd.get_children()} == {"Canceled"}
    assert "max_duration_minutes=0.04 reached" in controller_log(hd)


# ---------------------------------------------------------------------------------------------
# controller death, resume, warm start


def test_sigterm_to_the_controller_cancels_the_sweep_cleanly(ws: Workspace, src: Path) -> None:
    """Issue 11 item 7: SIGTERM (a shutdown, ``kill``) is a cancel: parent Canceled, every child
    canceled, nothing left running (it used to die of it and end Failed as a lost supervisor)."""
    space = {"--quality": choice(0.3, 0.5, 0.7, 0.9)}
    hd = Experiment(ws, "sigterm").submit(
        sweep(
            script(src, "--epochs", "2000", "--sleep", "0.1"),
            space,
            max_total_runs=4,
            max_concurrent_runs=2,
        )
    )
    wait_until(
        lambda: sum(c.get_status() == "Running" for c in hd.get_children()) == 2, what="children"
    )
    pid = ws.context.store.get_run(hd.id).runtime["controller_pid"]
    os.kill(pid, signal.SIGTERM)
    assert wait_terminal(hd, timeout=60) == "Canceled", hd.get_details().get("error")
    statuses = [c.get_status() for c in hd.get_children()]
    assert statuses and set(statuses) == {"Canceled"}, statuses
    reasons = [e.reason for e in ws.context.store.status_history(hd.id)]
    assert "the sweep controller received SIGTERM" in reasons
    assert "sweep Canceled" in controller_log(hd)


@pytest.mark.slow
def test_killed_controller_is_reaped_and_resume_finishes_the_sweep(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, src: Path
) -> None:
    ws = make_workspace(monkeypatch, tmp_path, timeout=3.0)
    space = {"--quality": choice(0.3, 0.9, 0.5, 0.7)}
    hd = Experiment(ws, "killed").submit(
        sweep(script(src), space, max_total_runs=4, max_concurrent_runs=1)
    )
    wait_until(lambda: len(list(hd.get_children())) >= 1, what="a first child")
    pid = wait_until(
        lambda: ws.context.store.get_run(hd.id).runtime.get("controller_pid"), what="pid"
    )
    os.kill(pid, signal.SIGKILL)

    assert wait_terminal(hd, timeout=30) == "Failed"
    assert hd.get_details()["error"]["code"] == "SupervisorLost"
    with pytest.raises(ActivityFailedException):
        hd.wait_for_completion()
    old = hyperparameters(hd)

    cont = hd.resume()
    assert isinstance(cont, HyperDriveRun) and cont.id != hd.id
    assert cont.get_properties()["resumed_sweep"] == hd.id
    assert json.loads(cont.get_properties()["resume_from"]) == [hd.id]
    assert cont.get_tags()["max_total_jobs"] == str(4 - len(old))
    assert cont.wait_for_completion()["status"] == "Completed"
    new = hyperparameters(cont)
    # the continuation explores only the points the dead sweep had not started
    assert sorted(q["--quality"] for q in old + new) == [0.3, 0.5, 0.7, 0.9]
    best = cont.get_best_run_by_primary_metric()
    assert best is not None and best.get_metrics()["Accuracy"][0] == 0.9
    assert "warm start:" in controller_log(cont)


def test_warm_start_reuses_earlier_points_and_metrics(ws: Workspace, src: Path) -> None:
    space = {"--quality": choice(0.9, 0.8, 0.3, 0.2)}
    exp = Experiment(ws, "warm")
    first = exp.submit(sweep(script(src), space, max_total_runs=2))
    assert wait_terminal(first) == "Completed"
    assert sorted(q["--quality"] for q in hyperparameters(first)) == [0.8, 0.9]

    # Random sampling of the same finite space: the two earlier points are priors, so only the two
    # others are left; the policy compares the new children with the earlier 0.9 and cancels them.
    second = exp.submit(
        sweep(
            script(src, "--slow_below", 0.5),
            space,
            max_total_runs=4,
            grid=False,
            resume_from=[first],
            policy=BanditPolicy(slack_factor=0.1, delay_evaluation=2),
        )
    )
    assert wait_terminal(second) == "Completed"
    assert sorted(q["--quality"] for q in hyperparameters(second)) == [0.2, 0.3]
    assert {c.get_status() for c in second.get_children()} == {"Canceled"}
    log = controller_log(second)
    assert f"warm start: 2 child runs of {first.id}" in log
    assert "the parameter space is exhausted" in log
    assert json.loads(second.get_properties()["resume_from"]) == [first.id]
    best_any = second.get_best_run_by_primary_metric()
    best_own = second.get_best_run_by_primary_metric(include_resume_from_runs=False)
    assert best_any is not None and best_any.parent == first
    assert best_any.get_metrics()["Accuracy"][0] == 0.9
    assert best_own is not None and best_own.parent == second


@pytest.mark.slow
def test_bayesian_warm_start_gets_the_earlier_trials_as_priors(ws: Workspace, src: Path) -> None:
    space = {"--quality": choice(0.9, 0.5, 0.2)}
    exp = Experiment(ws, "bayes")

    def bayes(**kwargs: Any) -> HyperDriveConfig:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # v1's small-budget advice
            return HyperDriveConfig(
                run_config=script(src),
                hyperparameter_sampling=BayesianParameterSampling(space),
                primary_metric_name="Accuracy",
                primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                max_concurrent_runs=1,
                **kwargs,
            )

    first = exp.submit(bayes(max_total_runs=2))
    assert wait_terminal(first) == "Completed"
    second = exp.submit(bayes(max_total_runs=3, resume_from=[first]))
    assert wait_terminal(second) == "Completed"
    earlier = [q["--quality"] for q in hyperparameters(first)]
    later = [q["--quality"] for q in hyperparameters(second)]
    assert len(earlier) == 2 and len(later) == 1  # the priors used up two of the three points
    assert sorted(earlier + later) == [0.2, 0.5, 0.9]


def test_resume_child_runs_reruns_with_the_old_outputs(ws: Workspace, src: Path) -> None:
    exp = Experiment(ws, "rerun")
    first = exp.submit(sweep(script(src), {"--quality": choice(0.6)}, max_total_runs=1))
    assert wait_terminal(first) == "Completed"
    (old,) = list(first.get_children())

    second = exp.submit(
        sweep(
            script(src),
            {"--quality": choice(0.6, 0.7)},
            max_total_runs=2,
            resume_child_runs=[old],
        )
    )
    assert wait_terminal(second) == "Completed"
    kids = children_by_index(second)
    assert sorted(kids) == [0, 1]
    rerun, fresh = kids[0], kids[1]
    args = rerun.get_details()["runDefinition"]["arguments"]
    assert args[:2] == ["--quality", "0.6"] and args[2] == "--resume-from"
    # a folder of the workspace holding the old child's outputs (the script read its checkpoint)
    assert Path(args[3]).is_absolute() and Path(args[3]).is_relative_to(ws.path)
    assert rerun.get_metrics()["resumed_value"] == 0.6
    assert rerun.get_properties()["resume_child_run"] == old.id
    # the leftover budget explores a new point, not the re-run one
    assert json.loads(second.get_hyperparameters()[fresh.id]) == {"--quality": 0.7}
    assert json.loads(second.get_properties()["resume_child_runs"]) == [old.id]


def test_unmatched_primary_metric_fails_after_the_first_child(ws: Workspace, src: Path) -> None:
    """A primary metric name that matches nothing the first completed child logged ends the
    sweep then, naming what the child did log and the closest name, not after the whole budget."""
    config = HyperDriveConfig(
        run_config=script(src, "--epochs", 1, "--sleep", 0),
        hyperparameter_sampling=GridParameterSampling({"--quality": choice(0.1, 0.2, 0.3, 0.4)}),
        primary_metric_name="accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=4,
        max_concurrent_runs=1,
    )
    run = Experiment(ws, "hd-wrong-metric").submit(config)
    assert isinstance(run, HyperDriveRun)
    with pytest.raises(ActivityFailedException) as info:
        run.wait_for_completion()
    assert "Did you mean 'Accuracy'?" in str(info.value)
    error = run.get_details()["error"]
    assert error["code"] == "PrimaryMetricNotLogged"
    assert error["loggedMetrics"] == ["Accuracy"]
    assert error["suggestion"] == "Accuracy"
    assert len(list(run.get_children())) == 1  # the rest of the budget was not spent
