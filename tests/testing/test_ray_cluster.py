"""The shipped local Ray cluster (``trainyard.testing.ray_cluster``): a real head on loopback with
token auth, whose autoscaler adds a worker node for work that needs one and removes it when idle,
stopped by PID with nothing left behind."""

from __future__ import annotations

import time
import urllib.error
from pathlib import Path

import pytest

pytest.importorskip("ray")

from trainyard.testing.ray_cluster import LocalRayCluster, NodeType

pytestmark = pytest.mark.slow


def test_scales_up_for_a_job_and_back_down_then_stops_by_pid(tmp_path: Path) -> None:
    cluster = LocalRayCluster.start(
        tmp_path / "ray", {"slot": NodeType({"CPU": 1, "trainyard_run_slots": 1}, max_workers=2)}
    )
    try:
        assert cluster.alive_workers() == []
        with pytest.raises(urllib.error.HTTPError) as refused:
            cluster.request("/api/version", token="not-the-token")
        assert refused.value.code in (401, 403)

        from ray.job_submission import JobStatus, JobSubmissionClient

        client = JobSubmissionClient(
            cluster.dashboard_url, headers={"Authorization": f"Bearer {cluster.token}"}
        )
        started = time.monotonic()
        job = client.submit_job(
            entrypoint="python -c \"print('hello from a node')\"",
            entrypoint_resources={"trainyard_run_slots": 1},
        )
        deadline = time.monotonic() + 90
        while not (status := client.get_job_status(job)).is_terminal():
            assert time.monotonic() < deadline, f"job still {status}"
            time.sleep(0.2)
        took = time.monotonic() - started
        assert status == JobStatus.SUCCEEDED, client.get_job_info(job).message
        assert "hello from a node" in client.get_job_logs(job)
        workers = {n["node_id"] for n in cluster.alive_workers()}
        assert client.get_job_info(job).driver_node_id in workers  # a new worker, not the head
        print(f"submit → job done on a new node: {took:.1f} s")

        deadline = time.monotonic() + 120
        while cluster.alive_workers():
            assert time.monotonic() < deadline, "the idle node was never removed"
            time.sleep(1)
        print(f"idle node removed {time.monotonic() - started - took:.1f} s after the job")
    finally:
        members = cluster.members()
        cluster.stop()
    assert members and cluster.members() == []
