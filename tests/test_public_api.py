"""The public surface: v1 import paths resolve, ``__all__`` lists are sorted and importable."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

V1_PATHS = [
    (
        "trainyard.core",
        [
            "Workspace",
            "Experiment",
            "Environment",
            "ScriptRunConfig",
            "Run",
            "Model",
            "Dataset",
            "Datastore",
            "ComputeTarget",
            "RunConfiguration",
            "VERSION",
        ],
    ),
    ("trainyard.core.compute", ["ComputeTarget", "AmlCompute", "LocalCompute"]),
    ("trainyard.core.compute_target", ["ComputeTargetException"]),
    (
        "trainyard.core.runconfig",
        [
            "RunConfiguration",
            "DockerConfiguration",
            "MpiConfiguration",
            "PyTorchConfiguration",
            "TensorflowConfiguration",
        ],
    ),
    ("trainyard.core.conda_dependencies", ["CondaDependencies"]),
    ("trainyard.core.model", ["Model"]),
    ("trainyard.core.run", ["Run"]),
    ("trainyard.train.estimator", ["Estimator"]),
    (
        "trainyard.train.dnn",
        ["Chainer", "PyTorch", "TensorFlow", "Mpi", "Nccl", "Gloo", "ParameterServer"],
    ),
    ("trainyard.widgets", ["RunDetails"]),
    ("trainyard.telemetry", ["set_diagnostics_collection"]),
    (
        "trainyard.exceptions",
        [
            "UserErrorException",
            "ComputeTargetException",
            "ActivityFailedException",
            "RunEnvironmentException",
            "ExperimentExecutionException",
            "ModelNotFoundException",
            "ModelPathNotFoundException",
            "WebserviceException",
            "SnapshotException",
            "HyperDriveConfigException",
        ],
    ),
]


@pytest.mark.parametrize(("module", "names"), V1_PATHS, ids=[m for m, _ in V1_PATHS])
def test_v1_import_paths(module: str, names: list[str]) -> None:
    mod = importlib.import_module(module)
    for name in names:
        assert getattr(mod, name) is not None, f"{module}.{name}"


@pytest.mark.parametrize("module", ["trainyard", "trainyard.core", "trainyard.exceptions"])
def test_all_is_sorted_and_resolves(module: str) -> None:
    mod = importlib.import_module(module)
    assert list(mod.__all__) == sorted(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), name


def test_exceptions_share_one_root() -> None:
    exc = importlib.import_module("trainyard.exceptions")
    for name in exc.__all__:
        assert issubclass(getattr(exc, name), exc.TrainyardError)


def test_import_trainyard_is_light() -> None:
    code = "import sys, trainyard, trainyard.core; print(sorted(m for m in ('sqlalchemy','optuna','fastapi','ray','torch') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_telemetry_is_a_no_op() -> None:
    from trainyard.telemetry import set_diagnostics_collection

    assert set_diagnostics_collection(send_diagnostics=True) is None


def test_run_details_renders_a_finished_run(workspace, capsys) -> None:  # type: ignore[no-untyped-def]
    from trainyard.core import Experiment
    from trainyard.widgets import RunDetails

    with Experiment(workspace, "widget").start_logging() as run:
        run.log("Accuracy", 0.5)
        run.log("Accuracy", 0.75)
    RunDetails(run, refresh_seconds=0.1).show()
    out = capsys.readouterr().out
    assert run.id in out and "Completed" in out and "Accuracy" in out and "0.7500" in out
