"""A real Ray cluster on this machine for tests: a head and autoscaled worker nodes, on loopback,
with token authentication, started and stopped by PID (never ``ray stop``, which ends every Ray
process on the machine).

A thin layer over the product's :class:`~trainyard._execution.ray.cluster.ManagedRayCluster`
(the clusters ``ComputeTarget.create`` starts): the same head, in a folder of the test's choosing,
with a one-second autoscaler and a short idle timeout by default.

Example::

    cluster = LocalRayCluster.start(tmp_path, {"cpu2": NodeType({"CPU": 2}, max_workers=2)})
    try:
        cluster.alive_workers()          # [] until work asks for a node
    finally:
        cluster.stop()
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainyard._execution.ray.cluster import (
    LOOPBACK_ENV,
    ManagedRayCluster,
    NodeType,
    autoscaling_config,
)
from trainyard.exceptions import ConfigError


@dataclass
class LocalRayCluster(ManagedRayCluster):
    """A running head (see the module docstring); build it with :meth:`start`."""

    @classmethod
    def start(
        cls,
        folder: Path,
        node_types: dict[str, NodeType],
        idle_timeout_minutes: float = 0.1,
        timeout: float = 60.0,
        cluster_name: str = "trainyard-test",
    ) -> LocalRayCluster:
        """Start the head in ``folder`` and wait until its dashboard answers an authenticated
        request."""
        cluster = super().start(folder, node_types, idle_timeout_minutes, timeout, cluster_name)
        assert isinstance(cluster, LocalRayCluster)
        return cluster

    @property
    def root(self) -> Path:
        """The cluster's folder (token, autoscaler config, head log, state)."""
        return self.folder

    def wait_for_workers(self, count: int, timeout: float = 90.0) -> list[dict[str, Any]]:
        """Wait until ``count`` worker nodes are alive; returns them."""
        deadline = time.monotonic() + timeout
        while len(workers := self.alive_workers()) < count:
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"Only {len(workers)} of {count} Ray worker nodes came up in {timeout:g} s; "
                    f"see {self.root / 'head.log'} and {self.temp_dir}."
                )
            time.sleep(0.2)
        return workers


__all__ = ["LOOPBACK_ENV", "LocalRayCluster", "NodeType", "autoscaling_config"]
