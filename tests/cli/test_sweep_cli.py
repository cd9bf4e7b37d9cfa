"""``trainyard sweep list|show|best|cancel|resume`` on real sweeps (a controller process, child runs).

The children run ``train.py`` below (no ML framework): it logs ``Accuracy`` = ``--quality`` once per
"epoch", so every child's primary metric is known from its hyperparameters; ``--slow_below`` makes
low-quality children run long enough to be cancelled, ``--quality 0`` logs nothing.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from trainyard.cli import app
from trainyard.core import Experiment, Run, ScriptRunConfig, Workspace
from trainyard.testing.fixtures import unique_name
from trainyard.train.hyperdrive import (
    GridParameterSampling,
    HyperDriveConfig,
    HyperDriveRun,
    PrimaryMetricGoal,
    choice,
)

if TYPE_CHECKING:
    from conftest import CliRun

TERMINAL = {"Completed", "Failed", "Canceled"}
#: Fast heartbeats and polling, for the controller, the children and the CLI processes alike.
FAST = {
    "TRAINYARD_HEARTBEAT_SECONDS": "0.3",
    "TRAINYARD_HEARTBEAT_TIMEOUT": "10",
    "TRAINYARD_CANCEL_GRACE_SECONDS": "1",
    "TRAINYARD_POLLING_INTERVAL_MIN": "0.1",
    "TRAINYARD_POLLING_INTERVAL_MAX": "0.5",
}

TRAIN = """
import argparse, time
from trainyard.core import Run

p = argparse.ArgumentParser()
p.add_argument("--quality", type=float, default=0.5)
p.add_argument("--epochs", type=int, default=2)
p.add_argument("--slow_below", type=float, default=-1.0)
p.add_argument("--sleep", type=float, default=0.05)
a = p.parse_args()
run = Run.get_context()
for epoch in range(200 if a.quality < a.slow_below else a.epochs):
    if a.quality != 0:
        run.log("Accuracy", a.quality)
    time.sleep(a.sleep)
"""


@dataclass(frozen=True)
class Sweeps:
    ws_path: Path
    done: str  # Completed grid sweep over quality 0.3, 0.9, 0.6 (experiment "tune")
    empty: str  # Completed sweep whose only child logged no Accuracy (experiment "silent")


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return value


def wait_terminal(run: Run, timeout: float = 60.0) -> str:
    status: str = wait_until(
        lambda: (s := run.get_status()) in TERMINAL and s, timeout, f"{run.id} to finish"
    )
    return status


def grid_sweep(src: Path, space: dict[str, Any], *args: Any, **kwargs: Any) -> HyperDriveConfig:
    return HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=src, script="train.py", arguments=list(args)),
        hyperparameter_sampling=GridParameterSampling(space),
        primary_metric_name="Accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        **kwargs,
    )


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sweep-src")
    (folder / "train.py").write_text(textwrap.dedent(TRAIN))
    return folder


@pytest.fixture(scope="module")
def fast_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAST.items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory, src: Path, fast_env: None) -> Sweeps:
    ws = Workspace.create(unique_name("ws"), path=tmp_path_factory.mktemp("sweep-cli") / "ws")
    done = Experiment(ws, "tune").submit(
        grid_sweep(src, {"--quality": choice(0.3, 0.9, 0.6)}, max_total_runs=3)
    )
    empty = Experiment(ws, "silent").submit(
        grid_sweep(src, {"--quality": choice(0)}, max_total_runs=1)
    )
    assert wait_terminal(done) == "Completed"
    # a child that logs no Accuracy fails the sweep after it (PrimaryMetricNotLogged)
    assert wait_terminal(empty) == "Failed"
    return Sweeps(ws_path=ws.path, done=done.id, empty=empty.id)


@pytest.fixture
def ty(sweeps: Sweeps) -> CliRun:
    """``trainyard`` on the sweeps' workspace, in process (``CliRunner``: a console-script start
    costs ~1 s here; ``test_list_without_sweeps`` and the cancel test use the real one)."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"TRAINYARD_WORKSPACE": str(sweeps.ws_path), "COLUMNS": "200", **FAST}
        result = CliRunner().invoke(app, list(args), env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return subprocess.CompletedProcess(
            list(args), result.exit_code, result.stdout, result.stderr
        )

    return run


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def child(sweep_id: str, i: int) -> str:
    return f"{sweep_id}_{i}"


# -- list -------------------------------------------------------------------------------------
def test_list_shows_each_sweep_with_its_best_child(ty: CliRun, sweeps: Sweeps) -> None:
    rows = as_json(ty("sweep", "list", "--json"))
    assert [r["runId"] for r in rows] == [sweeps.empty, sweeps.done]  # newest first
    done = rows[1]
    assert done["experiment"] == "tune" and done["status"] == "Completed"
    assert (done["children"], done["maxTotalRuns"]) == (3, 3)
    assert done["childStatuses"] == {"Completed": 3}
    assert (done["primaryMetric"], done["goal"]) == ("Accuracy", "maximize")
    assert (done["bestRunId"], done["bestMetric"]) == (child(sweeps.done, 1), 0.9)
    assert rows[0]["bestRunId"] is None and rows[0]["bestMetric"] is None

    only = as_json(ty("sweep", "list", "--experiment", "tune", "--json"))
    assert [r["runId"] for r in only] == [sweeps.done]
    assert as_json(ty("sweep", "list", "--limit", "1", "--json"))[0]["runId"] == sweeps.empty

    table = ty("sweep", "list")
    assert table.returncode == 0, table.stderr
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith(sweeps.done))
    assert "Completed" in line and "3/3" in line and "Accuracy=0.9 (max)" in line
    assert child(sweeps.done, 1) in line


