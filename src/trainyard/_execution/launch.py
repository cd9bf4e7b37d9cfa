"""Start a run's script as one process or as ranks, wait for them, stop them: :func:`start`.

One :class:`Ranks` object is what the supervisor holds while the script runs, whatever the layout:

``single``   the script alone, stdout+stderr to ``user_logs/std_log.txt`` (as before).
``mpi``      Open MPI's ``mpirun -np N`` (``--oversubscribe``; ``--allow-run-as-root`` only when
             running as root) in a session of its own, with its output in
             ``system_logs/launcher.txt``; each rank starts through a few-line shim
             (:data:`RANK_SHIM`, a few lines of ``/bin/sh``) that sends its stdout+stderr to
             ``user_logs/std_log_process_<rank>.txt`` and execs the script. Open MPI ends the other
             ranks when one fails (it signals each rank's process group, so ranks cannot share
             mpirun's: they are found as the members of mpirun's session instead).
``pytorch``  one process per rank with the variables torchrun sets (:func:`torch_rank_env`:
             ``MASTER_ADDR``/``MASTER_PORT`` on loopback, a free port, ``RANK``, ``WORLD_SIZE``,
             ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``NODE_RANK`` …, ``GLOO_SOCKET_IFNAME=lo``),
             each writing its own ``std_log_process_<rank>.txt``. When one rank fails, the others
             get SIGTERM, then SIGKILL after the grace period.

A PyTorch run's ranks are in **one process group** (rank 0 leads it); an MPI run's are the
members of mpirun's session. A cancel, a time limit and the reaper's kill of an orphaned run reach
every rank: :func:`~trainyard._execution.daemon.terminate_group` (SIGTERM, grace, SIGKILL) plus, for
MPI, the same signals to the session's members. Ranks share the run's working folder, so
``./outputs`` is uploaded once, as for one process. Each rank gets the run's variables, so
``Run.get_context()`` in every rank logs into the same run (the store takes concurrent writers).

The per-rank pieces (:func:`mpirun_argv`, :func:`torch_rank_env`, :data:`RANK_SHIM`) take
hosts, node ranks and a master address, so a cluster backend can start the same ranks on its
nodes (one ``mpirun`` with a host list, or one rank process per placement-group bundle). With
several nodes sharing no folder, each node's ``./outputs`` would be collected with rank 0's
winning a conflict; on one machine there is a single folder and nothing to merge.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainyard._execution import runfiles
from trainyard._execution.daemon import group_alive, terminate_group
from trainyard._execution.distributed import Layout, require_mpirun
from trainyard._execution.processes import session_members, signal_session

#: Runs as ``/bin/sh -c RANK_SHIM LOG_DIR ARGV…`` for each MPI rank: write this rank's output to
#: its own log, exec the script. On a node whose interpreter for the run is not the launching
#: node's (``TRAINYARD_NODE_PYTHON`` set in its daemon's environment), that one runs the script.
RANK_SHIM = """rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${PMI_RANK:-0}}}
exec >>"$0/std_log_process_$rank.txt" 2>&1
if [ -n "${TRAINYARD_NODE_PYTHON:-}" ]; then shift; set -- "$TRAINYARD_NODE_PYTHON" "$@"; fi
exec "$@"
"""

#: Open MPI names a failed rank in its summary: ``Process name: [[4711,1],3]``, or the rank that
#: called ``MPI_Abort`` (as ChainerMN's exception hook does): ``MPI_ABORT was invoked on rank 3``.
_OMPI_FAILED_RANK = re.compile(
    r"Process name:\s*\[\[\d+,\d+\],(\d+)\]|MPI_ABORT was invoked on rank (\d+)"
)


def mpirun_argv(
    mpirun: str,
    processes: int,
    log_dir: Path,
    argv: Sequence[str],
    hosts: Sequence[str] = (),
    mca: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """The ``mpirun`` command that starts ``processes`` ranks of ``argv``, each logging to
    ``log_dir/std_log_process_<rank>.txt`` through :data:`RANK_SHIM`. ``hosts`` (``host:slots``
    entries) spreads them over nodes (empty: this machine); ``mca`` adds ``--mca NAME VALUE``s."""
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    placement = ["--host", ",".join(hosts)] if hosts else []
    params = [item for name, value in mca for item in ("--mca", name, value)]
    return [
        mpirun,
        *root,
        "--oversubscribe",
        "--bind-to",
        "none",
        *params,
        *placement,
        "-np",
        str(processes),
        "/bin/sh",
        "-c",
        RANK_SHIM,
        str(log_dir),
        *argv,
    ]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the kernel picks it), for ``MASTER_PORT``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def loopback_interface() -> str | None:
    """The name of the loopback interface (``lo`` on Linux), or ``None`` if there is none."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    return "lo" if "lo" in names else next((n for n in names if n.startswith("lo")), None)


