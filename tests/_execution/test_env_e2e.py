"""Runs in real uv environments built from the package registry (slow: the first build installs).

The environment cache is shared by the tests of this module (``TRAINYARD_ENV_CACHE`` in a
module-wide temporary folder), so the second run of a spec is a cache hit.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from trainyard.core import Environment, Experiment, Run, ScriptRun, ScriptRunConfig, Workspace
from trainyard.core.conda_dependencies import CondaDependencies
from trainyard.exceptions import ActivityFailedException
from trainyard.testing.fixtures import unique_name
from trainyard.train.dnn import Chainer

pytestmark = pytest.mark.slow

TERMINAL = {"Completed", "Failed", "Canceled"}

SCRIPT = """
import six
import trainyard
from trainyard.core import Run

run = Run.get_context()
run.log("six_major", int(six.__version__.split(".")[0]))
print("six", six.__version__, "trainyard", trainyard.__version__)
"""


def submit(experiment: Experiment, config: ScriptRunConfig | Chainer) -> ScriptRun:
    """``experiment.submit(config)``, typed as the ``ScriptRun`` it returns."""
    run = experiment.submit(config)
    assert isinstance(run, ScriptRun)
    return run


@pytest.fixture(scope="module")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("env-cache")


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env_cache: Path) -> Workspace:
    monkeypatch.setenv("TRAINYARD_ENV_CACHE", str(env_cache))
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_SECONDS", "0.5")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.1")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.5")
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text(textwrap.dedent(SCRIPT))
    return folder


def six_env() -> Environment:
    env = Environment("six-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    return env


def wait_terminal(run: Run, timeout: float = 240.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := run.get_status()) not in TERMINAL:
        if time.monotonic() > deadline:
            pytest.fail(f"run {run.id} still {status} after {timeout} s")
        time.sleep(0.1)
    return status


def _at(details: dict[str, Any], status: str) -> dt.datetime:
    for event in details["statusHistory"]:
        if event["status"] == status:
            return dt.datetime.strptime(event["timeUtc"], "%Y-%m-%dT%H:%M:%S.%fZ")
    raise AssertionError(f"{status} not in {details['statusHistory']}")


def _run_in_six_env(ws: Workspace, src: Path) -> tuple[Run, dict[str, Any]]:
    run = submit(Experiment(ws, "uv-env"), ScriptRunConfig(src, "train.py", environment=six_env()))
    status = wait_terminal(run)
    details = run.get_details()
    assert status == "Completed", details.get("error")
    return run, details


def test_run_in_built_environment_then_cache_hit(ws: Workspace, src: Path, tmp_path: Path) -> None:
    first, details = _run_in_six_env(ws, src)
    assert first.get_metrics()["six_major"] == 1
    assert details["resolvedPackages"]["six"] == "1.16.0"
    assert "trainyard" in details["resolvedPackages"]
    runtime = first._refresh().runtime
    assert runtime["python"] != ""
    log = tmp_path / "std_log.txt"
    first.download_file("user_logs/std_log.txt", str(log))
    assert "six 1.16.0 trainyard" in log.read_text()
    assert "system_logs/environment_build.txt" in first.get_file_names()

    # MLflow in the environment would find trainyard's plugin through its entry points, while
    # the environment's package list stays the user's.
    probe = subprocess.run(
        [
            runtime["python"],
            "-c",
            "from importlib.metadata import entry_points; "
            "print(sorted(e.name for e in entry_points(group='mlflow.tracking_store')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "['trainyard']"
    assert "trainyard-runtime" not in details["resolvedPackages"]

    second, details2 = _run_in_six_env(ws, src)
    runtime2 = second._refresh().runtime
    assert runtime2["environment_cached"] is True
    assert runtime2["environment_hash"] == runtime["environment_hash"]
    assert details2["resolvedPackages"]["six"] == "1.16.0"
    prepare = (_at(details2, "Running") - _at(details2, "Preparing")).total_seconds()
    print(f"cache hit: Preparing -> Running took {prepare:.3f} s")
    assert prepare < 1.0


def test_unresolvable_requirement_fails_in_preparing(ws: Workspace, src: Path) -> None:
    env = Environment("broken")
    env.python.conda_dependencies = CondaDependencies.create(
        pip_packages=["this-package-does-not-exist-xyz==1.0"]
    )
    run = submit(Experiment(ws, "uv-broken"), ScriptRunConfig(src, "train.py", environment=env))
    assert wait_terminal(run) == "Failed"
    details = run.get_details()
    error = details["error"]
    assert error["stage"] == "Preparing"
    assert "this-package-does-not-exist-xyz" in error["message"]
    statuses = [e["status"] for e in details["statusHistory"]]
    assert "Preparing" in statuses and "Running" not in statuses
    assert details["startTimeUtc"] is None
    assert "system_logs/environment_build.txt" in run.get_file_names()
    with pytest.raises(ActivityFailedException) as info:
        run.wait_for_completion()
    assert "this-package-does-not-exist-xyz" in str(info.value)


# A v1-era Chainer script: np.int (removed in NumPy 1.24) around one real training step, and (with
# --set-epoch) an assignment to the iterator's epoch, a read-only property from Chainer 6 on.
V1_CHAINER = """
import sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
import numpy as np, chainer, chainer.links as L
from chainer import iterators, optimizers
from trainyard.core import Run

