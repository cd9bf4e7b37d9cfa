"""``AmlCompute`` on Ray (``backend="ray"``) and attached ``RayCompute`` targets, through the public
API, on a real Ray cluster trainyard starts on this machine: create → wait → status, update scales
nodes up and down, a state reload, attach with good and bad tokens, a dead head's status and
restart, delete by PID; and every misuse refused with ComputeTargetException."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trainyard._compat.platform import process_running
from trainyard._execution.ray.cluster import ManagedRayCluster
from trainyard.core import Workspace
from trainyard.core.compute import AmlCompute, ComputeTarget, ComputeTargetException, RayCompute
from trainyard.exceptions import ConfigError, ValidationError
from trainyard.settings import load_settings
from trainyard.testing.fixtures import unique_name


def ray_cfg(**kw: Any) -> Any:
    args: dict[str, Any] = {
        "vm_size": "Standard_D2_v2",
        "max_nodes": 1,
        "idle_seconds_before_scaledown": 6,
        "backend": "ray",
    }
    args.update(kw)
    return AmlCompute.provisioning_configuration(**args)


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str | Callable[[], str]
) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, what() if callable(what) else what
        time.sleep(0.5)
    return time.monotonic() - started


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws")


# -- misuse, without a cluster ------------------------------------------------------------------
def nothing_stored(ws: Workspace, name: str) -> None:
    assert name not in ws.compute_targets
    assert not (ws.context.home / "clusters" / name).exists()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"vm_size": "Standard_Bogus9"}, "STANDARD_D2_V2"),
        ({"min_nodes": 3, "max_nodes": 2}, "min_nodes"),
        ({"max_nodes": 0}, "max_nodes"),
        ({"backend": "spark"}, "'local'"),
        ({"runs_per_node": 0}, "runs_per_node"),
        ({"idle_seconds_before_scaledown": -1}, "idle_seconds"),
    ],
)
def test_bad_configurations_are_refused_before_anything_starts(
    ws: Workspace, kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(ComputeTargetException) as info:
        ComputeTarget.create(ws, "c", ray_cfg(**kwargs))
    assert words in info.value.message
    assert isinstance(info.value, ValidationError)  # v1 code catching either still does
    nothing_stored(ws, "c")


def test_bad_names_and_deleting_local_are_refused(ws: Workspace) -> None:
    for name in ("", "has space", "ünï", "x" * 65):
        with pytest.raises(ComputeTargetException):
            ComputeTarget.create(ws, name, ray_cfg())
    with pytest.raises(ComputeTargetException) as info:
        ComputeTarget(ws, "local").delete()
    assert "cannot be deleted" in info.value.message


def test_without_ray_installed_creation_says_what_to_install(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(ComputeTargetException) as info:
        ComputeTarget.create(ws, "c", ray_cfg())
    assert "pip install 'trainyard[ray]'" in info.value.message
    with pytest.raises(ComputeTargetException):
        ComputeTarget.attach(ws, "a", RayCompute.attach_configuration(address="127.0.0.1:1"))
    nothing_stored(ws, "c")


def test_a_head_that_fails_to_start_leaves_nothing(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainyard._execution.ray import cluster

    monkeypatch.setattr(cluster, "ray_executable", lambda: Path("/bin/false"))
    with pytest.raises(ComputeTargetException) as info:
        ComputeTarget.create(ws, "c", ray_cfg())
    assert "did not start" in info.value.message
    nothing_stored(ws, "c")


def test_the_backend_setting_picks_ray_when_none_is_given(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings({}).amlcompute_backend == "local"
    assert load_settings({"TRAINYARD_AMLCOMPUTE_BACKEND": "Ray"}).amlcompute_backend == "ray"
    with pytest.raises(ConfigError):
        load_settings({"TRAINYARD_AMLCOMPUTE_BACKEND": "k8s"})
    # default: local processes, max_nodes at once
    target = ComputeTarget.create(ws, "loc", AmlCompute.provisioning_configuration(max_nodes=3))
    assert target.backend == "local" and target.config["backend"] == "local"
    assert target.max_concurrent_runs == 3
    # the setting selects Ray (seen here through Ray being "missing")
    monkeypatch.setenv("TRAINYARD_AMLCOMPUTE_BACKEND", "ray")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    reopened = Workspace(path=ws.path)
    with pytest.raises(ComputeTargetException, match="Ray is not installed"):
        ComputeTarget.create(reopened, "r", AmlCompute.provisioning_configuration(max_nodes=1))


def test_local_amlcompute_update_changes_the_record_only(ws: Workspace) -> None:
    target = ComputeTarget.create(ws, "loc", AmlCompute.provisioning_configuration(max_nodes=2))
    assert isinstance(target, AmlCompute)
    target.update(max_nodes=5, idle_seconds_before_scaledown=60)
    again = ComputeTarget(ws, "loc")
    assert again.max_concurrent_runs == 5
    assert again.get_status().scale_settings["maximum_node_count"] == 5
    assert (
        again.get_status().serialize()["scale_settings"]["node_idle_time_before_scale_down"] == 60
    )
    with pytest.raises(ComputeTargetException):
        target.update(min_nodes=6)


def test_attach_configuration_needs_an_address(ws: Workspace) -> None:
    with pytest.raises(ComputeTargetException, match="address"):
        ComputeTarget.attach(ws, "a", RayCompute.attach_configuration())
    with pytest.raises(ComputeTargetException):
        ComputeTarget.attach(ws, "a", {"address": "x"})  # type: ignore[arg-type]
    # nobody listens there
    from trainyard._execution.launch import free_port

    with pytest.raises(ComputeTargetException, match="does not answer"):
        ComputeTarget.attach(
            ws,
            "a",
            RayCompute.attach_configuration(dashboard_url=f"http://127.0.0.1:{free_port()}"),
        )
    assert "a" not in ws.compute_targets


# -- one real cluster for the rest of the module --------------------------------------------------
@pytest.fixture(scope="module")
def cws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    pytest.importorskip("ray")
    ws = Workspace.create(unique_name("ws"), path=tmp_path_factory.mktemp("ray") / "ws")
    yield ws
    for name in ("raycpu", "theirs"):
        try:
            ComputeTarget(ws, name).delete()
        except ComputeTargetException:
            pass


def cluster_of(ws: Workspace, name: str = "raycpu") -> ManagedRayCluster:
    return ManagedRayCluster.load(ws.context.home / "clusters" / name)


@pytest.mark.slow
def test_create_wait_and_status_of_an_empty_cluster(
    cws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    target = ComputeTarget.create(cws, "raycpu", ray_cfg())
    target.wait_for_completion(show_output=True)
    print(f"create → ready: {time.monotonic() - started:.1f} s")
    out = capsys.readouterr().out
    assert 'SucceededProvisioning operation finished, operation "Succeeded"' in out
    assert isinstance(target, AmlCompute) and target.type == "amlcompute"
    assert target.backend == "ray" and target.provisioning_state == "Succeeded"

    cfg = target.config
    assert cfg["backend"] == "ray" and cfg["runs_per_node"] == 1
    assert cfg["max_concurrent_runs"] == 1 and cfg["gpus"] == 0
    ray = cfg["ray"]
    folder = cws.context.home / "clusters" / "raycpu"
    assert ray["managed"] is True and ray["folder"] == str(folder)
    assert ray["address"].startswith("127.0.0.1:")
    assert ray["dashboard_url"].startswith("http://127.0.0.1:")
    assert ray["token_file"] == str(folder / "token")
    assert stat.S_IMODE(os.stat(ray["token_file"]).st_mode) == 0o600
    assert ray["node_resources"] == {"CPU": 2, "memory": 7 * 2**30, "trainyard_slot": 1}
    for name in ("state.json", "autoscaling.json", "head.log"):
        assert (folder / name).is_file()

    status = target.get_status()
    fields = status.serialize()
    assert fields["provisioning_state"] == "Succeeded"
    assert fields["allocation_state"] == "Steady"
    assert status.current_node_count == 0 and fields["target_node_count"] == 0
    assert fields["node_state_counts"]["idleNodeCount"] == 0
    assert fields["scale_settings"] == {
        "minimum_node_count": 0,
        "maximum_node_count": 1,
        "node_idle_time_before_scale_down": 6,
    }
    assert fields["errors"] is None

    with pytest.raises(ComputeTargetException, match="would never end"):
        target.wait_for_completion(min_node_count=2)
    with pytest.raises(ComputeTargetException, match="0 of 1 node"):
        target.wait_for_completion(min_node_count=1, timeout_in_minutes=0.02)


@pytest.mark.slow
def test_update_brings_a_node_and_lets_it_go(cws: Workspace) -> None:
    target = ComputeTarget(cws, "raycpu")
    assert isinstance(target, AmlCompute)
    target.update(min_nodes=1)
    scaler = cluster_of(cws).read_config()["available_node_types"]["standard_d2_v2"]
    assert scaler["min_workers"] == 1 and scaler["max_workers"] == 1
    started = time.monotonic()
    target.wait_for_completion(timeout_in_minutes=2)
    print(f"update(min_nodes=1) → node alive: {time.monotonic() - started:.1f} s")

    # a later object, from the store: same settings, the node seen from Ray's state API
    reloaded = ComputeTarget(cws, "raycpu")
    assert type(reloaded) is AmlCompute and reloaded.config["min_nodes"] == 1
    status = reloaded.get_status().serialize()
    assert status["current_node_count"] == 1
    assert status["node_state_counts"]["idleNodeCount"] == 1
    assert status["node_state_counts"]["runningNodeCount"] == 0
    assert status["scale_settings"]["minimum_node_count"] == 1

    # a job holding the node's run slot makes it a running node
    from ray.job_submission import JobSubmissionClient

    cluster = cluster_of(cws)
    client = JobSubmissionClient(
        cluster.dashboard_url, headers={"Authorization": f"Bearer {cluster.token}"}
    )
    job = client.submit_job(
        entrypoint="python -c 'import time; time.sleep(60)'",
        entrypoint_resources={"trainyard_slot": 1},
    )
    try:
        wait_until(lambda: str(client.get_job_status(job)) == "RUNNING", 60, "job not running")
        seen: list[dict[str, int]] = []
        wait_until(
            lambda: (
                seen.append(reloaded.get_status().node_state_counts)
                or seen[-1]["runningNodeCount"] == 1
            ),
            30,
            lambda: f"the node holding a run slot never showed as running: {seen[-3:]}",
        )
        assert seen[-1]["idleNodeCount"] == 0
    finally:
        client.stop_job(job)
    wait_until(lambda: client.get_job_status(job).is_terminal(), 30, "the job did not stop")

    reloaded.update(min_nodes=0)
    took = wait_until(
        lambda: ComputeTarget(cws, "raycpu").get_status().current_node_count == 0,
        120,
        "the idle node was never removed",
    )
    print(f"update(min_nodes=0) → idle node gone: {took:.1f} s (idle time 6 s)")


@pytest.mark.slow
def test_attach_a_running_cluster_with_good_and_bad_tokens(cws: Workspace) -> None:
    managed = ComputeTarget(cws, "raycpu").config["ray"]
    token = Path(managed["token_file"]).read_text().strip()

    with pytest.raises(ComputeTargetException, match="refused its token"):
        ComputeTarget.attach(
            cws,
            "theirs",
            RayCompute.attach_configuration(dashboard_url=managed["dashboard_url"], token="bad"),
        )
    assert "theirs" not in cws.compute_targets

    target = ComputeTarget.attach(
        cws,
        "theirs",
        RayCompute.attach_configuration(
            address=managed["address"], dashboard_url=managed["dashboard_url"], token=token
        ),
    )
    assert isinstance(target, RayCompute) and target.type == "raycompute"
    cfg = target.config
    assert cfg["backend"] == "ray" and cfg["ray"]["managed"] is False
    assert "token" not in cfg["ray"]  # kept in a 0600 file, not in the database
    assert Path(cfg["ray"]["token_file"]).read_text() == token
    assert target.provisioning_state == "Succeeded"
    status = ComputeTarget(cws, "theirs").get_status().serialize()
    assert status["provisioning_state"] == "Succeeded" and status["managed"] is False

    with pytest.raises(ComputeTargetException, match="attached"):
        target.update(min_nodes=1)
    with pytest.raises(ComputeTargetException, match="manages"):
        ComputeTarget.attach(
            cws, "raycpu", RayCompute.attach_configuration(dashboard_url=managed["dashboard_url"])
        )
    target.delete()
    assert "theirs" not in cws.compute_targets
    assert cluster_of(cws).alive()  # the cluster itself keeps running


@pytest.mark.slow
def test_recreating_a_running_cluster_rescales_it_in_place(cws: Workspace) -> None:
    before = cluster_of(cws)
    target = ComputeTarget.create(cws, "raycpu", ray_cfg(max_nodes=2, runs_per_node=2))
    after = cluster_of(cws)
    assert after.head_pid == before.head_pid
    assert target.config["max_concurrent_runs"] == 4
    scaler = after.read_config()["available_node_types"]["standard_d2_v2"]
    assert scaler["max_workers"] == 2 and scaler["resources"]["trainyard_slot"] == 2


@pytest.mark.slow
def test_a_run_submitted_to_the_target_runs_on_a_worker_node(
    cws: Workspace, tmp_path: Path
) -> None:
    from trainyard.core import Experiment, ScriptRunConfig

    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        "from trainyard.core import Run\nRun.get_context().log('x', 1.0)\nprint('on a node')\n"
    )
    started = time.monotonic()
    run = Experiment(cws, "on-ray").submit(
        ScriptRunConfig(src, "train.py", compute_target="raycpu")
    )
    run.wait_for_completion(show_output=False)
    print(f"submit → Completed on a new node: {time.monotonic() - started:.1f} s")
    assert run.get_status() == "Completed", run.get_details().get("error")
    assert run.get_metrics() == {"x": 1.0}


@pytest.mark.slow
def test_a_dead_head_is_failed_and_create_restarts_it(cws: Workspace) -> None:
    dead = cluster_of(cws)
    for pid in dead.members():
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not dead.head_running(), 10, "the head did not die")
    target = ComputeTarget(cws, "raycpu")
    status = target.get_status().serialize()
    assert status["provisioning_state"] == "Failed"
    assert status["errors"][0]["code"] == "ClusterNotRunning"
    assert str(dead.head_pid) in status["errors"][0]["message"]
    assert target.provisioning_state == "Failed"
    with pytest.raises(ComputeTargetException, match="not running"):
        target.wait_for_completion(timeout_in_minutes=1)

    started = time.monotonic()
    again = ComputeTarget.create(cws, "raycpu", ray_cfg())
    again.wait_for_completion()
    print(f"restart of a dead cluster: {time.monotonic() - started:.1f} s")
    assert cluster_of(cws).head_pid != dead.head_pid
    assert again.get_status().provisioning_state == "Succeeded"


@pytest.mark.slow
def test_delete_stops_every_process_of_the_cluster_and_removes_its_folder(
    cws: Workspace,
) -> None:
    cluster = cluster_of(cws)
    members = cluster.members()
    assert members
    ComputeTarget(cws, "raycpu").delete()
    assert not any(process_running(pid) for pid in members)
    assert cluster.members() == []
    assert not cluster.folder.exists() and not cluster.temp_dir.exists()
    with pytest.raises(ComputeTargetException):
        ComputeTarget(cws, "raycpu")
    assert json.dumps(sorted(cws.compute_targets)) == '["local"]'