def interface_of(address: str) -> tuple[str, str] | None:
    """The network interface holding IPv4 ``address`` on this machine and its network in CIDR
    form (``("eth0", "10.0.0.0/24")``), or ``None`` when no interface has it. Pinning gloo
    (``GLOO_SOCKET_IFNAME``) and Open MPI (``*_tcp_if_include``) to it stops them picking an
    interface the other nodes cannot reach."""
    import ipaddress

    import psutil

    for name, addrs in psutil.net_if_addrs().items():
        for item in addrs:
            if item.family == socket.AF_INET and item.address == address:
                net = ipaddress.ip_network(f"{address}/{item.netmask or '32'}", strict=False)
                return name, str(net)
    return None


def torch_rank_env(
    *,
    rank: int,
    local_rank: int,
    local_world_size: int,
    world_size: int,
    node_rank: int,
    master_addr: str,
    master_port: int,
    socket_ifname: str | None,
    run_id: str,
) -> dict[str, str]:
    """The variables torchrun gives rank ``rank`` (``NODE_RANK`` as v1 added it), plus
    ``GLOO_SOCKET_IFNAME`` (gloo can hang picking an interface otherwise)."""
    env = {
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        "WORLD_SIZE": str(world_size),
        "RANK": str(rank),
        "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(local_world_size),
        "NODE_RANK": str(node_rank),
        "GROUP_RANK": str(node_rank),
        "GROUP_WORLD_SIZE": str(world_size // local_world_size),
        "ROLE_NAME": "default",
        "ROLE_RANK": str(rank),
        "ROLE_WORLD_SIZE": str(world_size),
        "TORCHELASTIC_RUN_ID": run_id,
        "TORCHELASTIC_RESTART_COUNT": "0",
        "TORCHELASTIC_MAX_RESTARTS": "0",
    }
    if socket_ifname:
        env["GLOO_SOCKET_IFNAME"] = socket_ifname
    return env


class Ranks:
    """The processes of one run's script (see the module docstring). Built by :func:`start`."""

    def __init__(
        self,
        layout: Layout,
        procs: list[subprocess.Popen[bytes]],
        paths: runfiles.RunPaths,
        grace: float,
        log: Callable[[str], None],
    ) -> None:
        self.layout = layout
        self.procs = procs
        self.paths = paths
        self.grace = grace
        self.log = log
        #: The rank whose failure ended the run (PyTorch: seen here; MPI: read from mpirun).
        self.failed_rank: int | None = None
        self._pidfds: dict[int, int] = {}
        for i, proc in enumerate(procs):
            try:
                self._pidfds[i] = os.pidfd_open(proc.pid)
            except (AttributeError, OSError):
                pass

    @property
    def pgid(self) -> int:
        """The run's process group (led by the first process)."""
        return self.procs[0].pid

    @property
    def pids(self) -> list[int]:
        """The processes this supervisor started (one per rank for PyTorch)."""
        return [p.pid for p in self.procs]

    def _sleep(self, timeout: float) -> None:
        """Sleep until a process exits or ``timeout`` passes (on pidfds where Linux has them,
        so an exit is seen at once and waiting costs no CPU; else short naps)."""
        if len(self._pidfds) < len(self.procs):
            time.sleep(min(timeout, 0.05))
            return
        live = [fd for i, fd in self._pidfds.items() if self.procs[i].returncode is None]
        if live:
            select.select(live, [], [], timeout)

    def wait(self, timeout: float) -> int | None:
        """The script's exit code once it ended (0 when every rank exited 0), else ``None``
        after at most ``timeout`` seconds. A rank that fails stops the others first."""
        self._sleep(timeout)
        codes = [p.poll() for p in self.procs]
        failed = [i for i, rc in enumerate(codes) if rc not in (None, 0)]
        if failed:
            rank = failed[0]
            rc = codes[rank]
            assert rc is not None
            if len(self.procs) > 1:
                self.failed_rank = rank
                if any(c is None for c in codes):
                    self.log(f"rank {rank} exited with code {rc}: stopping the other ranks")
                    self.terminate()
            return rc
        if all(rc == 0 for rc in codes):
            return 0
        return None

    @property
    def _session(self) -> bool:
        """Whether the ranks are found through mpirun's session (MPI) rather than the group."""
        return self.layout.kind == "mpi"

    def exited(self) -> bool:
        """Every process started here has exited and no rank is left."""
        if any(p.poll() is None for p in self.procs) or group_alive(self.pgid):
            return False
        return not (self._session and session_members(self.pgid))

    def terminate(self) -> None:
        """SIGTERM to every rank, SIGKILL after the grace period (a cancel, a time limit, a
        failed rank)."""
        if self._session:
            signal_session(self.pgid, signal.SIGTERM)
        terminate_group(self.pgid, self.grace, exited=self.exited, log=self.log)
        if self._session and signal_session(self.pgid, signal.SIGKILL):
            self.log(f"SIGKILL to the ranks left in session {self.pgid}")
        for proc in self.procs:
            proc.wait()

    def kill_stragglers(self) -> None:
        """SIGKILL what the script left running in the run's group (or session) after it ended."""
        sent = self._session and signal_session(self.pgid, signal.SIGKILL) > 0
        try:
            os.killpg(self.pgid, signal.SIGKILL)
            sent = True
        except (ProcessLookupError, PermissionError):
            pass
        if sent:
            self.log(f"SIGKILL to process group {self.pgid}: processes left behind by the script")

    def close(self) -> None:
        """Release the exit watchers."""
        for fd in self._pidfds.values():
            os.close(fd)
        self._pidfds.clear()

    def failure(self, rc: int) -> dict[str, Any]:
        """The error a non-zero exit records: the failing rank's exception and traceback (its
        ``rank`` and ``logFile`` named), or the launcher's message when no rank left one."""
        if not self.layout.ranked:
            return runfiles.failure_details(rc, self.paths.std_log)
        rank = self.failed_rank if self.layout.kind == "pytorch" else self._mpi_failed_rank()
        if rank is None:
            rank = self._first_rank_with_traceback()
        if rank is None:
            details = runfiles.failure_details(rc, self.paths.launcher_log)
            details["logFile"] = runfiles.LAUNCHER_LOG
            return details
        name = runfiles.rank_log(rank)
        details = runfiles.failure_details(rc, self.paths.live_file(name))
        details.update(rank=rank, logFile=name, worldSize=self.layout.world_size)
        details["message"] = f"Rank {rank} of {self.layout.world_size} failed: {details['message']}"
        return details

    def _mpi_failed_rank(self) -> int | None:
        try:
            text = self.paths.launcher_log.read_text("utf-8", "replace")
        except OSError:
            return None
        found = _OMPI_FAILED_RANK.search(text)
        return int(found.group(1) or found.group(2)) if found else None

    def _first_rank_with_traceback(self) -> int | None:
        from trainyard._execution.failure import parse_traceback

        for rank in range(self.layout.world_size):
            path = self.paths.live_file(runfiles.rank_log(rank))
            try:
                if parse_traceback(path.read_text("utf-8", "replace")[-256 * 1024 :]):
                    return rank
            except OSError:
                continue
        return None


def start(
    layout: Layout,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    paths: runfiles.RunPaths,
    *,
    run_id: str,
    grace: float,
    log: Callable[[str], None],
) -> Ranks:
    """Start ``argv`` (``python -u script args`` or a command) as ``layout`` says, in a new
    process group, and return the :class:`Ranks` to wait on."""
    if layout.kind == "mpi":
        proc = start_mpi(layout, argv, env, cwd, paths, log)
        return Ranks(layout, [proc], paths, grace, log)
    if layout.kind == "pytorch":
        return _start_torch(layout, argv, env, cwd, paths, run_id, grace, log)
    proc = _popen_logged(argv, paths.std_log, cwd, env)
    return Ranks(layout, [proc], paths, grace, log)


def _popen_logged(
    command: Sequence[str], log_path: Path, cwd: Path, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """``command`` in a new session, stdout and stderr appended to ``log_path``."""
    with open(log_path, "ab", buffering=0) as out:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            start_new_session=True,
        )


def start_mpi(
    layout: Layout,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    paths: runfiles.RunPaths,
    log: Callable[[str], None],
    *,
    hosts: Sequence[str] = (),
    mca: Sequence[tuple[str, str]] = (),
) -> subprocess.Popen[bytes]:
    """``mpirun`` of the job's ranks in a session of its own, its output in the launcher log
    (``hosts``/``mca`` as :func:`mpirun_argv` takes them)."""
    mpirun = require_mpirun()
    command = mpirun_argv(mpirun, layout.world_size, paths.user_logs, argv, hosts, mca)
    log(f"mpirun: {command[: command.index('-c')]} … {list(argv)}")
    return _popen_logged(command, paths.launcher_log, cwd, env)


def _start_torch(
    layout: Layout,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    paths: runfiles.RunPaths,
    run_id: str,
    grace: float,
    log: Callable[[str], None],
) -> Ranks:
    addr = "127.0.0.1"
    port = free_port(addr)
    ifname = env.get("GLOO_SOCKET_IFNAME") or loopback_interface()
    log(f"torch.distributed: {layout.world_size} ranks, MASTER_ADDR={addr} MASTER_PORT={port}")
    procs = start_torch_node(layout, argv, env, cwd, paths, 0, (addr, port), ifname, run_id)
    return Ranks(layout, procs, paths, grace, log)


def start_torch_node(
    layout: Layout,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    paths: runfiles.RunPaths,
    node_rank: int,
    master: tuple[str, int],
    ifname: str | None,
    run_id: str,
    *,
    new_session: bool = False,
) -> list[subprocess.Popen[bytes]]:
    """Start node ``node_rank``'s PyTorch ranks (global ranks after the nodes before it), each
    logging to its ``std_log_process_<rank>.txt``, in one process group led by its first rank:
    in the caller's session, or (``new_session``) in a session of its own."""
    ppn = layout.processes_per_node
    base = dict(env)
    if ppn > 1 and "OMP_NUM_THREADS" not in base:
        base["OMP_NUM_THREADS"] = "1"  # as torchrun does for several processes on one node
    procs: list[subprocess.Popen[bytes]] = []
    paths.user_logs.mkdir(parents=True, exist_ok=True)
    try:
        for local in range(ppn):
            rank = node_rank * ppn + local
            rank_env = torch_rank_env(
                rank=rank,
                local_rank=local,
                local_world_size=ppn,
                world_size=layout.world_size,
                node_rank=node_rank,
                master_addr=master[0],
                master_port=master[1],
                socket_ifname=ifname,
                run_id=run_id,
            )
            lead = not procs
            with open(paths.live_file(runfiles.rank_log(rank)), "ab", buffering=0) as out:
                procs.append(
                    subprocess.Popen(
                        list(argv),
                        cwd=cwd,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env={**base, **rank_env},
                        start_new_session=new_session and lead,
                        # One group for the node's ranks, led by its first.
                        process_group=None
                        if new_session and lead
                        else (0 if lead else procs[0].pid),
                    )
                )
    except BaseException:
        if procs:
            terminate_group(procs[0].pid, 0.0)
        raise
    return procs
