"""Open MPI's launch agent handing a daemon's command to a node's task (``ray/mpinodes.py``),
with a stand-in command on this machine (the real ``mpirun`` across Ray nodes is in
``test_multinode.py``)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from trainyard._execution.ray import mpinodes


def test_the_host_list_and_the_agents_options() -> None:
    assert mpinodes.hosts(3, 2) == ["localhost:2", "trainyard-node-1:2", "trainyard-node-2:2"]
    options = dict(mpinodes.agent_options(Path("/tmp/a/agent.sh"), "127.0.0.1"))
    assert options["plm_rsh_agent"] == "/bin/sh /tmp/a/agent.sh"
    assert options["plm_rsh_no_tree_spawn"] == "1"
    assert options["orte_leave_session_attached"] == "1"
    assert "oob_tcp_if_include" not in options  # loopback: nothing to pin


def test_an_agent_folder_with_a_space_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="space"):
        mpinodes.write_agent(tmp_path / "a b", tmp_path)


def agent(tmp_path: Path, live: Path, *command: str) -> subprocess.Popen[bytes]:
    folder = tmp_path / "agent"
    folder.mkdir(exist_ok=True)
    path = mpinodes.write_agent(folder, live)
    return subprocess.Popen(
        ["/bin/sh", str(path), "trainyard-node-1", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_the_nodes_task_runs_the_daemons_command_and_the_agent_returns_its_code(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live"
    live.mkdir()
    proc = agent(tmp_path, live, "echo", "'daemon on'", "$MARK;", "exit", "3")
    rc = mpinodes.serve_daemon(
        live,
        1,
        {"MARK": "node-1", "PATH": "/usr/bin:/bin"},
        tmp_path,
        live / "system_logs/mpi_node_1.txt",
        stopped=lambda: False,
        deadline=time.monotonic() + 30,
    )
    assert rc == 3 and proc.wait(10) == 3
    assert (live / "system_logs/mpi_node_1.txt").read_text() == "daemon on node-1\n"


def test_a_stop_ends_the_daemon_and_its_children(tmp_path: Path) -> None:
    import psutil

    live = tmp_path / "live"
    live.mkdir()
    child = tmp_path / "child.pid"
    proc = agent(tmp_path, live, f"sleep 60 & echo $! > {child}; sleep 60")
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    rc = mpinodes.serve_daemon(
        live,
        1,
        {"PATH": "/usr/bin:/bin"},
        tmp_path,
        live / "daemon.txt",
        stopped=stop.is_set,
        deadline=time.monotonic() + 30,
    )
    assert rc != 0 and time.monotonic() - started < 15
    assert proc.wait(10) != 0  # the agent returns the daemon's end to mpirun
    pid = int(child.read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the daemon's child outlived the stop"
        time.sleep(0.05)


def test_a_node_that_cannot_take_part_says_why_through_the_agent(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    proc = agent(tmp_path, live, "true")
    deadline = time.monotonic() + 10
    while not mpinodes.launch_request(live, 1).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    mpinodes.refuse(live, 1, "node 1 could not build the environment")
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert b"node 1 could not build the environment" in err
    mpinodes.clear(live, 2)
    assert not mpinodes.exit_file(live, 1).exists()
