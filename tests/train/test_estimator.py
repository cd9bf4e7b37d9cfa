"""Estimators (aml-reference §6): v1 signatures, ``script_params`` flattening, framework versions,
package merging, ``environment_definition``, and the submit-time checks that store nothing.

The submitting tests run a tiny script in a user-managed environment (this interpreter), so they
take a second or two and need no framework installed; the framework's own environments are built
in ``test_dnn_e2e.py``.
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from trainyard.core import Environment, Experiment, ScriptRun, Workspace
from trainyard.core.compute.target import resolve_target
from trainyard.exceptions import ComputeTargetException, UserErrorException, ValidationError
from trainyard.testing.fixtures import unique_name
from trainyard.train.dnn import Chainer, PyTorch, TensorFlow
from trainyard.train.estimator import Estimator, flatten_script_params, merge_packages

V1_PARAMS = {"--epochs": 10, "--batchsize": 128, "--output_dir": "./outputs"}
V1_ARGV = ["--epochs", "10", "--batchsize", "128", "--output_dir", "./outputs"]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A source folder with a script that records its argv."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text(
        textwrap.dedent(
            """
            import json, os, sys
            os.makedirs("outputs", exist_ok=True)
            with open("outputs/argv.json", "w") as f:
                json.dump(sys.argv[1:], f)
            print("ARGV", json.dumps(sys.argv[1:]))
            """
        )
    )
    return folder


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.05")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.2")
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws")


def this_python() -> Environment:
    """An environment that installs nothing and runs the script with this interpreter."""
    env = Environment("this-python")
    env.python.user_managed_dependencies = True
    return env


def nothing_stored(ws: Workspace, exp: Experiment) -> None:
    assert list(exp.get_runs()) == []
    assert ws.context.artifacts.list("runs") == []
    snapshots = ws.path / "snapshots"
    assert not snapshots.exists() or not any(p.is_file() for p in snapshots.rglob("*"))


# ------------------------------------------------------------------------------ signatures


def test_every_v1_keyword_is_accepted(src: Path) -> None:
    est = Chainer(
        source_directory=str(src),
        compute_target="local",
        vm_size=None,
        vm_priority=None,
        entry_script="train.py",
        script_params=V1_PARAMS,
        node_count=1,
        process_count_per_node=1,
        distributed_backend=None,
        distributed_training=None,
        use_gpu=False,
        use_docker=True,
        custom_docker_base_image=None,
        custom_docker_image=None,
        image_registry_details=None,
        user_managed=False,
        conda_packages=None,
        pip_packages=["numpy", "pytest"],
        conda_dependencies_file_path=None,
        pip_requirements_file_path=None,
        conda_dependencies_file=None,
        pip_requirements_file=None,
        environment_variables={"A": "1"},
        environment_definition=None,
        inputs=None,
        source_directory_data_store=None,
        shm_size=None,
        resume_from=None,
        max_run_duration_seconds=600,
        framework_version="5.1.0",
    )
    cfg = est.run_config
    assert cfg.script == "train.py"
    assert cfg.arguments == V1_ARGV
    assert cfg.max_run_duration_seconds == 600
    assert cfg.environment_variables == {"A": "1"}
    # TensorFlow adds its two parameters after process_count_per_node.
    tf = TensorFlow(str(src), entry_script="train.py", worker_count=2, parameter_server_count=1)
    assert (tf.worker_count, tf.parameter_server_count) == (2, 1)
    # The generic Estimator takes the same signature.
    assert Estimator(
        str(src), entry_script="train.py", script_params={"-x": 1}
    ).run_config.arguments == ["-x", "1"]


def test_entry_script_is_required(src: Path) -> None:
    with pytest.raises(UserErrorException, match="entry_script"):
        Chainer(str(src))


# ------------------------------------------------------------------------------ script_params


def test_script_params_flatten_in_insertion_order() -> None:
    assert flatten_script_params(V1_PARAMS) == V1_ARGV
    reordered = {"--output_dir": "./outputs", "--epochs": 10, "--batchsize": 128}
    assert flatten_script_params(reordered) == [
        "--output_dir",
        "./outputs",
        "--epochs",
        "10",
        "--batchsize",
        "128",
    ]


def test_empty_value_is_a_bare_flag_and_scalars_are_stringified() -> None:
    params = {"--flag": "", "--lr": 0.5, "--on": True, "--n": 0, "--name": "x y"}
    assert flatten_script_params(params) == [
        "--flag",
        "--lr",
        "0.5",
        "--on",
        "True",
        "--n",
        "0",
        "--name",
        "x y",
    ]
    assert flatten_script_params(None) == []


def test_script_params_of_an_unusable_type_are_rejected_at_construction(src: Path) -> None:
    with pytest.raises(ValidationError, match=r"--layers.*list"):
        Chainer(str(src), entry_script="train.py", script_params={"--layers": [1, 2]})


def test_script_params_property_is_a_copy(src: Path) -> None:
    est = Chainer(str(src), entry_script="train.py", script_params=V1_PARAMS)
    est.script_params["--epochs"] = 99
    assert est.run_config.arguments == V1_ARGV


# ------------------------------------------------------------------------------ versions


def test_supported_versions() -> None:
    assert Chainer.get_supported_versions() == ["5.1.0", "7.0.0", "7.8.1"]
    assert PyTorch.get_supported_versions() == ["2.13.0", "2.14.1"]
    assert TensorFlow.get_supported_versions() == ["2.21.0"]
    assert Estimator.get_supported_versions() == []


@pytest.mark.parametrize(
    ("cls", "requested", "resolved"),
    [
        (Chainer, None, "7.8.1"),
        (Chainer, "5.1.0", "5.1.0"),  # installs on Python 3.11: honoured, not mapped
        (Chainer, "7.0.0", "7.0.0"),
        (Chainer, "7.8", "7.8.1"),
        (Chainer, "7.8.1", "7.8.1"),
        (PyTorch, None, "2.13.0"),
        (PyTorch, "2.14.1", "2.14.1"),
        (TensorFlow, None, "2.21.0"),
    ],
)
def test_installable_versions_are_honoured_without_a_warning(
    src: Path, cls: type[Estimator], requested: str | None, resolved: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = cls(str(src), entry_script="train.py", framework_version=requested)
    assert est.framework_version == resolved
    info = est.framework_info()
    assert info["name"] == cls.__name__ and info["version"] == resolved
    assert info["requested_version"] == requested and info["mapped"] == ""
    assert any(p.endswith(f"=={resolved}") for p in info["packages"])


@pytest.mark.parametrize(
    ("cls", "requested", "resolved", "why"),
    [
        (PyTorch, "1.6", "2.13.0", "no wheels for Python 3.11"),
        (PyTorch, "1.0", "2.13.0", "no wheels for Python 3.11"),
        (TensorFlow, "1.13", "2.21.0", "no wheels for Python 3.11"),
        (TensorFlow, "2.2", "2.21.0", "no wheels for Python 3.11"),
    ],
)
def test_versions_that_cannot_install_map_with_a_warning(
    src: Path, cls: type[Estimator], requested: str, resolved: str, why: str
) -> None:
    with pytest.warns(UserWarning, match=why):
        est = cls(str(src), entry_script="train.py", framework_version=requested)
    assert est.framework_version == resolved
    info = est.framework_info()
    assert info["version"] == resolved and info["requested_version"] == requested
    assert why in info["mapped"]


def test_gpu_requests_map_to_a_release_with_a_gpu_build(src: Path) -> None:
    with pytest.warns(UserWarning, match="CuPy"):
        est = Chainer(str(src), entry_script="train.py", framework_version="5.1.0", use_gpu=True)
    assert est.framework_version == "7.8.1"
    env = est.run_config.environment
    assert env is not None
    assert env.python.conda_dependencies.pip_packages == ["chainer==7.8.1", "cupy-cuda12x"]


@pytest.mark.parametrize(
    ("cls", "version"), [(Chainer, "4.0.0"), (PyTorch, "0.4"), (TensorFlow, "3.0")]
)
def test_unsupported_framework_version_is_a_clear_error(
    src: Path, cls: type[Estimator], version: str
) -> None:
    with pytest.raises(UserErrorException) as info:
        cls(str(src), entry_script="train.py", framework_version=version)
    message = str(info.value)
    assert repr(version) in message and "not supported" in message
    for supported in cls.get_supported_versions():
        assert supported in message


def test_framework_packages_are_the_pinned_ones(src: Path) -> None:
    chainer = Chainer(str(src), entry_script="train.py", framework_version="5.1.0")
    env = chainer.run_config.environment
    assert env is not None
    assert env.python.conda_dependencies.pip_packages == ["chainer==5.1.0"]
    # The constraint table adds the rest where the spec is normalised; frameworkInfo shows it.
    info = chainer.framework_info()
    assert info["packages"] == ["chainer==5.1.0", "numpy<1.24", "protobuf<4", "setuptools<74"]
    torch = PyTorch(str(src), entry_script="train.py").run_config.environment
    assert torch is not None
    assert torch.python.conda_dependencies.pip_packages == ["torch==2.13.0", "numpy==2.2.6"]
    vision = PyTorch(str(src), entry_script="train.py", framework_version="2.14.1")
    assert vision.framework_info()["packages"] == ["torch==2.14.1", "torchvision==0.29.1"]


def test_mpi_training_adds_mpi4py_to_chainer(src: Path) -> None:
    from trainyard.train.dnn import Mpi

    est = Chainer(str(src), entry_script="train.py", distributed_training=Mpi())
    assert "mpi4py" in est.framework_info()["packages"]
    assert "mpi4py" not in Chainer(str(src), entry_script="train.py").framework_info()["packages"]


# ------------------------------------------------------------------------------ environments


def test_pip_packages_are_merged_and_a_users_pin_wins_within_the_bounds(src: Path) -> None:
    est = Chainer(str(src), entry_script="train.py", pip_packages=["NumPy==1.26.3", "pytest"])
    env = est.run_config.environment
    assert env is not None
    assert env.python.conda_dependencies.pip_packages == [
        "chainer==7.8.1",
        "numpy==1.26.3",
        "pytest",
    ]
    packages = est.framework_info()["packages"]
    assert "numpy==1.26.3" in packages and "setuptools<74" in packages


def test_a_users_bare_numpy_keeps_the_framework_bound(src: Path) -> None:
    # v1's notebook: Chainer(..., pip_packages=['numpy', 'pytest']).
    est = Chainer(str(src), entry_script="train.py", pip_packages=["numpy", "pytest"])
    packages = est.framework_info()["packages"]
    assert "numpy<1.24" in packages and "numpy" not in packages


def test_a_users_pin_against_the_framework_is_an_error(src: Path) -> None:
    est = Chainer(str(src), entry_script="train.py", pip_packages=["numpy>=2"])
    with pytest.raises(ValidationError, match=r"numpy>=2.*numpy<2"):
        est.run_config  # noqa: B018 - building the config normalises the environment


def test_merge_packages_normalises_names() -> None:
    merged = merge_packages(
        ["typing_extensions", "six==1.16", "a>=1"], ["typing-extensions==4.0", "b", "A<3"]
    )
    assert merged == ["typing-extensions==4.0", "six==1.16", "a<3,>=1", "b"]
    with pytest.raises(ValidationError, match="six"):
        merge_packages(["six==1.16"], ["six==1.17"])


def test_pip_requirements_file_is_merged(src: Path, tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("protobuf==3.19.0\nrequests\n")
    env = Chainer(
        str(src), entry_script="train.py", pip_requirements_file=str(req)
    ).run_config.environment
    assert env is not None
    pins = env.python.conda_dependencies.pip_packages
    assert pins == ["chainer==7.8.1", "protobuf==3.19.0", "requests"]


def test_environment_definition_overrides_everything(src: Path) -> None:
    mine = Environment("mine")
    mine.python.conda_dependencies.add_pip_package("requests")
    est = Chainer(
        str(src), entry_script="train.py", pip_packages=["pytest"], environment_definition=mine
    )
    env = est.run_config.environment
    assert env is mine
    assert "pytest" not in env.python.conda_dependencies.pip_packages
    assert not any(p.startswith("chainer") for p in env.python.conda_dependencies.pip_packages)


def test_environment_variables_reach_the_environment(src: Path) -> None:
    env = PyTorch(
        str(src), entry_script="train.py", environment_variables={"OMP_NUM_THREADS": "1"}
    ).run_config.environment
    assert env is not None and env.environment_variables == {"OMP_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------ submit


def test_submit_records_arguments_and_the_framework_mapping(ws: Workspace, src: Path) -> None:
    est = Chainer(
        source_directory=str(src),
        compute_target="local",
        entry_script="train.py",
        script_params={**V1_PARAMS, "--verbose": ""},
        framework_version="5.1.0",
        environment_definition=this_python(),
    )
    run = Experiment(ws, "est").submit(est)
    assert isinstance(run, ScriptRun)
    run.wait_for_completion(show_output=False, wait_post_processing=True)
    assert run.get_status() == "Completed"
    definition: dict[str, Any] = run.get_details()["runDefinition"]
    assert definition["arguments"] == [*V1_ARGV, "--verbose"]
    info = definition["frameworkInfo"]
    assert info["name"] == "Chainer"
    # The user's own environment does not pin chainer: no version is claimed for it.
    assert info["requested_version"] == "5.1.0" and info["version"] is None
    assert info["use_gpu"] is False
    assert "outputs/argv.json" in run.get_file_names()
    log = ws.context.artifacts.read_bytes(f"runs/{run.id}/user_logs/std_log.txt").decode()
    assert (
        'ARGV ["--epochs", "10", "--batchsize", "128", "--output_dir", "./outputs", "--verbose"]'
        in log
    )


def test_use_gpu_on_local_compute_fails_at_submit_and_stores_nothing(
    ws: Workspace, src: Path
) -> None:
    if resolve_target(ws, "local").gpu_count > 0:
        pytest.skip("this machine has a GPU, so use_gpu=True is valid on local compute")
    exp = Experiment(ws, "gpu")
    est = Chainer(str(src), compute_target="local", entry_script="train.py", use_gpu=True)
    env = est.run_config.environment
    assert env is not None
    assert any(p.startswith("cupy") for p in env.python.conda_dependencies.pip_packages)
    with pytest.raises(ComputeTargetException) as info:
        exp.submit(est)
    message = str(info.value)
    assert "use_gpu=True" in message and "no GPUs" in message and "'local'" in message
    nothing_stored(ws, exp)


@pytest.mark.parametrize(("nodes", "per_node"), [(2, 1), (2, 2)])
def test_more_than_one_node_fails_at_submit_and_stores_nothing(
    ws: Workspace, src: Path, nodes: int, per_node: int
) -> None:
    exp = Experiment(ws, "dist")
    est = PyTorch(
        str(src),
        compute_target="local",
        entry_script="train.py",
        node_count=nodes,
        process_count_per_node=per_node,
        environment_definition=this_python(),
    )
    with pytest.raises(ComputeTargetException) as info:
        exp.submit(est)
    message = str(info.value)
    assert f"node_count={nodes}" in message and f"needs {nodes} nodes" in message
    assert "one node" in message and "Use node_count=1" in message
    assert f"process_count_per_node={nodes * per_node}" in message
    nothing_stored(ws, exp)


def test_estimator_distribution_maps_to_v1_configurations(src: Path) -> None:
    from trainyard.core.runconfig import MpiConfiguration, PyTorchConfiguration
    from trainyard.train.dnn import Gloo, Mpi, Nccl

    def dist(**kw: Any) -> Any:
        return PyTorch(str(src), entry_script="train.py", **kw).run_config.distributed_job_config

    assert dist() is None
    assert dist(process_count_per_node=2) == MpiConfiguration(2, 1)
    assert dist(distributed_training=Mpi(3)) == MpiConfiguration(3, 1)
    assert dist(distributed_training=Gloo(), process_count_per_node=2) == PyTorchConfiguration(
        "Gloo", 2, 1
    )
    assert dist(distributed_training=Nccl()) == PyTorchConfiguration("Nccl", 1, 1)
    assert dist(distributed_backend="gloo", node_count=2) == PyTorchConfiguration("Gloo", 2, 2)
    with pytest.raises(ValidationError, match="distributed_backend"):
        dist(distributed_backend="horovod")
    config = Chainer(str(src), entry_script="train.py", distributed_training=Mpi(2)).run_config
    assert (config.run_config.framework, config.run_config.communicator) == ("Python", "Mpi")
    assert config.run_config.mpi.process_count_per_node == 2
    old = Chainer(str(src), entry_script="train.py", distributed_backend="mpi").run_config
    assert old.run_config.communicator == "IntelMpi"
    torch_config = PyTorch(str(src), entry_script="train.py", distributed_training=Gloo())
    assert torch_config.run_config.run_config.communicator == "Gloo"
    assert torch_config.run_config.run_config.framework == "PyTorch"


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5, True])
def test_bad_counts_are_validation_errors(ws: Workspace, src: Path, bad: Any) -> None:
    exp = Experiment(ws, "counts")
    with pytest.raises(ValidationError, match="node_count"):
        exp.submit(Chainer(str(src), entry_script="train.py", node_count=bad))
    nothing_stored(ws, exp)


def test_missing_entry_script_file_fails_at_submit_and_stores_nothing(
    ws: Workspace, src: Path
) -> None:
    exp = Experiment(ws, "missing")
    with pytest.raises(UserErrorException, match=r"nope\.py"):
        exp.submit(Chainer(str(src), entry_script="nope.py", environment_definition=this_python()))
    nothing_stored(ws, exp)
