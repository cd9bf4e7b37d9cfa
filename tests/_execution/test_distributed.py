"""Distributed runs on local compute, with real processes, real ``mpirun`` and real torchrun-style
ranks, in a user-managed environment (this interpreter: nothing to build). What a run of many
processes must do as v1 did: one log per rank, every rank logging into the run, rank 0 streamed,
a failing rank failing the run with its own error and stopping the others, cancel and
``max_run_duration_seconds`` stopping every rank, and submit-time refusals that store nothing.

The framework trainings (ChainerMN over MPI, PyTorch DDP over gloo) are in
``test_distributed_e2e.py``.
"""

from __future__ import annotations

import io
import os
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from trainyard._execution.runfiles import LAUNCHER_LOG, rank_log
from trainyard._execution.targets import detect_gpus
from trainyard.core import Environment, Experiment, ScriptRun, ScriptRunConfig, Workspace
from trainyard.core.runconfig import MpiConfiguration, PyTorchConfiguration, RunConfiguration
from trainyard.exceptions import ComputeTargetException, MpiRuntimeNotFound
from trainyard.testing.fixtures import unique_name

#: Each rank records its pid in the folder given as argv[1], logs its rank, then does argv[2]:
#: ``ok`` (exit 0), ``fail1`` (rank 1 raises) or ``sleep`` (until stopped).
SCRIPT = """
import os, sys, time
from trainyard.core import Run

rank = int(os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ["RANK"])
world = int(os.environ.get("OMPI_COMM_WORLD_SIZE") or os.environ["WORLD_SIZE"])
pids, mode = sys.argv[1], sys.argv[2]
run = Run.get_context()
run.log("rank", rank)
run.log("world", world)
print(f"rank {rank} of {world} up", flush=True)
with open(os.path.join(pids, f"{rank}.tmp"), "w") as fh:
    fh.write(str(os.getpid()))
os.rename(os.path.join(pids, f"{rank}.tmp"), os.path.join(pids, str(rank)))
if mode == "fail1" and rank == 1:
    time.sleep(0.5)
    raise ValueError(f"rank {rank} cannot go on")
if mode in ("sleep", "fail1"):
    time.sleep(120)
with open(f"outputs/rank{rank}.txt", "w") as fh:
    fh.write(str(rank))
"""

LAYOUTS = [
    pytest.param(MpiConfiguration(process_count_per_node=2), id="mpi"),
    pytest.param(PyTorchConfiguration("Gloo", process_count=2), id="pytorch"),
]


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.05")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.2")
    monkeypatch.setenv("TRAINYARD_CANCEL_GRACE_SECONDS", "2")
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "ranks.py").write_text(textwrap.dedent(SCRIPT))
    return folder


def this_python() -> Environment:
    env = Environment("this-python")
    env.python.user_managed_dependencies = True
    return env


def submit(ws: Workspace, src: Path, pids: Path, mode: str, dist: Any, **kw: Any) -> ScriptRun:
    pids.mkdir(exist_ok=True)
    config = ScriptRunConfig(
        str(src),
        "ranks.py",
        arguments=[str(pids), mode],
        environment=this_python(),
        distributed_job_config=dist,
        **kw,
    )
    run = Experiment(ws, "dist").submit(config)
    assert isinstance(run, ScriptRun)
    return run