def test_list_of_an_unknown_experiment_is_a_clean_error(
    ty: CliRun, clean_error: Callable[..., None]
) -> None:
    proc = ty("sweep", "list", "--experiment", "nope")
    clean_error(proc, "EXPERIMENT_NOT_FOUND")
    assert "silent, tune" in proc.stderr


def test_list_without_sweeps(cli: CliRun, tmp_path: Path) -> None:
    ws = Workspace.create("plain", path=tmp_path / "plain")
    Experiment(ws, "train").start_logging().complete()  # a run, but no sweep
    proc = cli("sweep", "list", "-w", str(ws.path))
    assert proc.returncode == 0 and "No HyperDrive sweeps in workspace plain" in proc.stdout
    assert json.loads(cli("sweep", "list", "-w", str(ws.path), "--json").stdout) == []


# -- show -------------------------------------------------------------------------------------
def test_show_sorts_children_by_the_primary_metric(ty: CliRun, sweeps: Sweeps) -> None:
    data = as_json(ty("sweep", "show", sweeps.done, "--json"))
    assert data["runId"] == sweeps.done and data["status"] == "Completed"
    assert [c["runId"] for c in data["children"]] == [child(sweeps.done, i) for i in (1, 2, 0)]
    assert [c["bestPrimaryMetric"] for c in data["children"]] == [0.9, 0.6, 0.3]
    assert data["children"][0]["hyperparameters"] == {"--quality": 0.9}
    assert {c["status"] for c in data["children"]} == {"Completed"}
    config = data["config"]
    assert config["sampling"]["name"] == "GRID"
    assert config["sampling"]["parameter_space"] == {"--quality": ["choice", [[0.3, 0.9, 0.6]]]}
    assert config["primaryMetric"] == {"name": "Accuracy", "goal": "maximize"}
    assert config["policy"] == {"name": "Default"}
    assert (config["maxTotalRuns"], config["maxConcurrentRuns"]) == (3, 3)
    assert config["maxDurationMinutes"] == 10080
    assert config["template"] == {"script": "train.py", "arguments": [], "target": "local"}

    top = as_json(ty("sweep", "show", sweeps.done, "--top", "1", "--json"))
    assert [c["runId"] for c in top["children"]] == [child(sweeps.done, 1)]
    assert top["children"] and top["children"] == data["children"][:1]
    assert top["bestRunId"] == child(sweeps.done, 1)

    text = ty("sweep", "show", sweeps.done, "--top", "2")
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "Children by Accuracy (maximize), top 2 of 3" in out
    assert "--quality=choice(0.3, 0.9, 0.6)" in out
    assert out.index(child(sweeps.done, 1)) < out.index(child(sweeps.done, 2))
    assert f"{child(sweeps.done, 0)} " not in out  # the third child is cut by --top


def test_show_of_a_child_or_unknown_run_is_a_clean_error(
    ty: CliRun, sweeps: Sweeps, clean_error: Callable[..., None]
) -> None:
    proc = ty("sweep", "show", child(sweeps.done, 0))
    clean_error(proc, "INVALID_VALUE")
    assert f"child run of {sweeps.done}" in proc.stderr
    clean_error(ty("sweep", "show", "HD_nope"), "RUN_NOT_FOUND")
    bad = ty("sweep", "show", "HD_nope", "--json")
    assert json.loads(bad.stdout)["error"]["code"] == "RUN_NOT_FOUND"


# -- best -------------------------------------------------------------------------------------
def test_best_names_the_child_its_value_and_arguments(ty: CliRun, sweeps: Sweeps) -> None:
    data = as_json(ty("sweep", "best", sweeps.done, "--json"))
    assert data == {
        "sweepId": sweeps.done,
        "runId": child(sweeps.done, 1),
        "status": "Completed",
        "primaryMetric": "Accuracy",
        "goal": "maximize",
        "value": 0.9,
        "hyperparameters": {"--quality": 0.9},
        "arguments": ["--quality", "0.9"],
    }
    assert as_json(ty("sweep", "best", sweeps.done, "--completed-only", "--json")) == data
    text = ty("sweep", "best", sweeps.done)
    assert f"Best child of {sweeps.done}: {child(sweeps.done, 1)} (Completed)" in text.stdout
    assert "Accuracy (maximize): 0.9" in text.stdout
    assert "arguments: --quality 0.9" in text.stdout


