"""Runs of a team server's workspace on a Ray cluster: the server hands each run to Ray, and the
run's supervisor on the node writes status, metrics, logs and outputs back through the server with
the run's own token — no database URL or credential reaches the cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")

from trainyard.core import Experiment, ScriptRunConfig, Workspace
from trainyard.testing.fixtures import unique_name
from trainyard.testing.ray_cluster import LocalRayCluster, NodeType
from trainyard.testing.server import LiveServer, start_server

pytestmark = pytest.mark.slow

TRAIN = """
import os
from trainyard.core import Run
run = Run.get_context()
for i in range(5):
    run.log("loss", 1.0 / (i + 1))
os.makedirs("outputs", exist_ok=True)
open("outputs/model.txt", "w").write("weights")
print("trained on a node", flush=True)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    c = LocalRayCluster.start(
        tmp_path_factory.mktemp("ray"),
        {"w": NodeType({"CPU": 1, "trainyard_slot": 1}, min_workers=1, max_workers=1)},
    )
    try:
        c.wait_for_workers(1)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("server")
    live = start_server(f"sqlite:///{root / 'ty.db'}", root / "files")
    yield live
    live.stop()


def test_a_server_run_on_ray_reports_through_the_server_with_its_token(
    cluster: LocalRayCluster, server: LiveServer, tmp_path: Path
) -> None:
    ws = Workspace.create(unique_name("team"), server=server.url, token=server.admin_token)
    ws.context.store.put_compute_target(
        ws.context.workspace_id,
        "ray",
        "raycompute",
        {
            "backend": "ray",
            "max_nodes": 1,
            "max_concurrent_runs": 1,
            "ray": {
                "managed": True,
                "address": cluster.address,
                "dashboard_url": cluster.dashboard_url,
                "token_file": str(cluster.root / "token"),
                "node_resources": {"CPU": 1, "trainyard_slot": 1},
            },
        },
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(TRAIN)
    run = Experiment(ws, "on-ray").submit(
        ScriptRunConfig(str(src), "train.py", compute_target="ray")
    )
    details = run.wait_for_completion()
    assert details["status"] == "Completed", details.get("error")
    assert run.get_metrics()["loss"] == [1.0, 0.5, 1.0 / 3, 0.25, 0.2]
    assert "outputs/model.txt" in run.get_file_names()
    assert b"trained on a node" in run.read_log("user_logs/std_log.txt")
    node = run.get_details()["node"]
    assert node["id"] in {n["node_id"] for n in cluster.alive_workers()}

    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(
        cluster.dashboard_url, headers={"Authorization": f"Bearer {cluster.token}"}
    )
    job = client.get_job_info(run.get_info().runtime["ray"]["dispatcher"])
    seen = json.dumps([job.entrypoint, job.runtime_env, job.metadata])
    assert "sqlite" not in seen and "postgresql" not in seen, seen
    # The node's supervisor opened the workspace from a folder that names only the server.
    home = server.artifacts / ws.name
    meta = json.loads((home / "workspace.json").read_text())
    assert meta["server"] == server.url and "store" not in meta
