"""PyTorch DDP and MPI (ChainerMN, mpi4py) jobs across two nodes of a real Ray cluster on this
machine: one rank per node (placed with a STRICT_SPREAD placement group), gloo all-reduce and one
mpirun over the nodes (its second daemon started by that node's Ray task, no ssh), per-rank logs
in the run, a rank failing on the second node failing the run with that rank's error, and a cancel
reaching every rank on every node."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

from trainyard._execution.ray.nodeenv import build_log_name
from trainyard._execution.runfiles import rank_log
from trainyard.core import Environment, Experiment, ScriptRunConfig, Workspace
from trainyard.core.conda_dependencies import CondaDependencies
from trainyard.core.runconfig import MpiConfiguration
from trainyard.testing.backend import fast_liveness
from trainyard.testing.fixtures import unique_name
from trainyard.testing.ray_cluster import LocalRayCluster, NodeType
from trainyard.train.dnn import Chainer, Gloo, Mpi, PyTorch

from ..test_distributed_e2e import shared_env_cache

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
MNIST = REPO / "data" / "mnist"
DDP = REPO / "examples" / "pytorch-ddp-mnist"
CHAINERMN = REPO / "examples" / "chainermn-mnist"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    c = LocalRayCluster.start(
        tmp_path_factory.mktemp("ray"),
        {"w": NodeType({"CPU": 1, "trainyard_slot": 1}, min_workers=0, max_workers=2)},
        idle_timeout_minutes=0.1,
    )
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def ws(
    cluster: LocalRayCluster,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Workspace:
    fast_liveness(monkeypatch)
    monkeypatch.setenv("TRAINYARD_ENV_CACHE", str(shared_env_cache(tmp_path_factory)))
    workspace = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    workspace.context.store.put_compute_target(
        workspace.context.workspace_id,
        "cluster",
        "raycompute",
        {
            "backend": "ray",
            "max_nodes": 2,
            "max_concurrent_runs": 2,
            "ray": {
                "managed": True,
                "address": cluster.address,
                "dashboard_url": cluster.dashboard_url,
                "token_file": str(cluster.root / "token"),
                "node_resources": {"CPU": 1, "trainyard_slot": 1},
            },
        },
    )
    return workspace


def ddp(**params: object) -> PyTorch:
    return PyTorch(
        str(DDP),
        entry_script="train_ddp.py",
        compute_target="cluster",
        script_params={"--epochs": 1, "--train-slice": 1000, "--test-slice": 200, **params},
        distributed_training=Gloo(),
        node_count=2,
        process_count_per_node=1,
        framework_version="2.13.0",
        environment_variables={"OMP_NUM_THREADS": "1", "TRAINYARD_MNIST_DIR": str(MNIST)},
    )


def test_ddp_over_two_ray_nodes(ws: Workspace) -> None:
    run = Experiment(ws, "ddp-nodes").submit(ddp())
    run.wait_for_completion(wait_post_processing=True, raise_on_error=False)
    logs = {n: run.read_log(n).decode(errors="replace")[-1500:] for n in run.get_log_names()}
    assert run.get_status() == "Completed", (run.get_details().get("error"), logs)
    metrics = run.get_metrics()
    assert metrics["allreduce_sum"] == [3.0, 3.0]  # 1 + 2, seen by both ranks
    for rank in (0, 1):
        assert f"rank {rank}/2 local_rank 0" in run.read_log(rank_log(rank)).decode()
    nodes = run.get_info().runtime["nodes"]
    assert len(nodes) == 2 and len(set(nodes)) == 2, f"one rank per node: {nodes}"
    assert "outputs/model.pt" in run.get_file_names()


SCRIPT = """
import os, signal, time
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
def bye(signum, frame):
    print(f"rank {rank} got SIGTERM", flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, bye)
t = torch.tensor([rank + 1.0])
dist.all_reduce(t)
print(f"rank {rank} ready sum {t.item()}", flush=True)
if os.environ["JOB_MODE"] == "fail" and rank == 1:
    raise RuntimeError(f"rank {rank} gives up")
