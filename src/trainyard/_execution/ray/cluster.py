"""Ray clusters trainyard starts and stops itself: a head on this machine whose autoscaler adds
and removes worker nodes, all on loopback, with token authentication, stopped by PID (never
``ray stop``, which ends every Ray process on the machine).

The head runs ``ray start --head --block`` in a session of its own with Ray's fake multi-node
provider (``RAY_FAKE_CLUSTER=1``): its autoscaler starts worker nodes as processes of that session,
between each node type's ``min_workers`` and ``max_workers``, and removes them after
``idle_timeout_minutes``. The head has no CPUs and no run slots, so runs land on worker nodes.

A managed cluster lives in one folder (``<workspace>/clusters/<target>/``)::

    state.json          head pid (+ its start stamp), GCS address, dashboard URL, Ray temp dir
    token               Ray's auth token (mode 0600)
    autoscaling.json    the autoscaler's cluster config (JSON is YAML); re-read on every update
    head.log            the head's stdout and stderr

so a later process finds it again with :meth:`ManagedRayCluster.load`, changes its scale settings
by rewriting ``autoscaling.json`` (:meth:`ManagedRayCluster.set_scale`) and stops it with
:meth:`ManagedRayCluster.stop` (every process of the head's session).

Example::

    cluster = ManagedRayCluster.start(folder, {"standard_d2_v2": NodeType({"CPU": 2}, 0, 2)})
    ManagedRayCluster.load(folder).alive()      # True
    cluster.set_scale({"standard_d2_v2": NodeType({"CPU": 2}, 1, 2)})   # a node comes
    cluster.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainyard._compat.platform import process_running, process_start, session_members
from trainyard._execution.launch import free_port
from trainyard.exceptions import ComputeTargetException

#: Keep every Ray listener on loopback, and send no usage reports.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
#: The head's node type in the autoscaler's config.
HEAD_NODE_TYPE = "ray.head.default"
STATE_FILE = "state.json"
TOKEN_FILE = "token"
CONFIG_FILE = "autoscaling.json"
LOG_FILE = "head.log"
#: Resources Ray's fake provider cannot give a node as custom resources (it sizes them itself).
_PROVIDER_SIZED = ("memory", "object_store_memory")
#: Variables of the caller's environment that would point the head at another cluster or token.
_FOREIGN_ENV = ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE")


@dataclass(frozen=True)
class NodeType:
    """One worker node type of the autoscaler: its resources and how many may run."""

    resources: dict[str, float]
    min_workers: int = 0
    max_workers: int = 1


def autoscaling_config(
    head_address: str,
    node_types: dict[str, NodeType],
    idle_timeout_minutes: float,
    cluster_name: str = "trainyard",
) -> dict[str, Any]:
    """The autoscaler's cluster config for the fake multi-node provider (Ray's wheel ships no
    example). ``gcs_address`` must name the head: the provider's nodes dial ``127.0.0.1:6379``
    otherwise and never join. ``memory`` is left out of the node types' resources: the provider
    refuses it as a custom resource and gives each node this machine's memory instead."""
    types: dict[str, Any] = {
        HEAD_NODE_TYPE: {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0}
    }
    for name, t in node_types.items():
        types[name] = {
            "resources": {k: v for k, v in t.resources.items() if k not in _PROVIDER_SIZED},
            "node_config": {},
            "min_workers": t.min_workers,
            "max_workers": t.max_workers,
        }
    return {
        "cluster_name": cluster_name,
        "max_workers": sum(t.max_workers for t in node_types.values()),
        "provider": {
            "type": "fake_multinode",
            "gcs_address": head_address,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": types,
        "head_node_type": HEAD_NODE_TYPE,
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


def ray_executable() -> Path:
    """The ``ray`` command of this interpreter's environment; ``ComputeTargetException`` saying
    what to install when Ray is missing."""
    beside = Path(sys.executable).with_name("ray")
    if beside.exists():
        return beside
    found = shutil.which("ray")
    if found:
        return Path(found)
    raise ComputeTargetException(
        "Ray is not installed here, so no Ray cluster can be started: pip install "
        "'trainyard[ray]' (or use backend='local' to run on local processes)."
    )


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (created 0600, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    path.chmod(0o600)


def _write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class ManagedRayCluster:
    """A head started by :meth:`start` or found again by :meth:`load` (see the module docstring)."""

    folder: Path
    address: str
    dashboard_url: str
    head_pid: int
    head_start: int | None
    #: Ray's session folder (logs, sockets), removed by :meth:`stop`.
    temp_dir: Path
    started_at: float = 0.0
    #: The head node's dashboard agent (it runs the Jobs API's work): jobs can be submitted once
    #: it listens.
    agent_port: int | None = None
    #: The head's process object, in the process that started it (to reap it).
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)

    # -- files --------------------------------------------------------------------------------
    @property
    def token_file(self) -> Path:
        """The file holding Ray's auth token."""
        return self.folder / TOKEN_FILE

    @property
    def config_file(self) -> Path:
        """The autoscaler's config."""
        return self.folder / CONFIG_FILE

    @property
    def log_file(self) -> Path:
        """The head's output."""
        return self.folder / LOG_FILE

    @property
    def token(self) -> str:
        """Ray's auth token (read from :attr:`token_file`)."""
        return self.token_file.read_text(encoding="utf-8").strip()

    @property
    def env(self) -> dict[str, str]:
        """The variables a process needs to talk to this cluster as a Ray client or node."""
        return {
            **LOOPBACK_ENV,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_file),
        }

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the head's log ("" when there is none)."""
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- start / load -------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        folder: Path,
        node_types: dict[str, NodeType],
        idle_timeout_minutes: float = 30.0,
        timeout: float = 60.0,
        cluster_name: str = "trainyard",
    ) -> ManagedRayCluster:
        """Start a head in ``folder`` and wait until its dashboard answers an authenticated
        request; on failure stop what was started and raise ``ComputeTargetException`` with the
        end of the head's log. Files of an earlier cluster in ``folder`` are replaced."""
        ray = ray_executable()
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        port, dash, agent = free_port(), free_port(), free_port()
        address = f"127.0.0.1:{port}"
        write_private(folder / TOKEN_FILE, secrets.token_hex(32))
        config = autoscaling_config(address, node_types, idle_timeout_minutes, cluster_name)
        _write_atomic(folder / CONFIG_FILE, json.dumps(config, indent=2))
        # Short temp paths: Ray's Unix sockets must fit in 107 bytes.
        temp = Path("/tmp") / f"ty-ray-{secrets.token_hex(4)}"
        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
        env.update(
            {
                **LOOPBACK_ENV,
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(folder / TOKEN_FILE),
                "RAY_FAKE_CLUSTER": "1",
                "AUTOSCALER_UPDATE_INTERVAL_S": "1",
            }
        )
        with open(folder / LOG_FILE, "wb") as log:
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
                    f"--dashboard-agent-listen-port={agent}",
                    "--num-cpus=0",
                    "--num-gpus=0",
                    f"--autoscaling-config={folder / CONFIG_FILE}",
                    f"--temp-dir={temp}",
                    "--disable-usage-stats",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        cluster = cls(
            folder=folder,
            address=address,
            dashboard_url=f"http://127.0.0.1:{dash}",
            head_pid=proc.pid,
            head_start=process_start(proc.pid),
            temp_dir=temp,
            agent_port=agent,
            started_at=time.time(),
            process=proc,
        )
        cluster.save()
        deadline = time.monotonic() + timeout
        while True:
            try:
                cluster.request("/api/version", timeout=5)
                cluster.check_agent()
                # Ready once the state API lists the head node too (status and scheduling read it).
                nodes = cluster.request("/api/v0/nodes?limit=10", timeout=5)
                if not nodes.get("data", {}).get("result", {}).get("result"):
                    raise ValueError("the head node is not registered yet")
                return cluster
            except (OSError, ValueError) as err:
                if proc.poll() is not None or time.monotonic() > deadline:
                    cluster.stop()
                    why = "exited" if proc.poll() is not None else f"no answer in {timeout:.0f} s"
                    raise ComputeTargetException(
                        f"The Ray head did not start ({why}; last error: {err}). Its log "
                        f"{cluster.log_file} ends:\n{cluster.log_tail()}",
                        folder=str(folder),
                    ) from None
                time.sleep(0.2)

    def save(self) -> None:
        """Write ``state.json``."""
        state = {
            "head_pid": self.head_pid,
            "head_start": self.head_start,
            "address": self.address,
            "dashboard_url": self.dashboard_url,
            "temp_dir": str(self.temp_dir),
            "started_at": self.started_at,
            "agent_port": self.agent_port,
        }
        _write_atomic(self.folder / STATE_FILE, json.dumps(state, indent=2))

    @classmethod
    def load(cls, folder: Path) -> ManagedRayCluster:
        """The cluster whose files are in ``folder`` (alive or not); ``ComputeTargetException``
        when ``folder`` holds no readable ``state.json``."""
        path = folder / STATE_FILE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                folder=folder,
                address=str(state["address"]),
                dashboard_url=str(state["dashboard_url"]),
                head_pid=int(state["head_pid"]),
                head_start=None if state.get("head_start") is None else int(state["head_start"]),
                temp_dir=Path(state["temp_dir"]),
                started_at=float(state.get("started_at") or 0.0),
                agent_port=None if state.get("agent_port") is None else int(state["agent_port"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ComputeTargetException(
                f"No managed Ray cluster in {folder} ({path.name}: {err}). Recreate the target "
                "with ComputeTarget.create (or `trainyard compute create`).",
                folder=str(folder),
            ) from None

    # -- liveness -----------------------------------------------------------------------------
    def head_running(self) -> bool:
        """Whether the head process is alive (the same process: its start stamp matches)."""
        if self.process is not None and self.process.poll() is not None:
            return False
        if not process_running(self.head_pid):
            return False
        return self.head_start is None or process_start(self.head_pid) == self.head_start

    def dashboard_answers(self, timeout: float = 3.0) -> bool:
        """Whether the dashboard answers an authenticated request now."""
        try:
            self.request("/api/version", timeout=timeout)
            return True
        except (OSError, ValueError):
            return False

    def check_agent(self, timeout: float = 2.0) -> None:
        """Raise ``OSError`` unless the head's dashboard agent accepts connections (the Jobs API
        answers "No available agent" until it does)."""
        if self.agent_port is not None:
            socket.create_connection(("127.0.0.1", self.agent_port), timeout=timeout).close()

    def alive(self) -> bool:
        """Head process alive and dashboard answering."""
        return self.head_running() and self.dashboard_answers()

    def why_dead(self) -> str | None:
        """Why the cluster is not usable (``None`` when it is alive)."""
        if not self.head_running():
            return (
                f"its Ray head (pid {self.head_pid}) is not running; the end of {self.log_file}:"
                f"\n{self.log_tail(800)}"
            )
        if not self.dashboard_answers():
            return (
                f"its Ray head (pid {self.head_pid}) runs but {self.dashboard_url} does not answer"
            )
        return None

    def request(self, path: str, token: str | None = None, timeout: float = 10.0) -> Any:
        """GET ``path`` of the dashboard with the cluster's token (or ``token``), as JSON."""
        req = urllib.request.Request(
            self.dashboard_url + path,
            headers={"Authorization": f"Bearer {self.token if token is None else token}"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def alive_workers(self) -> list[dict[str, Any]]:
        """The worker nodes that are alive now (Ray's state API)."""
        body = self.request("/api/v0/nodes?limit=10000&detail=true")
        nodes = body.get("data", {}).get("result", {}).get("result", [])
        return [n for n in nodes if n.get("state") == "ALIVE" and not n.get("is_head_node")]

    # -- scale --------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        """The autoscaler's config as it is on disk."""
        return dict(json.loads(self.config_file.read_text(encoding="utf-8")))

    def set_scale(
        self,
        node_types: dict[str, NodeType],
        idle_timeout_minutes: float | None = None,
    ) -> None:
        """Rewrite ``autoscaling.json`` with ``node_types`` (and the idle timeout): the running
        autoscaler reads it on its next update (about a second) and scales to it."""
        old = self.read_config()
        idle = old.get("idle_timeout_minutes", 30.0)
        config = autoscaling_config(
            self.address,
            node_types,
            idle if idle_timeout_minutes is None else idle_timeout_minutes,
            str(old.get("cluster_name") or "trainyard"),
        )
        _write_atomic(self.config_file, json.dumps(config, indent=2))

    # -- stop ---------------------------------------------------------------------------------
    def members(self) -> list[int]:
        """The processes of the head's session: the head, its autoscaler and every worker node.

        Nodes outlive a crashed head in its session; a pid reused by a later process means the
        session is gone (the kernel does not reuse a pid a session still holds)."""
        if process_running(self.head_pid) and not self.head_running():
            return []
        return session_members(self.head_pid)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM every process of the head's session, SIGKILL what is left after ``grace``,
        then remove Ray's temp folder. Safe to call on a dead cluster. (``ray start --block`` and
        the GCS server outlive a SIGTERM by more than 15 s here, and a cluster without external
        storage keeps nothing worth a longer wait.)"""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.members():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while self.members() and time.monotonic() < deadline:
                if self.process is not None:
                    self.process.poll()  # reap the head when it is our child
                time.sleep(0.1)
            if self.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=0.1)
            if not self.members():
                break
        if self.temp_dir.name.startswith("ty-ray-"):
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def remove(self, grace: float = 3.0) -> None:
        """Stop the cluster and delete its folder."""
        self.stop(grace)
        shutil.rmtree(self.folder, ignore_errors=True)


__all__ = [
    "HEAD_NODE_TYPE",
    "LOOPBACK_ENV",
    "ManagedRayCluster",
    "NodeType",
    "autoscaling_config",
    "ray_executable",
]
