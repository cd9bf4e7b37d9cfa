"""``ScriptRunConfig``: what it holds, and what ``submit`` refuses before anything is stored.

Every refused submission must raise a typed error naming the problem and leave no run row, no
snapshot manifest and no run folder behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainyard._execution.targets import detect_gpus
from trainyard.core import Environment, Experiment, ScriptRun, ScriptRunConfig, Workspace
from trainyard.core.conda_dependencies import CondaDependencies
from trainyard.core.runconfig import (
    DockerConfiguration,
    MpiConfiguration,
    PyTorchConfiguration,
    RunConfiguration,
)
from trainyard.exceptions import (
    ComputeTargetException,
    SnapshotException,
    TrainyardError,
    UserErrorException,
    ValidationError,
)
from trainyard.testing.fixtures import unique_name


def submit(experiment: Experiment, config: ScriptRunConfig) -> ScriptRun:
    """``experiment.submit(config)``, typed as the ``ScriptRun`` it returns."""
    run = experiment.submit(config)
    assert isinstance(run, ScriptRun)
    return run


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Workspace:
    monkeypatch.setenv("TRAINYARD_SNAPSHOT_MAX_FILES", "5")
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text("print('hi')\n")
    return folder


def _state(ws: Workspace) -> tuple[int, list[str], bool]:
    runs, _ = ws.context.store.list_runs(
        workspace_id=ws.context.workspace_id, include_children=True, limit=1000
    )
    manifests = ws.path / "snapshots" / "manifests"
    names = sorted(p.name for p in manifests.iterdir()) if manifests.is_dir() else []
    return len(runs), names, (ws.path / "runs").is_dir() and any((ws.path / "runs").iterdir())


@pytest.fixture
def nothing_stored(ws: Workspace) -> Iterator[None]:
    """Asserts the test's refused submissions stored nothing."""
    before = _state(ws)
    assert before == (0, [], False)
    yield
    assert _state(ws) == before