x = np.random.rand(20, 4).astype(np.float32)
y = (np.arange(20) % 3).astype(np.int32)
it = iterators.SerialIterator(chainer.datasets.TupleDataset(x, y), 5)
model = L.Classifier(L.Linear(4, 3))
opt = optimizers.MomentumSGD(0.01)
opt.setup(model)
xb, yb = chainer.dataset.concat_examples(it.next())
model.cleargrads()
loss = model(xb, yb)
loss.backward()
opt.update()
if "--set-epoch" in sys.argv:
    it.epoch = 0
Run.get_context().log("loss", float(loss.array))
print("chainer", chainer.__version__, "numpy", np.__version__, "batch", np.int(len(xb)))
"""


def _chainer_src(tmp_path: Path) -> Path:
    folder = tmp_path / "chainer-src"
    folder.mkdir()
    (folder / "v1.py").write_text(V1_CHAINER)
    return folder


def _completed(run: ScriptRun, tmp_path: Path) -> tuple[dict[str, Any], str]:
    status = wait_terminal(run, timeout=600)
    log = tmp_path / f"{run.id}.txt"
    run.download_file("user_logs/std_log.txt", str(log))
    details = run.get_details()
    assert status == "Completed", (details.get("error"), log.read_text()[-3000:])
    return details, log.read_text()


def test_user_environment_listing_chainer_builds_and_runs_v1_code(
    ws: Workspace, tmp_path: Path
) -> None:
    """Before the framework table this failed to build (No module named 'pkg_resources'), then to
    import (NumPy 2 has no np.sctypes), then on np.int."""
    env = Environment("chainer-user")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["chainer", "pytest"])
    config = ScriptRunConfig(_chainer_src(tmp_path), "v1.py", environment=env)
    details, log = _completed(submit(Experiment(ws, "chainer-user"), config), tmp_path)
    packages = details["resolvedPackages"]
    assert packages["numpy"] == "1.23.5" and int(packages["setuptools"].split(".")[0]) < 74
    assert f"chainer {packages['chainer']} numpy 1.23.5 batch 5" in log


def test_chainer_estimator_honours_5_1_0_and_records_what_was_installed(
    ws: Workspace, tmp_path: Path
) -> None:
    """Before, 5.1.0 was mapped to 7.8.1, where this v1 script fails ('epoch' has no setter)."""
    est = Chainer(
        source_directory=str(_chainer_src(tmp_path)),
        compute_target="local",
        entry_script="v1.py",
        script_params={"--set-epoch": ""},
        framework_version="5.1.0",
    )
    details, log = _completed(submit(Experiment(ws, "chainer-5"), est), tmp_path)
    info = details["runDefinition"]["frameworkInfo"]
    assert info["version"] == "5.1.0" and info["mapped"] == ""
    assert details["resolvedPackages"]["chainer"] == info["version"]
    assert "chainer 5.1.0 numpy 1.23.5 batch 5" in log


PINNED_SQLALCHEMY_SCRIPT = """
import sys
import sqlalchemy
from trainyard.core import Run

run = Run.get_context()
run.log("sqlalchemy_major", int(sqlalchemy.__version__.split(".")[0]))
run.log_list("points", [1.0, 2.5, float("nan")])
run.tag("who", "pinned")
with open("outputs/model.txt", "w") as fh:
    fh.write("weights")
run.upload_file("extra/notes.txt", "outputs/model.txt")
run.flush()
# The in-run client talks to the supervisor: none of trainyard's own dependencies are loaded.
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "psycopg", "pathspec"))
print("loaded:", loaded)
assert loaded == [], loaded
assert "trainyard._store.sql" not in sys.modules
"""


def test_a_user_pin_on_trainyards_own_dependency_installs_and_records(
    ws: Workspace, tmp_path: Path
) -> None:
    """Issue 10, item 3: `--pip "sqlalchemy<2"` used to fail with "you require alembic==…"."""
    folder = tmp_path / "pinned"
    folder.mkdir()
    (folder / "train.py").write_text(textwrap.dedent(PINNED_SQLALCHEMY_SCRIPT))
    env = Environment("old-sqlalchemy")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["sqlalchemy<2"])
    run = submit(Experiment(ws, "pins"), ScriptRunConfig(folder, "train.py", environment=env))
    status = wait_terminal(run)
    details = run.get_details()
    assert status == "Completed", details.get("error")
    resolved = details["resolvedPackages"]
    assert resolved["sqlalchemy"].startswith("1.")
    assert not {"alembic", "pathspec", "pyyaml", "packaging", "psycopg"} & set(resolved)
    metrics = run.get_metrics()
    assert metrics["sqlalchemy_major"] == 1
    assert metrics["points"][:2] == [1.0, 2.5] and metrics["points"][2] != metrics["points"][2]
    assert run.get_tags()["who"] == "pinned"
    assert {"extra/notes.txt", "outputs/model.txt"} <= set(run.get_file_names())
