"""An MPI job across Ray nodes, without ssh: Open MPI's launch agent hands its daemons to Ray tasks.

``mpirun`` starts the ranks of remote hosts by running a launch agent (``plm_rsh_agent``, ssh by
default) with the host and the command of Open MPI's daemon (``orted``); the daemon then calls back
to ``mpirun`` over TCP, starts its node's ranks and forwards their output. Ray nodes need not
accept ssh, so the leader (node 0, where the run's supervisor and ``mpirun`` run) gives ``mpirun``
a host list of ``localhost`` plus one made-up name per follower node (``trainyard-node-<n>``) and an
agent of a few lines of ``/bin/sh`` (:data:`AGENT`, :func:`agent_options`): it writes the daemon's
command to ``mpi-launch-<n>`` in the run's live folder and waits for ``mpi-exit-<n>``. Node ``n``'s
Ray task (:func:`serve_daemon`, called from :func:`trainyard._execution.ray.ranks.follow`) runs that
command in a session of its own, with the run's variables, and writes the daemon's exit code.

``mpirun`` keeps its usual behaviour: it maps ranks by slot (node 0's first), ends every rank when
one fails (the daemons kill theirs), and its summary names the failed rank. A cancel stops
``mpirun``'s session on node 0 and, through ``ranks-stop``, each follower's daemon and ranks. When
the nodes' address is not loopback, Open MPI's TCP traffic is pinned to that address's network
(``oob_tcp_if_include``/``btl_tcp_if_include``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from trainyard._execution import launch
from trainyard._execution.daemon import terminate_group
from trainyard._execution.processes import signal_session

#: The made-up host name of follower node ``n`` in ``mpirun``'s host list.
HOST_PREFIX = "trainyard-node-"

#: Open MPI's launch agent, run as ``/bin/sh AGENT_FILE HOST ORTED_COMMAND…`` ({live} filled in).
AGENT = """# trainyard: hand Open MPI's daemon for HOST to that node's Ray task (see mpinodes.py)
live={live}
host=$1; shift
n=${{host##*-}}
printf '%s\\n' "$*" > "$live/.mpi-launch-$n.tmp" && mv "$live/.mpi-launch-$n.tmp" "$live/mpi-launch-$n"
while [ ! -e "$live/mpi-exit-$n" ]; do
  if [ -e "$live/ranks-stop" ]; then break; fi
  sleep 0.2
done
if [ -e "$live/mpi-error-$n" ]; then cat "$live/mpi-error-$n" >&2; fi
if [ -e "$live/mpi-exit-$n" ]; then exit "$(cat "$live/mpi-exit-$n")"; fi
exit 1
"""


def launch_request(live: Path, node_rank: int) -> Path:
    """Where the agent writes the daemon's command for node ``node_rank``."""
    return live / f"mpi-launch-{node_rank}"


def exit_file(live: Path, node_rank: int) -> Path:
    """Where node ``node_rank``'s task writes its daemon's exit code."""
    return live / f"mpi-exit-{node_rank}"


def error_file(live: Path, node_rank: int) -> Path:
    """Where node ``node_rank``'s task says why it could not run the daemon (the agent prints it
    into ``mpirun``'s log)."""
    return live / f"mpi-error-{node_rank}"


def hosts(node_count: int, processes_per_node: int) -> list[str]:
    """``mpirun``'s host list: this node, then one made-up name per follower node."""
    names = ["localhost", *(f"{HOST_PREFIX}{n}" for n in range(1, node_count))]
    return [f"{name}:{processes_per_node}" for name in names]


def agent_options(agent_file: Path, node_ip: str) -> list[tuple[str, str]]:
    """The ``--mca`` options for a job across nodes: the agent, every daemon started by
    ``mpirun`` itself (no tree spawn: the followers' tasks start theirs) and kept in the session
    its task starts, and Open MPI's TCP pinned to the nodes' network when it is not loopback."""
    options = [
        ("plm_rsh_agent", f"/bin/sh {agent_file}"),
        ("plm_rsh_no_tree_spawn", "1"),
        # Without it each daemon daemonizes (``orted --daemonize``): its node's task would see it
        # exit at once and lose its ranks' session.
        ("orte_leave_session_attached", "1"),
    ]
    found = launch.interface_of(node_ip)
    if found is not None and not ipaddress.ip_address(node_ip).is_loopback:
        options += [("oob_tcp_if_include", found[1]), ("btl_tcp_if_include", found[1])]
    return options


def write_agent(folder: Path, live: Path) -> Path:
    """Write the agent for the run whose live folder is ``live`` into ``folder``; its path."""
    if any(ch.isspace() for ch in str(folder)):
        raise ValueError(f"the MPI launch agent's folder {folder} has a space in its path")
    path = folder / "mpi-agent.sh"
    path.write_text(AGENT.format(live=shlex.quote(str(live))), encoding="utf-8")
    return path


def serve_daemon(
    live: Path,
    node_rank: int,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    *,
    stopped: Callable[[], bool],
    deadline: float,
) -> int:
    """Node ``node_rank``'s part: wait for ``mpirun``'s daemon command, run it in a session of
    its own (its ranks are in that session), stop it when ``stopped()``; its exit code (``-1``:
    no command came before ``deadline`` or the job stopped first)."""
    request = launch_request(live, node_rank)
    while not request.exists():
        if stopped() or time.monotonic() > deadline:
            return _done(live, node_rank, -1)
        time.sleep(0.1)
    command = request.read_text(encoding="utf-8").strip()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as out:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    while proc.poll() is None:
        if stopped():
            signal_session(proc.pid, signal.SIGTERM)
            terminate_group(proc.pid, 10.0)
            break
        time.sleep(0.25)
    rc = proc.wait()
    signal_session(proc.pid, signal.SIGKILL)  # a rank the daemon left behind
    return _done(live, node_rank, rc)


def refuse(live: Path, node_rank: int, message: str) -> None:
    """Node ``node_rank`` cannot run its daemon: say why (into ``mpirun``'s log, through the
    agent) and end the agent's wait."""
    error_file(live, node_rank).write_text(message + "\n", encoding="utf-8")
    _done(live, node_rank, 1)


def _done(live: Path, node_rank: int, rc: int) -> int:
    tmp = live / f".mpi-exit-{node_rank}.tmp"
    tmp.write_text(str(rc if rc >= 0 else 1), encoding="utf-8")
    os.replace(tmp, exit_file(live, node_rank))
    return rc


def clear(live: Path, node_count: int) -> None:
    """Remove what an earlier attempt of the run left for its nodes."""
    for node in range(1, node_count):
        for path in (launch_request(live, node), exit_file(live, node), error_file(live, node)):
            with contextlib.suppress(OSError):
                path.unlink()


__all__ = [
    "AGENT",
    "HOST_PREFIX",
    "agent_options",
    "clear",
    "error_file",
    "exit_file",
    "hosts",
    "launch_request",
    "refuse",
    "serve_daemon",
    "write_agent",
]