def _bad_env() -> Environment:
    env = Environment("bad-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["numpy>>=1.0 ~~"])
    return env


def _kwargs(case: str, src: Path, tmp_path: Path) -> dict[str, Any]:
    base: dict[str, Any] = {"source_directory": src, "script": "train.py"}
    if case == "missing-source":
        return {**base, "source_directory": tmp_path / "nope"}
    if case == "missing-script":
        return {**base, "script": "nope.py"}
    if case == "script-escapes":
        (tmp_path / "outside.py").write_text("print('outside')\n")
        return {**base, "script": "../outside.py"}
    if case == "script-absolute":
        return {**base, "script": str(src / "train.py")}
    if case == "script-ignored":
        (src / ".trainyardignore").write_text("*.py\n")
        return base
    if case == "script-symlink-outside":
        (tmp_path / "outside.py").write_text("print('outside')\n")
        (src / "link.py").symlink_to(tmp_path / "outside.py")
        return {**base, "script": "link.py"}
    if case == "no-script":
        return {"source_directory": src}
    if case == "script-and-command":
        return {**base, "command": "echo hi"}
    if case == "dict-argument":
        return {**base, "arguments": ["--cfg", {"lr": 0.1}]}
    if case == "list-argument":
        return {**base, "arguments": [[1, 2]]}
    if case == "object-argument":
        return {**base, "arguments": [object()]}
    if case == "unknown-target":
        return {**base, "compute_target": "no-such-cluster"}
    if case == "bad-environment":
        return {**base, "environment": _bad_env()}
    if case == "not-an-environment":
        return {**base, "environment": {"name": "x"}}
    if case == "mpi-nodes":
        return {**base, "distributed_job_config": MpiConfiguration(node_count=2)}
    if case == "mpi-zero-processes":
        return {**base, "distributed_job_config": MpiConfiguration(process_count_per_node=0)}
    if case == "pytorch-nccl":
        if detect_gpus() > 0:
            pytest.skip("this machine has a GPU: NCCL is valid on local compute")
        return {**base, "distributed_job_config": PyTorchConfiguration(process_count=2)}
    if case == "pytorch-uneven":
        config = PyTorchConfiguration("Gloo", process_count=3, node_count=2)
        return {**base, "distributed_job_config": config}
    if case == "too-many-ranks":
        config = MpiConfiguration(process_count_per_node=8 * (os.cpu_count() or 1) + 1)
        return {**base, "distributed_job_config": config}
    if case == "bad-duration":
        return {**base, "max_run_duration_seconds": 0}
    if case == "snapshot-too-many-files":
        for i in range(10):
            (src / f"data_{i}.txt").write_text(str(i))
        return base
    raise AssertionError(case)


CASES: list[tuple[str, type[TrainyardError], str]] = [
    ("missing-source", UserErrorException, "does not exist"),
    ("missing-script", UserErrorException, "nope.py"),
    ("script-escapes", UserErrorException, "../outside.py"),
    ("script-absolute", UserErrorException, "relative to the source directory"),
    ("script-ignored", UserErrorException, "excluded from the snapshot"),
    ("script-symlink-outside", UserErrorException, "excluded from the snapshot"),
    ("no-script", UserErrorException, "needs a script"),
    ("script-and-command", UserErrorException, "either script"),
    ("dict-argument", ValidationError, "Argument 1"),
    ("list-argument", ValidationError, "is a list"),
    ("object-argument", ValidationError, "is a object"),
    ("unknown-target", ComputeTargetException, "no-such-cluster"),
    ("bad-environment", ValidationError, "numpy>>=1.0 ~~"),
    ("not-an-environment", ValidationError, "must be a trainyard Environment"),
    ("mpi-nodes", ComputeTargetException, "needs 2 nodes"),
    ("mpi-zero-processes", ValidationError, "process_count_per_node must be a positive integer"),
    ("pytorch-nccl", ComputeTargetException, "NCCL needs GPUs"),
    ("pytorch-uneven", ValidationError, "multiple of node_count"),
    ("too-many-ranks", ComputeTargetException, "per core"),
    ("bad-duration", ValidationError, "max_run_duration_seconds"),
    ("snapshot-too-many-files", SnapshotException, "5"),
]


@pytest.mark.parametrize(("case", "error", "text"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.usefixtures("nothing_stored")
def test_refused_submission_stores_nothing(
    ws: Workspace, src: Path, tmp_path: Path, case: str, error: type[TrainyardError], text: str
) -> None:
    config = ScriptRunConfig(**_kwargs(case, src, tmp_path))
    with pytest.raises(error) as info:
        submit(Experiment(ws, "refused"), config)
    assert text in info.value.message


def test_use_docker_runs_as_a_uv_environment_with_a_warning(ws: Workspace, src: Path) -> None:
    """Every 2021+ v1 sample sets ``DockerConfiguration(use_docker=True)``: accepted, with a
    warning that the environment runs as a uv virtual environment (no container engine)."""
    config = ScriptRunConfig(
        src, "train.py", docker_runtime_config=DockerConfiguration(use_docker=True)
    )
    with pytest.warns(UserWarning, match="uv virtual environment"):
        run = submit(Experiment(ws, "docker"), config)
    assert run.wait_for_completion()["status"] == "Completed"


def test_runconfig_reexports_conda_dependencies() -> None:
    from trainyard.core.conda_dependencies import CondaDependencies
    from trainyard.core.runconfig import CondaDependencies as Reexported

    assert Reexported is CondaDependencies


@pytest.mark.usefixtures("nothing_stored")
def test_snapshot_limit_names_the_limit(ws: Workspace, src: Path) -> None:
    for i in range(10):
        (src / f"data_{i}.txt").write_text(str(i))
    with pytest.raises(SnapshotException) as info:
        submit(Experiment(ws, "refused"), ScriptRunConfig(src, "train.py"))
    assert ".trainyardignore" in info.value.message


def test_snapshot_file_limit_can_be_lifted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, src: Path
) -> None:
    """``TRAINYARD_SNAPSHOT_NO_FILE_LIMIT`` lifts the cap (v1: ``AML_SNAPSHOT_NO_FILE_LIMIT``)."""
    monkeypatch.setenv("TRAINYARD_SNAPSHOT_MAX_FILES", "5")
    monkeypatch.setenv("AML_SNAPSHOT_NO_FILE_LIMIT", "true")
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws2")
    for i in range(10):
        (src / f"data_{i}.txt").write_text(str(i))
    run = submit(Experiment(ws, "lifted"), ScriptRunConfig(src, "train.py"))
    assert run.properties["ContentSnapshotId"]
    assert run.wait_for_completion(wait_post_processing=True)["status"] == "Completed"


# ---------------------------------------------------------------------------------------------
# the object itself (no submission)


def test_defaults_follow_v1() -> None:
    config = ScriptRunConfig("src", "train.py")
    assert config.max_run_duration_seconds == 2_592_000
    assert config.arguments == []
    assert config.compute_target == "local"
    assert config.target == "local"
    assert config.command is None
    assert config.environment is not None
    assert config.environment.python.user_managed_dependencies is True
    assert "train.py" in repr(config)


def _rc() -> RunConfiguration:
    rc = RunConfiguration(script="from_rc.py", arguments=["--a", 1])
    rc.target = "rc-target"
    rc.environment_variables = {"K": "V"}
    return rc


def test_explicit_arguments_win_over_run_config() -> None:
    env = Environment("explicit")
    config = ScriptRunConfig(
        "src",
        script="explicit.py",
        arguments=["--b", 2],
        run_config=_rc(),
        compute_target="explicit-target",
        environment=env,
    )
    assert config.script == "explicit.py"
    assert config.arguments == ["--b", 2]
    assert config.compute_target == "explicit-target"
    assert config.environment is env
    assert config.environment_variables == {"K": "V"}

    inherited = ScriptRunConfig("src", run_config=_rc())
    assert inherited.script == "from_rc.py"
    assert inherited.arguments == ["--a", 1]
    assert inherited.compute_target == "rc-target"


def test_run_config_changes_after_construction_are_honoured(ws: Workspace, src: Path) -> None:
    """v1 notebooks set ``src.run_config.target = …`` (and environment variables) afterwards."""
    config = ScriptRunConfig(src, "train.py")
    config.run_config.target = "no-such-cluster"
    with pytest.raises(ComputeTargetException):
        submit(Experiment(ws, "rc"), config)
    config.run_config.target = "local"
    config.run_config.environment_variables["FROM_RC"] = "1"
    env = Environment("later")
    env.python.user_managed_dependencies = True
    config.run_config.environment = env
    run = submit(Experiment(ws, "rc"), config)
    definition = run.get_details()["runDefinition"]
    assert definition["environmentVariables"] == {"FROM_RC": "1"}
    assert definition["environment"]["name"] == "later"
    assert run.wait_for_completion(wait_post_processing=True)["status"] == "Completed"


def test_explicit_arguments_are_written_into_run_config() -> None:
    rc = RunConfiguration()
    env = Environment("explicit")
    config = ScriptRunConfig(
        "src",
        "train.py",
        run_config=rc,
        compute_target="cluster",
        environment=env,
        docker_runtime_config=DockerConfiguration(use_docker=False),
    )
    assert config.run_config is rc
    assert rc.target == "cluster" and rc.environment is env
    config.environment_variables = {"A": "1"}
    assert rc.environment_variables == {"A": "1"}


def test_numbers_and_paths_are_stringified(ws: Workspace, src: Path) -> None:
    numpy = pytest.importorskip("numpy")
    from decimal import Decimal

    args = ["--n", numpy.int64(3), "--lr", numpy.float32(0.5), "--d", Decimal("0.1")]
    args += ["--flag", False, "--data", Path("data/train.csv"), "--x", 7]
    run = submit(Experiment(ws, "args"), ScriptRunConfig(src, "train.py", arguments=args))
    expected = ["--n", "3", "--lr", "0.5", "--d", "0.1", "--flag", "False"]
    expected += ["--data", "data/train.csv", "--x", "7"]
    assert run.get_details()["runDefinition"]["arguments"] == expected
    assert run.wait_for_completion(wait_post_processing=True)["status"] == "Completed"
