"""The Ray backend beyond the conformance suite, on a real autoscaling Ray cluster on this machine:
nodes come for a sweep and go after it, a run's details name its node, a job no node can take is
refused at submission, a node that dies mid-run fails its run with a reason naming the node, and a
snapshot over Ray's 100 MiB working-dir limit runs."""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytest.importorskip("ray")

from trainyard.core import Experiment, ScriptRunConfig, Workspace
from trainyard.exceptions import ComputeTargetException
from trainyard.testing.backend import wait_until
from trainyard.testing.fixtures import unique_name
from trainyard.testing.ray_cluster import LocalRayCluster, NodeType
from trainyard.train.hyperdrive import (
    GridParameterSampling,
    HyperDriveConfig,
    PrimaryMetricGoal,
    choice,
)

pytestmark = pytest.mark.slow

_TERMINAL = ("Completed", "Failed", "Canceled")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    """Up to two worker nodes of one slot each, none while idle (idle timeout 3 s)."""
    c = LocalRayCluster.start(
        tmp_path_factory.mktemp("ray"),
        {"w": NodeType({"CPU": 1, "trainyard_slot": 1}, min_workers=0, max_workers=2)},
        idle_timeout_minutes=0.05,
    )
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def ws(cluster: LocalRayCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Workspace:
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_SECONDS", "0.3")
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_TIMEOUT", "3")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.1")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.3")
    workspace = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    target(workspace, "cluster", cluster)
    return workspace


def target(
    ws: Workspace, name: str, cluster: LocalRayCluster, *, node_resources: bool = True, **ray: str
) -> None:
    section: dict[str, object] = {
        "managed": True,
        "address": cluster.address,
        "dashboard_url": cluster.dashboard_url,
        "token_file": str(cluster.root / "token"),
        **ray,
    }
    if node_resources:
        section["node_resources"] = {"CPU": 1, "trainyard_slot": 1}
    ws.context.store.put_compute_target(
        ws.context.workspace_id,
        name,
        "raycompute",
        {"backend": "ray", "max_nodes": 2, "max_concurrent_runs": 2, "ray": section},
    )


def source(root: Path, body: str, name: str = "src") -> Path:
    src = root / name
    src.mkdir(parents=True, exist_ok=True)
    (src / "train.py").write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return src


def wait_terminal(run: object, timeout: float = 120) -> str:
    status: str = wait_until(
        lambda: (s := run.get_status()) in _TERMINAL and s,  # type: ignore[attr-defined]
        timeout,
        "the run to end",
    )
    return status


def test_a_sweep_scales_the_cluster_up_and_it_scales_back_down(
    ws: Workspace, cluster: LocalRayCluster, tmp_path: Path
) -> None:
    src = source(
        tmp_path,
        """
        import argparse, time
        from trainyard.core import Run
        p = argparse.ArgumentParser()
        p.add_argument("--x", type=float)
        args = p.parse_args()
        time.sleep(1.5)
        Run.get_context().log("score", -(args.x - 2) ** 2)
        """,
    )
    wait_until(lambda: not cluster.alive_workers(), 60, "an idle cluster with no worker nodes")
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(src, "train.py", compute_target="cluster"),
        hyperparameter_sampling=GridParameterSampling({"--x": choice(1, 2, 3, 4)}),
        primary_metric_name="score",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=4,
        max_concurrent_runs=2,
    )
    sweep = Experiment(ws, "ray-sweep").submit(config)
    seen: set[str] = set()
    deadline = time.monotonic() + 180
    while (status := sweep.get_status()) not in _TERMINAL:
        assert time.monotonic() < deadline, "the sweep did not end"
        seen |= {n["node_id"] for n in cluster.alive_workers()}
        time.sleep(0.3)
    children = list(sweep.get_children())
    assert status == "Completed", [
        sweep.get_details().get("error"),
        *[(c.get_status(), c.get_details().get("error")) for c in children],
    ]
    assert {c.get_status() for c in children} == {"Completed"}
    nodes = {c.get_details()["node"]["id"] for c in children}
    assert len(seen) == 2, f"two worker nodes came for two concurrent children: {seen}"
    assert nodes <= seen and len(nodes) == 2, "the children ran on the nodes that came"
    started = time.monotonic()
    wait_until(lambda: not cluster.alive_workers(), 60, "the idle nodes to go")
    print(f"idle scale-down after the sweep: {time.monotonic() - started:.1f} s")