time.sleep(120)
"""


def ranks_job(tmp_path: Path, mode: str) -> PyTorch:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "job.py").write_text(SCRIPT)
    return PyTorch(
        str(src),
        entry_script="job.py",
        compute_target="cluster",
        distributed_training=Gloo(),
        node_count=2,
        process_count_per_node=1,
        framework_version="2.13.0",
        environment_variables={"OMP_NUM_THREADS": "1", "JOB_MODE": mode},
    )


CHAINER_PARAMS = {"--epoch": 1, "--unit": 100, "--train-slice": 4000, "--test-slice": 1000}


def test_chainermn_over_mpi_across_two_ray_nodes(ws: Workspace) -> None:
    """One mpirun over both nodes, its second node's daemon started by that node's Ray task (no
    ssh), the environment found in the second node's cache."""
    est = Chainer(
        str(CHAINERMN),
        entry_script="train_mnist.py",
        compute_target="cluster",
        script_params=CHAINER_PARAMS,
        distributed_training=Mpi(1),
        node_count=2,
        environment_variables={"OMP_NUM_THREADS": "1", "TRAINYARD_MNIST_DIR": str(MNIST)},
    )
    run = Experiment(ws, "chainermn-nodes").submit(est)
    run.wait_for_completion(wait_post_processing=True, raise_on_error=False)
    logs = {n: run.read_log(n).decode(errors="replace")[-1500:] for n in run.get_log_names()}
    assert run.get_status() == "Completed", (run.get_details().get("error"), logs)
    metrics = run.get_metrics()
    assert metrics["rank_images"] == [2000, 2000]  # scatter_dataset gave each node's rank half
    assert "Num process (COMM_WORLD): 2" in run.read_log(rank_log(0)).decode()
    assert rank_log(1) in run.get_log_names()
    nodes = run.get_info().runtime["nodes"]
    assert len(nodes) == 2 and len(set(nodes)) == 2, f"one rank per node: {nodes}"
    node_build = run.read_log(build_log_name(1)).decode()
    assert "reused from the cache" in node_build, node_build


MPI_SCRIPT = """
import os, signal, sys, time, traceback
from mpi4py import MPI
comm = MPI.COMM_WORLD
rank = comm.Get_rank()
def bye(signum, frame):
    print(f"rank {rank} got SIGTERM", flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, bye)
total = comm.allreduce(rank + 1)
print(f"rank {rank} ready sum {total} on {os.uname().nodename}", flush=True)
if os.environ["JOB_MODE"] == "fail" and rank == 1:
    # What ChainerMN's exception hook does: the traceback, then MPI_Abort (a plain exit would
    # wait in mpi4py's MPI_Finalize for the other ranks).
    try:
        raise RuntimeError(f"rank {rank} gives up")
    except RuntimeError:
        traceback.print_exc()
        sys.stderr.flush()
        comm.Abort(1)
time.sleep(120)
"""


def mpi_job(tmp_path: Path, mode: str) -> ScriptRunConfig:
    src = tmp_path / "mpi"
    src.mkdir(exist_ok=True)
    (src / "job.py").write_text(MPI_SCRIPT)
    env = Environment("mpi-job")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["chainer==7.8.1"])
    env.environment_variables = {"OMP_NUM_THREADS": "1", "JOB_MODE": mode}
    return ScriptRunConfig(
        str(src),
        "job.py",
        compute_target="cluster",
        environment=env,
        distributed_job_config=MpiConfiguration(process_count_per_node=1, node_count=2),
    )


@pytest.mark.parametrize("job", [ranks_job, mpi_job], ids=["ddp", "mpi"])
def test_a_rank_failing_on_the_second_node_fails_the_run_and_stops_the_other(
    ws: Workspace, tmp_path: Path, job: Callable[[Path, str], Any]
) -> None:
    run = Experiment(ws, "ranks-fail").submit(job(tmp_path, "fail"))
    run.wait_for_completion(wait_post_processing=True, raise_on_error=False)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]
    assert error["rank"] == 1 and error["logFile"] == rank_log(1), error
    assert "gives up" in error["message"]
    assert b"ready sum 3" in run.read_log(rank_log(0))
    info = run.get_info()
    assert info.end_time is not None and info.start_time is not None
    assert info.end_time - info.start_time < 60, "rank 0 was stopped, not waited for"


@pytest.mark.parametrize("job", [ranks_job, mpi_job], ids=["ddp", "mpi"])
def test_cancel_stops_every_rank_on_every_node(
    ws: Workspace, tmp_path: Path, job: Callable[[Path, str], Any]
) -> None:
    from trainyard.testing.backend import wait_until

    run = Experiment(ws, "ranks-cancel").submit(job(tmp_path, "sleep"))
    for rank in (0, 1):
        wait_until(
            lambda r=rank: b"ready" in run.read_log(rank_log(r)),  # type: ignore[misc]
            240,
            f"rank {rank} to start",
        )
    assert run.cancel() is True
    wait_until(lambda: run.get_status() == "Canceled", 60, "the run to be canceled")
    for rank in (0, 1):
        assert f"rank {rank} got SIGTERM".encode() in run.read_log(rank_log(rank)), rank
