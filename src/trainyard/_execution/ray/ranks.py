"""A job's ranks across Ray nodes: rank 0's node leads, the others follow a rendezvous file.

The dispatcher places a multi-node run with a placement group (``STRICT_SPREAD``: one bundle, one
node, per node of the job). Bundle 0's task starts the run's supervisor, which (:func:`lead`)
first writes ``rendezvous.json`` next to the run's live files — the command, the ranks'
environment variables, the run's environment definition and interpreter, the layout, and for
PyTorch the master's address and a free port — and then starts its node's part. Every other
bundle's task (:func:`follow`) waits for that file, gets its node's interpreter for the run from
its own environment cache (:mod:`trainyard._execution.ray.nodeenv`, log
``system_logs/environment_build_node_<n>.txt``), and starts its node's part in the run's working
folder; when that ends it writes ``node-<n>.json`` (exit codes and its Ray node id).

**PyTorch**: each node starts its ranks as on one machine (``NODE_RANK`` = its bundle, global
ranks after the nodes before it), rendezvous at ``MASTER_ADDR`` = node 0's address, with gloo
pinned to the interface holding the node's own address (``GLOO_SOCKET_IFNAME``; a user's own
setting wins) — gloo picks an unreachable interface or hangs otherwise.

**MPI**: node 0 runs one ``mpirun`` over every node, its remote daemons started through the
followers' tasks instead of ssh (:mod:`trainyard._execution.ray.mpinodes`); ``mpirun`` decides
the job's end and names a failed rank as on one machine.

The supervisor holds a :class:`ClusterRanks`: its own processes plus the others' result files. A
rank that fails anywhere stops every rank (``ranks-stop``, which each follower watches, and SIGTERM
then SIGKILL on the leader's node), and the run fails with that rank's error and log; a cancel and
a time limit stop them the same way. The nodes share the workspace folder (see
:mod:`trainyard._execution.ray.backend`), so each rank's ``user_logs/std_log_process_<rank>.txt``,
the rendezvous and ``./outputs`` are in one place: the ranks write one ``./outputs``, where two
ranks writing the same file leave the last one's (rank 0 should write the model, as DDP and
ChainerMN scripts do).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainyard._execution import launch, runfiles
from trainyard._execution.daemon import terminate_group
from trainyard._execution.distributed import Layout
from trainyard._execution.ray import mpinodes, nodeenv

RENDEZVOUS = "rendezvous.json"
STOP = "ranks-stop"
#: How long a follower waits for the leader's rendezvous before giving up.
RENDEZVOUS_TIMEOUT_S = 600.0
#: How long a follower's MPI daemon command may take to come once the rendezvous is there.
DAEMON_TIMEOUT_S = 600.0


def node_result(live: Path, node_rank: int) -> Path:
    """Where node ``node_rank`` writes its exit codes."""
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
        scratch: Path | None = None,
    ) -> None:
        super().__init__(layout, procs, paths, grace, log)
        self._remote: dict[int, list[int]] = {}
        self._scratch = scratch
        #: The Ray node each follower ran on, by node rank (as they report).
        self.follower_nodes: dict[int, str] = {}

    def _read_remote(self) -> None:
        for node in range(1, self.layout.node_count):
            if node in self._remote:
                continue
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(node_result(self.paths.live, node).read_text())
                self._remote[node] = [int(c) for c in data["codes"]]
                self.follower_nodes[node] = str(data.get("node") or "")

    def _await_remote(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while len(self._remote) < self.layout.node_count - 1 and time.monotonic() < deadline:
            self._read_remote()
            if len(self._remote) < self.layout.node_count - 1:
                time.sleep(0.1)

    def wait(self, timeout: float) -> int | None:
        local = super().wait(timeout)
        if local not in (None, 0):
            self._stop_followers()
            return local
        if self.layout.kind == "mpi":
            # mpirun decides: it ends when every rank did, or fails naming the rank that failed.
            if local == 0:
                self._await_remote(self.grace + 5.0)
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
        self._await_remote(self.grace + 5.0)

    def close(self) -> None:
        """Release the exit watchers and the MPI launch agent's folder."""
        super().close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def lead(
    layout: Layout,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    paths: runfiles.RunPaths,
    *,
    run_id: str,
    master_addr: str,
    environment: Mapping[str, Any],
    extra_requirements: Sequence[str],
    python: str,
    grace: float,
    log: Callable[[str], None],
) -> ClusterRanks:
    """Node 0: publish the rendezvous for the other nodes, then start this node's part (its
    PyTorch ranks, or the job's ``mpirun``)."""
    live = paths.live
    for stale in (live / STOP, live / RENDEZVOUS):
        stale.unlink(missing_ok=True)
    for node in range(1, layout.node_count):
        node_result(live, node).unlink(missing_ok=True)
    mpinodes.clear(live, layout.node_count)
    spec: dict[str, Any] = {
        "argv": list(argv),
        "env": dict(env),
        "cwd": str(cwd),
        "python": python,
        "environment": dict(environment),
        "extra_requirements": list(extra_requirements),
        "layout": {
            "kind": layout.kind,
            "node_count": layout.node_count,
            "processes_per_node": layout.processes_per_node,
        },
    }
    loopback = master_addr == "127.0.0.1"
    if layout.kind == "pytorch":
        port = launch.free_port(master_addr if loopback else "0.0.0.0")
        spec["master"] = [master_addr, port]
        log(
            f"torch.distributed over {layout.node_count} Ray nodes: {layout.world_size} ranks, "
            f"MASTER_ADDR={master_addr} MASTER_PORT={port}"
        )
    _publish(live, spec)
    scratch: Path | None = None
    try:
        if layout.kind == "pytorch":
            ifname = socket_interface(env, master_addr)
            procs = launch.start_torch_node(
                layout, argv, env, cwd, paths, 0, (master_addr, port), ifname, run_id,
                new_session=True,
            )  # fmt: skip
        else:
            scratch = Path(tempfile.mkdtemp(prefix="trainyard-mpi-"))
            agent = mpinodes.write_agent(scratch, live)
            log(f"MPI over {layout.node_count} Ray nodes: {layout.world_size} ranks")
            proc = launch.start_mpi(
                layout,
                argv,
                env,
                cwd,
                paths,
                log,
                hosts=mpinodes.hosts(layout.node_count, layout.processes_per_node),
                mca=mpinodes.agent_options(agent, master_addr),
            )
            procs = [proc]
    except BaseException:
        (live / STOP).touch()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    return ClusterRanks(layout, procs, paths, grace, log, scratch)