def rank_pids(pids: Path, world: int, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(p.name for p in pids.iterdir() if p.name.isdigit())
        if len(found) == world:
            return [int((pids / str(r)).read_text()) for r in range(world)]
        time.sleep(0.05)
    pytest.fail(f"only {sorted(os.listdir(pids))} of {world} ranks started")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in "ZX"
    except OSError:
        return True


def wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(gone(p) for p in pids):
        if time.monotonic() > deadline:
            pytest.fail(f"ranks still running: {[p for p in pids if not gone(p)]}")
        time.sleep(0.05)


@pytest.mark.parametrize("dist", LAYOUTS)
def test_every_rank_logs_into_one_run_with_a_log_each(
    ws: Workspace, src: Path, tmp_path: Path, dist: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = submit(ws, src, tmp_path / "pids", "ok", dist)
    run.wait_for_completion(show_output=True)
    shown = capsys.readouterr().out
    assert run.get_status() == "Completed"
    # Rank 0's log is the one streamed (v1's rule), not rank 1's.
    assert f"Streaming {rank_log(0)}" in shown and "rank 0 of 2 up" in shown
    assert "rank 1 of 2 up" not in shown
    names = run.get_file_names()
    for rank in (0, 1):
        assert rank_log(rank) in names
        assert f"rank {rank} of 2 up" in run.read_log(rank_log(rank)).decode()
        assert f"outputs/rank{rank}.txt" in names  # the ranks share one working folder
    assert "user_logs/std_log.txt" not in names
    metrics = run.get_metrics()
    assert sorted(metrics["rank"]) == [0, 1] and metrics["world"] == [2, 2]
    details = run.get_details()
    definition = details["runDefinition"]
    if isinstance(dist, MpiConfiguration):
        assert (definition["framework"], definition["communicator"]) == ("Python", "IntelMpi")
        assert definition["mpi"] == {"processCountPerNode": 2}
        assert LAUNCHER_LOG in names
    else:
        assert (definition["framework"], definition["communicator"]) == ("PyTorch", "Gloo")
    assert definition["nodeCount"] == 1


@pytest.mark.parametrize("dist", LAYOUTS)
def test_a_failing_rank_fails_the_run_with_its_error_and_stops_the_others(
    ws: Workspace, src: Path, tmp_path: Path, dist: Any
) -> None:
    started = time.monotonic()
    run = submit(ws, src, tmp_path / "pids", "fail1", dist)
    pids = rank_pids(tmp_path / "pids", 2)
    run.wait_for_completion(raise_on_error=False)
    assert time.monotonic() - started < 60  # rank 0 would sleep 120 s: it was stopped
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]
    assert error["rank"] == 1 and error["logFile"] == rank_log(1)
    assert error["message"] == "Rank 1 of 2 failed: ValueError: rank 1 cannot go on"
    assert error["exceptionType"] == "ValueError" and error["exitCode"] == 1
    assert "raise ValueError" in error["traceback"]
    wait_gone(pids)


@pytest.mark.parametrize("dist", LAYOUTS)
def test_cancel_stops_every_rank(ws: Workspace, src: Path, tmp_path: Path, dist: Any) -> None:
    run = submit(ws, src, tmp_path / "pids", "sleep", dist)
    pids = rank_pids(tmp_path / "pids", 2)
    run.cancel()
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Canceled"
    wait_gone(pids, timeout=5.0)


def test_max_run_duration_stops_every_rank(ws: Workspace, src: Path, tmp_path: Path) -> None:
    dist = MpiConfiguration(process_count_per_node=3)
    run = submit(ws, src, tmp_path / "pids", "sleep", dist, max_run_duration_seconds=10)
    pids = rank_pids(tmp_path / "pids", 3)
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Canceled"
    assert "max_run_duration_seconds=10" in run.get_details()["error"]["message"]
    wait_gone(pids, timeout=5.0)


def test_a_v1_run_configuration_describes_the_job(ws: Workspace, src: Path, tmp_path: Path) -> None:
    """v1 code set ``communicator`` and ``mpi`` on a ``RunConfiguration`` instead."""
    rc = RunConfiguration()
    rc.communicator = "Mpi"
    rc.mpi.process_count_per_node = 2
    rc.environment = this_python()
    (tmp_path / "pids").mkdir()
    config = ScriptRunConfig(
        str(src), "ranks.py", arguments=[str(tmp_path / "pids"), "ok"], run_config=rc
    )
    run = Experiment(ws, "v1-rc").submit(config)
    assert isinstance(run, ScriptRun)
    run.wait_for_completion()
    definition = run.get_details()["runDefinition"]
    assert definition["communicator"] == "Mpi" and definition["distribution"]["type"] == "mpi"
    assert sorted(run.get_metrics()["rank"]) == [0, 1]


# ----------------------------------------------------------------------------- refused at submit


def nothing_stored(ws: Workspace) -> None:
    assert list(Experiment(ws, "refused").get_runs()) == []
    assert ws.context.artifacts.list("runs") == []


def refuse(ws: Workspace, src: Path, dist: Any) -> str:
    config = ScriptRunConfig(
        str(src), "ranks.py", environment=this_python(), distributed_job_config=dist
    )
    with pytest.raises(ComputeTargetException) as info:
        Experiment(ws, "refused").submit(config)
    nothing_stored(ws)
    return info.value.message


def test_more_than_one_node_on_local_compute_is_refused(ws: Workspace, src: Path) -> None:
    message = refuse(ws, src, MpiConfiguration(process_count_per_node=2, node_count=2))
    assert "needs 2 nodes" in message and "one node" in message
    assert "Use node_count=1" in message and "process_count_per_node=4" in message
    message = refuse(ws, src, PyTorchConfiguration("Gloo", process_count=4, node_count=2))
    assert "process_count=4" in message and "Ray cluster target" in message


def test_nccl_without_gpus_is_refused(ws: Workspace, src: Path) -> None:
    if detect_gpus() > 0:
        pytest.skip("this machine has a GPU: NCCL is valid on local compute")
    message = refuse(ws, src, PyTorchConfiguration(process_count=2))  # v1's default is Nccl
    assert "NCCL needs GPUs" in message and "communication_backend='Gloo'" in message


def test_an_mpi_job_without_mpirun_says_what_to_install(
    ws: Workspace, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    config = ScriptRunConfig(
        str(src),
        "ranks.py",
        environment=this_python(),
        distributed_job_config=MpiConfiguration(process_count_per_node=2),
    )
    with pytest.raises(MpiRuntimeNotFound) as info:
        Experiment(ws, "refused").submit(config)
    assert "apt-get install openmpi-bin libopenmpi-dev" in info.value.message
    assert isinstance(info.value, ComputeTargetException)
    nothing_stored(ws)


def test_streamed_output_names_a_failed_ranks_log(ws: Workspace, src: Path, tmp_path: Path) -> None:
    run = submit(ws, src, tmp_path / "pids", "fail1", PyTorchConfiguration("Gloo", 2))
    out = io.StringIO()
    from trainyard.core._watch import wait_for_completion

    wait_for_completion(run, show_output=True, raise_on_error=False, out=out)
    text = out.getvalue()
    # Only rank 0's log was streamed, so rank 1's traceback is printed with the failure.
    assert "Rank 1 of 2 failed" in text and f"(from {rank_log(1)})" in text
