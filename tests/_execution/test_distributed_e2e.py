"""End to end: ChainerMN over MPI (2 and 4 ranks) and PyTorch DDP over gloo (2 ranks) train MNIST
slices on local compute in environments trainyard builds (uv, shared session cache).

The ChainerMN runs go once through the ``Chainer`` estimator (``distributed_training=Mpi(n)``,
which pins mpi4py itself) and once through ``ScriptRunConfig`` + ``MpiConfiguration`` with an
environment that lists only Chainer: the builder adds mpi4py for the MPI job, so both resolve to
the same cached environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from trainyard._execution.runfiles import rank_log
from trainyard.core import Environment, Experiment, ScriptRun, ScriptRunConfig, Workspace
from trainyard.core.conda_dependencies import CondaDependencies
from trainyard.core.runconfig import MpiConfiguration
from trainyard.testing.fixtures import unique_name
from trainyard.train.dnn import Chainer, Gloo, Mpi, PyTorch

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MNIST = REPO / "data" / "mnist"
CHAINERMN = REPO / "examples" / "chainermn-mnist"
DDP = REPO / "examples" / "pytorch-ddp-mnist"
ENV_VARS = {"OMP_NUM_THREADS": "1", "TRAINYARD_MNIST_DIR": str(MNIST)}
CHAINER_PARAMS = {"--epoch": 1, "--unit": 100, "--train-slice": 4000, "--test-slice": 1000}


def shared_env_cache(factory: pytest.TempPathFactory) -> Path:
    """The session's environment cache, the one ``tests/train/test_dnn_e2e.py`` uses."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    cache = base / "trainyard-env-cache"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINYARD_ENV_CACHE", str(shared_env_cache(tmp_path_factory)))
        mp.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.1")
        mp.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.5")
        yield Workspace.create(unique_name("ws"), path=tmp_path_factory.mktemp("dist") / "ws")


def finish(run: Any) -> ScriptRun:
    assert isinstance(run, ScriptRun)
    run.wait_for_completion(wait_post_processing=True, raise_on_error=False)
    if run.get_status() != "Completed":
        logs = {n: run.read_log(n).decode(errors="replace")[-2000:] for n in run.get_log_names()}
        pytest.fail(f"run {run.id} is {run.get_status()}: {run.get_details().get('error')}\n{logs}")
    return run


def check_ranks(run: ScriptRun, world: int) -> dict[str, Any]:
    names = run.get_file_names()
    assert [n for n in names if n.startswith("user_logs/")] == [rank_log(r) for r in range(world)]
    metrics: dict[str, Any] = run.get_metrics()
    assert float(metrics["images_per_sec"]) > 0.0 and 0.0 <= float(metrics["accuracy"]) <= 1.0
    return metrics


def test_chainermn_trains_on_two_ranks_with_the_estimator(ws: Workspace) -> None:
    est = Chainer(
        str(CHAINERMN),
        entry_script="train_mnist.py",
        compute_target="local",
        script_params=CHAINER_PARAMS,
        distributed_training=Mpi(2),
        environment_variables=ENV_VARS,
    )
    run = finish(Experiment(ws, "chainermn").submit(est))
    metrics = check_ranks(run, 2)
    assert metrics["rank_images"] == [2000, 2000]  # scatter_dataset gave each rank half
    assert float(metrics["loss"]) < 2.3  # learning: below an untrained net's ln(10)
    assert "Num process (COMM_WORLD): 2" in run.read_log(rank_log(0)).decode()
    assert "outputs/last_accuracy.npy" in run.get_file_names()
    assert run.get_details()["runDefinition"]["communicator"] == "Mpi"


def test_chainermn_trains_on_four_ranks_and_the_builder_adds_mpi4py(ws: Workspace) -> None:
    env = Environment("chainer-only")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["chainer==7.8.1"])
    env.environment_variables = dict(ENV_VARS)
    args = [str(a) for kv in CHAINER_PARAMS.items() for a in kv]
    config = ScriptRunConfig(
        str(CHAINERMN),
        "train_mnist.py",
        arguments=args,
        environment=env,
        distributed_job_config=MpiConfiguration(process_count_per_node=4),
    )
    run = finish(Experiment(ws, "chainermn").submit(config))
    metrics = check_ranks(run, 4)
    assert metrics["rank_images"] == [1000] * 4
    assert "mpi4py" in run.get_info().runtime["resolved_packages"]


def test_pytorch_ddp_gloo_all_reduces_and_trains_on_two_ranks(ws: Workspace) -> None:
    est = PyTorch(
        str(DDP),
        entry_script="train_ddp.py",
        compute_target="local",
        script_params={"--epochs": 1, "--train-slice": 2000, "--test-slice": 500},
        distributed_training=Gloo(),
        process_count_per_node=2,
        framework_version="2.13.0",
        environment_variables=ENV_VARS,
    )
    run = finish(Experiment(ws, "ddp").submit(est))
    metrics = check_ranks(run, 2)
    assert metrics["allreduce_sum"] == [3.0, 3.0]  # 1 + 2, seen by both ranks
    for rank in (0, 1):
        assert f"rank {rank}/2 local_rank {rank}" in run.read_log(rank_log(rank)).decode()
    assert "outputs/model.pt" in run.get_file_names()
