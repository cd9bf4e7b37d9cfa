"""A PyTorch job's ranks across Ray nodes: rank 0's node leads, the others follow a rendezvous file.

The dispatcher places a multi-node run with a placement group (``STRICT_SPREAD``: one bundle, one
node, per node of the job). Bundle 0's task starts the run's supervisor, whose ranks on that node
(node rank 0) are started as on one machine, with ``MASTER_ADDR`` its node's address and a free
``MASTER_PORT``; it then writes ``rendezvous.json`` next to the run's live files (the command, the
ranks' environment, the master's address and port). Every other bundle's task (:func:`follow`)
waits for that file and starts its node's ranks (``NODE_RANK`` = its bundle, global ranks after the
nodes before it), each with its own ``user_logs/std_log_process_<rank>.txt``, in the run's working
folder; when they end it writes ``node-<n>.json`` with their exit codes.

The supervisor holds a :class:`ClusterRanks`: its own ranks plus the others' result files. A rank
that fails anywhere stops every rank (``ranks-stop``, which each follower watches, and SIGTERM then
SIGKILL on the leader's node), and the run fails with that rank's error and log; a cancel and a time
limit stop them the same way. The nodes share the workspace folder (see
:mod:`trainyard._execution.ray.backend`), so each rank's log, the rendezvous and ``./outputs`` are
in one place: the ranks write one ``./outputs``, where two ranks writing the same file leave the last
one's (rank 0 should write the model, as DDP scripts do).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainyard._execution import launch, runfiles
from trainyard._execution.daemon import terminate_group
from trainyard._execution.distributed import Layout

RENDEZVOUS = "rendezvous.json"
STOP = "ranks-stop"
#: How long a follower waits for the leader's rendezvous before giving up.
RENDEZVOUS_TIMEOUT_S = 600.0


def node_result(live: Path, node_rank: int) -> Path:
    """Where node ``node_rank`` writes its ranks' exit codes."""
    return live / f"node-{node_rank}.json"


class ClusterRanks(launch.Ranks):
    """The supervisor's view of a multi-node job (see the module docstring)."""

    def __init__(
        self,
        layout: Layout,
        procs: list[subprocess.Popen[bytes]],
        paths: runfiles.RunPaths,
        grace: float,
        log: Callable[[str], None],
    ) -> None:
        super().__init__(layout, procs, paths, grace, log)
        self._remote: dict[int, list[int]] = {}
        #: The Ray node each follower ran on, by node rank (as they report).
        self.follower_nodes: dict[int, str] = {}

    def _read_remote(self) -> None:
        for node in range(1, self.layout.node_count):
            if node in self._remote:
                continue
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(node_result(self.paths.live, node).read_text())
                self._remote[node] = [int(c) for c in data["codes"]]
                self.follower_nodes[node] = str(data.get("node") or "")

    def wait(self, timeout: float) -> int | None:
        local = super().wait(timeout)
        if local not in (None, 0):
            self._stop_followers()
            return local
        self._read_remote()
        ppn = self.layout.processes_per_node
        for node, codes in sorted(self._remote.items()):
            for i, rc in enumerate(codes):
                if rc != 0:
                    self.failed_rank = node * ppn + i
                    self.log(f"rank {self.failed_rank} on node {node} exited with code {rc}")
                    self.terminate()
                    return rc
        if local == 0 and len(self._remote) == self.layout.node_count - 1:
            return 0
        return None

    def _stop_followers(self) -> None:
        with contextlib.suppress(OSError):
            (self.paths.live / STOP).touch()

    def terminate(self) -> None:
        """Stop every rank on every node: the followers' stop file, then the local ranks."""
        self._stop_followers()
        super().terminate()
        deadline = time.monotonic() + self.grace + 5.0
        while len(self._remote) < self.layout.node_count - 1 and time.monotonic() < deadline:
            self._read_remote()
            time.sleep(0.1)


def lead(
    layout: Layout,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    paths: runfiles.RunPaths,
    *,
    run_id: str,
    master_addr: str,
    grace: float,
    log: Callable[[str], None],
) -> ClusterRanks:
    """Node 0: start this node's ranks and publish the rendezvous for the other nodes."""
    for stale in (paths.live / STOP, paths.live / RENDEZVOUS):
        stale.unlink(missing_ok=True)
    port = launch.free_port("0.0.0.0" if master_addr != "127.0.0.1" else master_addr)
    ifname = env.get("GLOO_SOCKET_IFNAME") or (
        launch.loopback_interface() if master_addr == "127.0.0.1" else None
    )
    log(
        f"torch.distributed over {layout.node_count} Ray nodes: {layout.world_size} ranks, "
        f"MASTER_ADDR={master_addr} MASTER_PORT={port}"
    )
    procs = launch.start_torch_node(
        layout, argv, env, cwd, paths, 0, (master_addr, port), ifname, run_id, new_session=True
    )
    rendezvous = {
        "argv": list(argv),
        "env": dict(env),
        "cwd": str(cwd),
        "master": [master_addr, port],
        "ifname": ifname,
        "layout": {
            "node_count": layout.node_count,
            "processes_per_node": layout.processes_per_node,
        },
    }
    tmp = paths.live / f".{RENDEZVOUS}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(rendezvous, fh)
    os.replace(tmp, paths.live / RENDEZVOUS)
    return ClusterRanks(layout, procs, paths, grace, log)


def follow(home: str, run_id: str, node_rank: int, layout_dict: dict[str, Any]) -> list[int]:
    """The Ray task of node ``node_rank`` (> 0) of a multi-node run: wait for the rendezvous,
    start this node's ranks, stop them on ``ranks-stop``, record their exit codes."""
    paths = runfiles.RunPaths(Path(home), run_id)
    live = paths.live
    deadline = time.monotonic() + RENDEZVOUS_TIMEOUT_S
    while not (live / RENDEZVOUS).exists():
        if (live / STOP).exists() or time.monotonic() > deadline:
            codes = [-1] * int(layout_dict.get("processes_per_node", 1))
            node_result(live, node_rank).write_text(json.dumps({"codes": codes}))
            return codes
        time.sleep(0.1)
    spec = json.loads((live / RENDEZVOUS).read_text())
    layout = Layout(
        "pytorch", int(spec["layout"]["node_count"]), int(spec["layout"]["processes_per_node"])
    )
    master = (str(spec["master"][0]), int(spec["master"][1]))
    procs = launch.start_torch_node(
        layout,
        spec["argv"],
        spec["env"],
        Path(spec["cwd"]),
        paths,
        node_rank,
        master,
        spec.get("ifname"),
        run_id,
        new_session=True,
    )
    pgid = procs[0].pid
    while any(p.poll() is None for p in procs):
        if (live / STOP).exists():
            terminate_group(pgid, 10.0)
            break
        time.sleep(0.25)
    codes = [p.wait() for p in procs]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, 9)
    node_id = ""
    with contextlib.suppress(Exception):
        import ray

        node_id = ray.get_runtime_context().get_node_id()
    tmp = live / f".node-{node_rank}.json.tmp"
    tmp.write_text(json.dumps({"codes": codes, "node": node_id}))
    os.replace(tmp, node_result(live, node_rank))
    return codes


__all__ = ["RENDEZVOUS", "STOP", "ClusterRanks", "follow", "lead", "node_result"]