def test_a_job_no_node_can_take_is_refused_at_submission(
    ws: Workspace, cluster: LocalRayCluster, tmp_path: Path
) -> None:
    src = source(tmp_path, "print('never')\n")
    target(ws, "attached", cluster, node_resources=False, slot_resource="slot_nobody_has")
    experiment = Experiment(ws, "ray-refused")
    with pytest.raises(ComputeTargetException) as refused:
        experiment.submit(ScriptRunConfig(src, "train.py", compute_target="attached"))
    assert "slot_nobody_has=1" in refused.value.message
    assert "can ever run" in refused.value.message
    assert list(experiment.get_runs()) == [], "nothing was stored"


def test_a_node_that_dies_mid_run_fails_the_run_naming_the_node(
    ws: Workspace, cluster: LocalRayCluster, tmp_path: Path
) -> None:
    src = source(tmp_path, "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    run = Experiment(ws, "ray-node-dies").submit(
        ScriptRunConfig(src, "train.py", compute_target="cluster")
    )
    wait_until(lambda: b"up" in run.read_log("user_logs/std_log.txt"), 120, "the script")
    node = run.get_details()["node"]
    runtime = run.get_info().runtime
    # The node's machine goes down: its raylet and everything it started, and the run's
    # supervisor and script (forked on that node by its fork server), at once.
    raylet = next(
        p
        for p in psutil.process_iter(["cmdline"])
        if f"--node_id={node['id']}" in (p.info["cmdline"] or [])
    )
    doomed = [raylet.pid, *(c.pid for c in raylet.children(recursive=True))]
    doomed += [runtime["supervisor"]["pid"], runtime["script_pid"]]
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # A run submitted now may be placed on the dead node before Ray notices: its job is lost
    # before it starts, and submitted again.
    after = Experiment(ws, "ray-node-dies").submit(
        ScriptRunConfig(
            source(tmp_path, "print('after')\n", "after"), "train.py", compute_target="cluster"
        )
    )
    assert wait_terminal(run) == "Failed"
    error = run.get_details()["error"]
    assert error["code"] == "SupervisorLost"
    assert node["id"] in error["message"]
    assert wait_terminal(after) == "Completed", after.get_details().get("error")
    print("attempts of the run submitted after the node died:", after.get_info().runtime["ray"])


def test_a_snapshot_over_rays_working_dir_limit_runs(ws: Workspace, tmp_path: Path) -> None:
    src = source(
        tmp_path,
        """
        import os
        print("data", os.path.getsize("data.bin"), flush=True)
        """,
    )
    with open(src / "data.bin", "wb") as fh:
        fh.truncate(110 * 1024 * 1024)  # 110 MiB: Ray refuses a working_dir over 100 MiB
    run = Experiment(ws, "ray-big").submit(
        ScriptRunConfig(src, "train.py", compute_target="cluster")
    )
    assert wait_terminal(run) == "Completed", run.get_details().get("error")
    assert f"data {110 * 1024 * 1024}".encode() in run.read_log("user_logs/std_log.txt")


def test_a_job_whose_entrypoint_cannot_start_fails_the_run_with_rays_reason(
    ws: Workspace, cluster: LocalRayCluster, tmp_path: Path
) -> None:
    """A node without trainyard's interpreter: the job fails before any supervisor reports, and
    the run is failed with what Ray said instead of waiting in Queued forever."""
    target(ws, "no-python", cluster, python="/nonexistent/bin/python")
    src = source(tmp_path, "print('never')\n")
    run = Experiment(ws, "ray-no-python").submit(
        ScriptRunConfig(src, "train.py", compute_target="no-python")
    )
    assert wait_terminal(run) == "Failed"
    error = run.get_details()["error"]
    assert error["code"] == "RayJobLost"
    assert "/nonexistent/bin/python" in error["message"]


def test_the_environment_is_built_on_the_node_and_reused_there(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainyard.core import Environment
    from trainyard.core.conda_dependencies import CondaDependencies

    monkeypatch.setenv("TRAINYARD_ENV_CACHE", str(tmp_path / "env-cache"))
    src = source(tmp_path, "import six\nprint('six', six.__version__, flush=True)\n")
    env = Environment("six-on-ray")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    runs = []
    for _ in range(2):
        run = Experiment(ws, "ray-env").submit(
            ScriptRunConfig(src, "train.py", compute_target="cluster", environment=env)
        )
        assert wait_terminal(run, 300) == "Completed", run.get_details().get("error")
        runs.append(run.get_info().runtime)
    first, second = runs
    assert first["environment_hash"] == second["environment_hash"]
    assert (first["environment_cached"], second["environment_cached"]) == (False, True)
    assert str(first["python"]).startswith(str(tmp_path / "env-cache"))
    assert b"six 1.16.0" in run.read_log("user_logs/std_log.txt")
