"""The supervisor of a run on a Ray node: the entrypoint of the run's Ray job.

``python -m trainyard._execution.ray.node --workspace HOME --run-id ID`` (started by Ray, see
:mod:`trainyard._execution.ray.backend`)

It is :class:`~trainyard._execution.supervisor.Supervisor` with Ray as the admission: Ray started the
job on a node with a free ``trainyard_slot``, so there is no slot to wait for. A run that is no longer
Queued when its job starts (cancelled while it waited, or already ended) is left alone: the job exits
0 without touching it. The node's identity (Ray node id and address, host name) goes into the run's
runtime, so ``get_details()`` says where it ran and a lost supervisor's reason names the node. The
script's log is also copied to this process's stdout — Ray's job log — so ``ray job logs`` shows it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from trainyard._execution import launch
from trainyard._execution.daemon import run_daemon
from trainyard._execution.supervisor import Supervisor, record_crash
from trainyard._lifecycle import RunStatus
from trainyard.exceptions import InvalidStatusTransition


def node_identity() -> dict[str, Any]:
    """This node as Ray knows it plus the host name: from the task that started this supervisor
    (``TRAINYARD_RAY_NODE_ID``), else from the Ray job's record in the dashboard."""
    ident: dict[str, Any] = {"host": socket.gethostname()}
    if os.environ.get("TRAINYARD_RAY_NODE_ID"):
        ident["id"] = os.environ["TRAINYARD_RAY_NODE_ID"]
        if os.environ.get("TRAINYARD_RAY_NODE_IP"):
            ident["ip"] = os.environ["TRAINYARD_RAY_NODE_IP"]
        return ident
    dashboard, job = os.environ.get("TRAINYARD_RAY_DASHBOARD"), os.environ.get("TRAINYARD_RAY_JOB")
    if not dashboard or not job:
        return ident
    headers = {}
    token = _cluster_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{dashboard}/api/jobs/{job}", headers=headers)
    with contextlib.suppress(OSError, ValueError):
        with urllib.request.urlopen(req, timeout=5) as resp:
            info = json.loads(resp.read())
        if info.get("driver_node_id"):
            ident["id"] = info["driver_node_id"]
        agent = info.get("driver_agent_http_address") or ""
        if agent:
            ident["ip"] = agent.split("//")[-1].rsplit(":", 1)[0]
    return ident


def _cluster_token() -> str | None:
    """The cluster's token as Ray gave it to its own processes (token authentication)."""
    token = os.environ.get("RAY_AUTH_TOKEN")
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not token and path:
        with contextlib.suppress(OSError):
            token = Path(path).read_text(encoding="utf-8").strip()
    return token or None


class NodeSupervisor(Supervisor):
    """A run's supervisor on a Ray node (see the module docstring)."""

    #: The run's interpreter on this node (a multi-node job's followers get theirs for the same
    #: environment from their own node's cache).
    _python = sys.executable

    def run_script(self, python: str, env_extra: dict[str, str]) -> int:
        self._python = python
        return super().run_script(python, env_extra)

    def start_ranks(self, argv: list[str], env: dict[str, str], wd: Path) -> launch.Ranks:
        """A job over several Ray nodes leads from here (see ``ray/ranks.py``)."""
        if self.layout.node_count <= 1:
            return super().start_ranks(argv, env, wd)
        from trainyard._execution.ray.ranks import lead

        return lead(
            self.layout,
            argv,
            env,
            wd,
            self.paths,
            run_id=self.run_id,
            master_addr=os.environ.get("TRAINYARD_RAY_NODE_IP") or "127.0.0.1",
            environment=self.definition.get("environment") or {},
            extra_requirements=self.extra_requirements,
            python=self._python,
            grace=self.settings.cancel_grace_seconds,
            log=self.log,
        )

    def wait_for_slot(self) -> Any:
        """Ray admitted the job: only a cancel recorded meanwhile stops it here."""
        self.check_cancel()
        return None

    def main(self) -> int:
        status = self.status()
        if status == RunStatus.CANCEL_REQUESTED.value and self.info.start_time is None:
            with contextlib.suppress(InvalidStatusTransition):
                self.store.update_run_status(
                    self.run_id,
                    RunStatus.CANCELED.value,
                    reason="Canceled before a Ray node started it.",
                    only_from=[RunStatus.CANCEL_REQUESTED.value],
                )
            return 0
        if status != RunStatus.QUEUED.value:
            self.log(f"the run is {status}; its Ray job leaves it alone")
            return 0
        node = node_identity()
        self.info_node_id = str(node.get("id", ""))
        self.log(f"on Ray node {node.get('id', '?')} ({node.get('ip', node['host'])})")
        self.store.update_run(self.run_id, runtime={"node": node})
        stop = threading.Event()
        tail = threading.Thread(target=self._echo_std_log, args=(stop,), daemon=True)
        tail.start()
        try:
            return super().main()
        finally:
            stop.set()
            tail.join(timeout=2)

    def finalize(self, upload_outputs: bool) -> None:
        self._record_followers()
        super().finalize(upload_outputs)

    def _record_followers(self) -> None:
        """A multi-node job: the nodes its other ranks ran on, beside this one."""
        followers = getattr(self.ranks, "follower_nodes", None)
        if followers:
            with contextlib.suppress(Exception):
                nodes = [self.info_node_id, *(followers[n] for n in sorted(followers))]
                self.store.update_run(self.run_id, runtime={"nodes": nodes})

    def _echo_std_log(self, stop: threading.Event) -> None:
        """Copy the script's log to stdout as it grows (Ray's job log)."""
        path = self.paths.live_file("user_logs/std_log.txt")
        offset = 0
        while True:
            done = stop.wait(0.5)
            with contextlib.suppress(OSError):
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                if chunk:
                    offset += len(chunk)
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
            if done:
                return


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m trainyard._execution.ray.node --workspace HOME --run-id ID``."""
    return run_daemon(
        "trainyard-ray-node",
        lambda ctx, args: NodeSupervisor(ctx, str(args.run_id)).main(),
        arguments=(("--run-id", True),),
        on_crash=record_crash,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
