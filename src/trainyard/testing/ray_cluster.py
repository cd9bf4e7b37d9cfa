"""A real Ray cluster on this machine for tests: a head and autoscaled worker nodes, on loopback,
with token authentication, started and stopped by PID (never ``ray stop``, which ends every Ray
process on the machine).

The head runs ``ray start --head --block`` in a session of its own with Ray's fake multi-node
provider (``RAY_FAKE_CLUSTER=1``): its autoscaler starts worker nodes as processes of that session,
between each node type's ``min_workers`` and ``max_workers``, and removes them after
``idle_timeout_minutes``. :meth:`LocalRayCluster.stop` signals every process of the session.

Example::

    cluster = LocalRayCluster.start(tmp_path, {"cpu2": NodeType({"CPU": 2}, max_workers=2)})
    try:
        cluster.alive_workers()          # [] until work asks for a node
    finally:
        cluster.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainyard.exceptions import ConfigError
from trainyard.testing.server import free_port

#: Keep every Ray listener on loopback, and send no usage reports.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True)
class NodeType:
    """One worker node type of the autoscaler: its resources and how many may run."""

    resources: dict[str, float]
    min_workers: int = 0
    max_workers: int = 1


def autoscaling_config(
    head_address: str, node_types: dict[str, NodeType], idle_timeout_minutes: float
) -> dict[str, Any]:
    """The autoscaler's cluster config for the fake multi-node provider (Ray's wheel ships no
    example). ``gcs_address`` must name the head: the provider's nodes dial ``127.0.0.1:6379``
    otherwise and never join."""
    types: dict[str, Any] = {
        "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0}
    }
    for name, t in node_types.items():
        types[name] = {
            "resources": dict(t.resources),
            "node_config": {},
            "min_workers": t.min_workers,
            "max_workers": t.max_workers,
        }
    return {
        "cluster_name": "trainyard-test",
        "max_workers": sum(t.max_workers for t in node_types.values()),
        "provider": {
            "type": "fake_multinode",
            "gcs_address": head_address,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": types,
        "head_node_type": "ray.head.default",
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_minutes,
        "auth": {"ssh_user": "nobody"},
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


@dataclass
class LocalRayCluster:
    """A running head (see the module docstring); build it with :meth:`start`."""

    root: Path
    address: str
    dashboard_url: str
    token: str
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)
    #: Ray's session folder (logs, sockets), removed by :meth:`stop`.
    temp_dir: Path | None = None

    @classmethod
    def start(
        cls,
        root: Path,
        node_types: dict[str, NodeType],
        idle_timeout_minutes: float = 0.1,
        timeout: float = 60.0,
    ) -> LocalRayCluster:
        """Start the head and wait until its dashboard answers an authenticated request."""
        ray = Path(sys.executable).with_name("ray")
        if not ray.exists():
            raise ConfigError("Ray is not installed: pip install 'trainyard[ray]'.")
        root.mkdir(parents=True, exist_ok=True)
        port, dash = free_port(), free_port()
        address = f"127.0.0.1:{port}"
        token = secrets.token_hex(32)
        token_file = root / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        config = root / "autoscaling.json"  # JSON is YAML: the autoscaler reads it as is
        config.write_text(
            json.dumps(autoscaling_config(address, node_types, idle_timeout_minutes), indent=2)
        )
        env = {
            **LOOPBACK_ENV,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token_file),
        }
        # Short temp paths: Ray's Unix sockets must fit in 107 bytes.
        temp = Path("/tmp") / f"ty-ray-{secrets.token_hex(4)}"
        log = open(root / "head.log", "wb")  # noqa: SIM115 - the head owns it
        proc = subprocess.Popen(
            [
                str(ray),
                "start",
                "--head",
                "--block",
                "--node-ip-address=127.0.0.1",
                f"--port={port}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dash}",
                "--num-cpus=0",
                f"--autoscaling-config={config}",
                f"--temp-dir={temp}",
                "--disable-usage-stats",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={
                **os.environ,
                **env,
                "RAY_FAKE_CLUSTER": "1",
                "AUTOSCALER_UPDATE_INTERVAL_S": "1",
            },
        )
        log.close()
        cluster = cls(root, address, f"http://127.0.0.1:{dash}", token, proc, env, temp)
        deadline = time.monotonic() + timeout
        while True:
            try:
                cluster.request("/api/version")
                return cluster
            except OSError as err:
                if proc.poll() is not None or time.monotonic() > deadline:
                    cluster.stop()
                    tail = (root / "head.log").read_text(errors="replace")[-2000:]
                    raise ConfigError(f"The Ray head did not start ({err}):\n{tail}") from None
                time.sleep(0.2)

    def request(self, path: str, token: str | None = None) -> Any:
        """GET ``path`` of the dashboard with the cluster's token (or ``token``), as JSON."""
        req = urllib.request.Request(
            self.dashboard_url + path,
            headers={"Authorization": f"Bearer {self.token if token is None else token}"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def alive_workers(self) -> list[dict[str, Any]]:
        """The worker nodes that are alive now (Ray's state API)."""
        body = self.request("/api/v0/nodes?limit=1000")
        nodes = body.get("data", {}).get("result", {}).get("result", [])
        return [n for n in nodes if n.get("state") == "ALIVE" and not n.get("is_head_node")]

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

    def members(self) -> list[int]:
        """The processes of the head's session: the head, its autoscaler and every worker node."""
        from trainyard._compat.platform import session_members

        return session_members(self.process.pid)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every process of the head's session, SIGKILL what is left after ``grace``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.members():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while self.members() and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.1)
            if not self.members():
                break
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


__all__ = ["LOOPBACK_ENV", "LocalRayCluster", "NodeType", "autoscaling_config"]
