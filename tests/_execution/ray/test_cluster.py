"""Managed Ray clusters (``trainyard._execution.ray.cluster``): a real head on loopback whose
autoscaler re-reads its config file, found again from its folder by another process, stopped by
PID with every node of its session."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainyard._compat.platform import process_running
from trainyard._execution.ray.cluster import (
    ManagedRayCluster,
    NodeType,
    autoscaling_config,
)
from trainyard._execution.ray.vm_sizes import VM_SIZES, node_resources, node_type_name, vm_size
from trainyard.exceptions import ComputeConfigurationError, ComputeTargetException

SLOT = {"CPU": 1, "memory": 2**30, "trainyard_slot": 1}


# -- without Ray running ------------------------------------------------------------------------
def test_vm_sizes_are_case_insensitive_and_name_the_known_ones() -> None:
    assert node_resources("Standard_D2_v2") == {
        "CPU": 2,
        "memory": 7 * 2**30,
        "trainyard_slot": 1,
    }
    assert node_resources("standard_nc6s_v3", runs_per_node=2) == {
        "CPU": 6,
        "memory": 112 * 2**30,
        "GPU": 1,
        "trainyard_slot": 2,
    }
    assert node_resources("ND40rs_v2")["GPU"] == 8  # the Standard_ prefix may be left out
    assert vm_size("STANDARD_F4s_v2").cpus == 4
    assert node_type_name("Standard_NC6") == "standard_nc6"
    for name in ("STANDARD_D3_V2", "STANDARD_D4_V2", "STANDARD_DS3_V2", "STANDARD_NC12"):
        assert name in VM_SIZES
    with pytest.raises(ComputeConfigurationError) as info:
        vm_size("Standard_Bogus9")
    assert "STANDARD_D2_V2" in info.value.message and "Standard_Bogus9" in info.value.message
    assert isinstance(info.value, ComputeTargetException)


def test_autoscaling_config_has_a_slotless_cpuless_head_and_leaves_memory_to_the_provider() -> None:
    cfg = autoscaling_config("127.0.0.1:1234", {"w": NodeType(SLOT, 1, 3)}, 0.5, "trainyard-x")
    assert cfg["provider"]["gcs_address"] == "127.0.0.1:1234"
    assert cfg["available_node_types"]["ray.head.default"]["resources"] == {"CPU": 0}
    worker = cfg["available_node_types"]["w"]
    assert worker["resources"] == {"CPU": 1, "trainyard_slot": 1}
    assert (worker["min_workers"], worker["max_workers"]) == (1, 3)
    assert cfg["max_workers"] == 3 and cfg["idle_timeout_minutes"] == 0.5
    assert cfg["cluster_name"] == "trainyard-x"


def test_load_of_a_folder_without_a_cluster_says_so(tmp_path: Path) -> None:
    with pytest.raises(ComputeTargetException) as info:
        ManagedRayCluster.load(tmp_path)
    assert str(tmp_path) in info.value.message and "Recreate" in info.value.message


# -- a real cluster -----------------------------------------------------------------------------
pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedRayCluster]:
    folder = tmp_path_factory.mktemp("managed") / "clusters" / "c1"
    started = time.monotonic()
    c = ManagedRayCluster.start(folder, {"w": NodeType(SLOT, 0, 1)}, idle_timeout_minutes=0.1)
    print(f"head up in {time.monotonic() - started:.1f} s")
    try:
        yield c
    finally:
        c.stop()


def _wait(predicate: object, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, what
        time.sleep(0.5)
    return time.monotonic() - started


@pytest.mark.slow
def test_files_of_a_managed_cluster(cluster: ManagedRayCluster) -> None:
    folder = cluster.folder
    state = json.loads((folder / "state.json").read_text())
    assert state["head_pid"] == cluster.head_pid
    assert state["dashboard_url"] == cluster.dashboard_url
    assert state["address"].startswith("127.0.0.1:")
    assert state["temp_dir"].startswith("/tmp/ty-ray-") and len(state["temp_dir"]) < 30
    assert stat.S_IMODE((folder / "token").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert json.loads((folder / "autoscaling.json").read_text())["provider"]["type"] == (
        "fake_multinode"
    )
    assert (folder / "head.log").is_file()
    assert cluster.alive() and cluster.why_dead() is None
    head = [n for n in cluster.request("/api/v0/nodes?detail=true")["data"]["result"]["result"]]
    assert [n["is_head_node"] for n in head] == [True]
    assert "CPU" not in head[0]["resources_total"]
    assert "trainyard_slot" not in head[0]["resources_total"]


@pytest.mark.slow
def test_listeners_are_on_loopback_and_the_token_is_required(cluster: ManagedRayCluster) -> None:
    import psutil

    addresses = set()
    for pid in cluster.members():
        try:
            for conn in psutil.Process(pid).net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    addresses.add(conn.laddr.ip)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    assert addresses and addresses <= {"127.0.0.1", "::ffff:127.0.0.1"}, addresses
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as refused:
        cluster.request("/api/version", token="not-the-token")
    assert refused.value.code in (401, 403)


@pytest.mark.slow
def test_another_process_finds_the_cluster_again(cluster: ManagedRayCluster) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from trainyard._execution.ray.cluster import ManagedRayCluster as M; "
        "c = M.load(Path(sys.argv[1])); print(c.head_pid, c.alive(), len(c.members()) > 1)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(cluster.folder)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ).stdout.split()
    assert out == [str(cluster.head_pid), "True", "True"]
    assert ManagedRayCluster.load(cluster.folder) == cluster


@pytest.mark.slow
def test_rewritten_config_scales_up_then_stop_ends_every_node(cluster: ManagedRayCluster) -> None:
    assert cluster.alive_workers() == []
    # the autoscaler re-reads autoscaling.json on every update: raise the range, a node comes
    ManagedRayCluster.load(cluster.folder).set_scale({"w": NodeType(SLOT, 1, 2)})
    config = cluster.read_config()
    assert config["available_node_types"]["w"]["min_workers"] == 1
    assert config["max_workers"] == 2
    took = _wait(lambda: len(cluster.alive_workers()) == 1, 90, "no node after min_workers=1")
    print(f"node up {took:.1f} s after the config was rewritten")
    worker = cluster.alive_workers()[0]
    assert worker["resources_total"]["trainyard_slot"] == 1
    assert worker["resources_total"]["CPU"] == 1

    members = cluster.members()
    assert len(members) > 3  # head, GCS, raylets, dashboards, the worker node's processes
    temp = cluster.temp_dir
    ManagedRayCluster.load(cluster.folder).stop()  # a later process stops it, by PID
    assert cluster.members() == []
    assert not any(process_running(pid) for pid in members)
    assert not temp.exists()
    assert not cluster.alive() and "not running" in (cluster.why_dead() or "")