def test_best_without_a_logged_metric_is_not_found(
    ty: CliRun, sweeps: Sweeps, clean_error: Callable[..., None]
) -> None:
    proc = ty("sweep", "best", sweeps.empty)
    clean_error(proc, "NOT_FOUND")
    assert "no child run with a logged 'Accuracy'" in proc.stderr


# -- cancel and resume ------------------------------------------------------------------------
@pytest.mark.slow
def test_cancel_then_resume_finishes_the_sweep(
    ty: CliRun, cli: CliRun, sweeps: Sweeps, src: Path, clean_error: Callable[..., None]
) -> None:
    ws = Workspace(path=sweeps.ws_path)
    # Grid order: 0.2 first, and it runs 200 slow epochs; 0.8 is quick.
    hd = Experiment(ws, "stop").submit(
        grid_sweep(
            src,
            {"--quality": choice(0.2, 0.8)},
            "--slow_below",
            0.5,
            "--sleep",
            0.2,
            max_total_runs=2,
            max_concurrent_runs=1,
        )
    )
    assert isinstance(hd, HyperDriveRun)
    wait_until(
        lambda: any(c.get_status() == "Running" for c in hd.get_children()), what="a child running"
    )
    clean_error(ty("sweep", "resume", hd.id), "USER_ERROR")  # still running: nothing to resume

    env = {"TRAINYARD_WORKSPACE": str(sweeps.ws_path), **FAST}
    data = as_json(cli("sweep", "cancel", hd.id, "--json", env=env))  # the console script
    assert data["runId"] == hd.id and data["canceled"] is True
    assert data["status"] in ("CancelRequested", "Canceled")
    assert wait_terminal(hd) == "Canceled"
    assert [c.get_status() for c in hd.get_children()] == ["Canceled"]
    again = ty("sweep", "cancel", hd.id)
    clean_error(again, "RUN_FINISHED")

    resumed = as_json(ty("sweep", "resume", hd.id, "--json"))
    assert resumed["runId"] == hd.id and resumed["resumedRunId"] != hd.id
    assert resumed["maxTotalRuns"] == 1  # the budget the cancelled sweep had left
    cont = Run.get(ws, resumed["resumedRunId"])
    assert isinstance(cont, HyperDriveRun)
    assert wait_terminal(cont) == "Completed"
    # the continuation ran the point the cancelled sweep had not started
    assert [json.loads(v) for v in cont.get_hyperparameters().values()] == [{"--quality": 0.8}]
    best = as_json(ty("sweep", "best", cont.id, "--json"))
    assert best["value"] == 0.8 and best["runId"] == child(cont.id, 0)
    listed = as_json(ty("sweep", "show", cont.id, "--json"))
    assert listed["config"]["resumeFrom"] == [hd.id]

    clean_error(ty("sweep", "resume", cont.id), "USER_ERROR")  # completed: nothing to resume


SPEC = """
experiment: from-spec
script: train.py
arguments: [--epochs, 1]
sampling:
  type: grid
  parameters:
    --quality: [0.2, 0.8]
primary_metric: {name: Accuracy, goal: maximize}
policy: {type: bandit, slack_factor: 0.2}
max_total_runs: 2
max_concurrent_runs: 2
tags: {team: vision}
"""


def test_submit_from_a_yaml_spec_runs_the_sweep(
    ty: CliRun, sweeps: Sweeps, src: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "sweep.yml"
    spec.write_text(SPEC.replace("script: train.py", f"source_directory: {src}\nscript: train.py"))
    out = ty("sweep", "submit", str(spec), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["experiment"] == "from-spec" and data["maxTotalRuns"] == 2
    hd = Run.get(Workspace(path=sweeps.ws_path), data["runId"])
    assert wait_terminal(hd) == "Completed"
    best = json.loads(ty("sweep", "best", data["runId"], "--json").stdout)
    assert best["value"] == pytest.approx(0.8) and best["hyperparameters"] == {"--quality": 0.8}
    assert hd.get_tags()["team"] == "vision"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("max_total_runs: 2", "max_totl_runs: 2"), "unknown key"),
        (("--quality: [0.2, 0.8]", "--quality: {uniformm: [0, 1]}"), "unknown expression"),
        (("type: grid", "type: sobol"), "sampling type 'sobol'"),
        (("script: train.py", "script: missing.py"), "is not a file"),
        (("type: bandit", "type: hyperband"), "policy type"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_key(
    ty: CliRun, src: Path, tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    spec = tmp_path / "sweep.yml"
    text = SPEC.replace("script: train.py", f"source_directory: {src}\nscript: train.py")
    spec.write_text(text.replace(*edit, 1))
    out = ty("sweep", "submit", str(spec), "--json")
    assert out.returncode != 0
    assert message in out.stdout + out.stderr