def socket_interface(env: Mapping[str, str], node_ip: str) -> str | None:
    """The interface gloo binds to on a node whose address is ``node_ip``: the user's own
    ``GLOO_SOCKET_IFNAME``, else the interface holding that address (loopback's for
    ``127.0.0.1``), else ``None`` (gloo's own choice)."""
    if env.get("GLOO_SOCKET_IFNAME"):
        return env["GLOO_SOCKET_IFNAME"]
    if node_ip.startswith("127."):
        return launch.loopback_interface()
    found = launch.interface_of(node_ip)
    return found[0] if found else None


def _publish(live: Path, spec: Mapping[str, Any]) -> None:
    tmp = live / f".{RENDEZVOUS}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(spec, fh)
    os.replace(tmp, live / RENDEZVOUS)


def _await_rendezvous(live: Path) -> dict[str, Any] | None:
    deadline = time.monotonic() + RENDEZVOUS_TIMEOUT_S
    while not (live / RENDEZVOUS).exists():
        if (live / STOP).exists() or time.monotonic() > deadline:
            return None
        time.sleep(0.1)
    data: dict[str, Any] = json.loads((live / RENDEZVOUS).read_text())
    return data


def follow(
    home: str,
    run_id: str,
    node_rank: int,
    layout_dict: dict[str, Any],
    env: Mapping[str, str] | None = None,
) -> list[int]:
    """The Ray task of node ``node_rank`` (> 0) of a multi-node run (see the module docstring):
    wait for the rendezvous, get this node's interpreter, run this node's part, stop it on
    ``ranks-stop``, record its exit codes. ``env``: the variables the run was submitted with."""
    paths = runfiles.RunPaths(Path(home), run_id)
    live = paths.live
    spec = _await_rendezvous(live)
    if spec is None:
        return _record(live, node_rank, [-1] * int(layout_dict.get("processes_per_node", 1)))
    shape = spec["layout"]
    layout = Layout(
        str(shape.get("kind", "pytorch")),
        int(shape["node_count"]),
        int(shape["processes_per_node"]),
    )
    leader_python = str(spec.get("python") or "")
    try:
        python = nodeenv.node_python(
            spec.get("environment") or {},
            spec.get("extra_requirements") or (),
            {**os.environ, **(env or {})},
            live / nodeenv.build_log_name(node_rank),
        )
    except Exception as err:
        return _refuse(live, paths, layout, node_rank, f"{type(err).__name__}: {err}")
    rank_env = nodeenv.retarget(spec["env"], leader_python, python)
    cwd = Path(spec["cwd"])
    if layout.kind == "mpi":
        if python != leader_python:
            rank_env["TRAINYARD_NODE_PYTHON"] = python
        rc = mpinodes.serve_daemon(
            live,
            node_rank,
            rank_env,
            cwd,
            live / f"system_logs/mpi_node_{node_rank}.txt",
            stopped=lambda: (live / STOP).exists(),
            deadline=time.monotonic() + DAEMON_TIMEOUT_S,
        )
        return _record(live, node_rank, [rc])
    argv = [python if a == leader_python else a for a in spec["argv"]]
    procs = launch.start_torch_node(
        layout,
        argv,
        rank_env,
        cwd,
        paths,
        node_rank,
        (str(spec["master"][0]), int(spec["master"][1])),
        socket_interface(spec["env"], _node_ip()),
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
    return _record(live, node_rank, codes)


def _refuse(
    live: Path, paths: runfiles.RunPaths, layout: Layout, node_rank: int, why: str
) -> list[int]:
    """This node cannot take part: say why where the run's failure is read from, stop the job."""
    message = (
        f"Ray node {_node_id() or '?'} (node {node_rank} of the job) could not prepare the run's "
        f"environment: {why}. See {nodeenv.build_log_name(node_rank)} in the run's logs."
    )
    if layout.kind == "mpi":
        mpinodes.refuse(live, node_rank, message)
        codes = [1]
    else:
        ppn = layout.processes_per_node
        for rank in range(node_rank * ppn, (node_rank + 1) * ppn):
            log = paths.live_file(runfiles.rank_log(rank))
            with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as fh:
                fh.write(message + "\n")
        codes = [1] * ppn
    with contextlib.suppress(OSError):
        (live / STOP).touch()
    return _record(live, node_rank, codes)


def _node_id() -> str:
    with contextlib.suppress(Exception):
        import ray

        return str(ray.get_runtime_context().get_node_id())
    return ""


def _node_ip() -> str:
    with contextlib.suppress(Exception):
        import ray

        return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
    return "127.0.0.1"


def _record(live: Path, node_rank: int, codes: list[int]) -> list[int]:
    tmp = live / f".node-{node_rank}.json.tmp"
    tmp.write_text(json.dumps({"codes": codes, "node": _node_id()}))
    os.replace(tmp, node_result(live, node_rank))
    return codes


__all__ = [
    "RENDEZVOUS",
    "STOP",
    "ClusterRanks",
    "follow",
    "lead",
    "node_result",
    "socket_interface",
]
