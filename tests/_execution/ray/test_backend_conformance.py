"""The Ray backend passes the shipped backend conformance suite on a real multi-node Ray cluster on
this machine (a head and worker nodes started by Ray's fake multi-node provider, on loopback with
token authentication)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")

from trainyard._execution.ray.backend import RayBackend
from trainyard.core import Workspace
from trainyard.testing.backend import (
    BackendConformance,
    BackendEnv,
    fast_liveness,
    kill_owner_by_pid,
)
from trainyard.testing.fixtures import unique_name
from trainyard.testing.ray_cluster import LocalRayCluster, NodeType

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    """One node with one slot of ``one`` and two nodes with one slot each of ``two``, kept up."""
    c = LocalRayCluster.start(
        tmp_path_factory.mktemp("ray"),
        {
            "one": NodeType({"CPU": 1, "slot_one": 1}, min_workers=1, max_workers=1),
            "two": NodeType({"CPU": 1, "slot_two": 1}, min_workers=2, max_workers=2),
        },
    )
    try:
        c.wait_for_workers(3)
        yield c
    finally:
        c.stop()


def ray_target(ws: Workspace, name: str, cluster: LocalRayCluster, slot: str, nodes: int) -> None:
    """A ``raycompute`` target on ``cluster`` whose runs take one ``slot`` each."""
    ws.context.store.put_compute_target(
        ws.context.workspace_id,
        name,
        "raycompute",
        {
            "backend": "ray",
            "max_nodes": nodes,
            "max_concurrent_runs": nodes,
            "ray": {
                "managed": True,
                "address": cluster.address,
                "dashboard_url": cluster.dashboard_url,
                "token_file": str(cluster.root / "token"),
                "slot_resource": slot,
                "node_resources": {"CPU": 1, slot: 1},
            },
        },
    )


class TestRayBackend(BackendConformance):
    @pytest.fixture
    def backend_env(
        self, cluster: LocalRayCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> BackendEnv:
        fast_liveness(monkeypatch)
        ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
        ray_target(ws, "one", cluster, "slot_one", 1)
        ray_target(ws, "two", cluster, "slot_two", 2)
        env = BackendEnv(
            workspace=ws, target="one", wide_target="two", kill_owner=kill_owner_by_pid
        )
        assert isinstance(env.backend(), RayBackend)
        return env
