"""The supervisor's wait on its script's processes (:class:`trainyard._execution.launch.Ranks`):
exit codes as ``Popen`` reports them, ``None`` while running; the pieces a cluster backend reuses
(the mpirun command line, torchrun's variables)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from trainyard._execution import launch
from trainyard._execution.distributed import Layout
from trainyard._execution.runfiles import RunPaths, rank_log, rank_of_log, sort_log_names


def _start(code: str, group: int = 0) -> subprocess.Popen[bytes]:
    """A process in group ``group`` (0: a new one it leads), as the launcher starts ranks."""
    return subprocess.Popen([sys.executable, "-c", code], process_group=group)


def _ranks(tmp_path: Path, *procs: subprocess.Popen[bytes]) -> launch.Ranks:
    layout = Layout("pytorch", 1, len(procs), "Gloo") if len(procs) > 1 else Layout()
    return launch.Ranks(layout, list(procs), RunPaths(tmp_path, "run"), 1.0, lambda _: None)


def test_running_then_exit_code(tmp_path: Path) -> None:
    proc = _start("import sys, time; time.sleep(0.5); sys.exit(3)")
    waiter = _ranks(tmp_path, proc)
    try:
        assert waiter.wait(0.01) is None
        rc = None
        for _ in range(300):
            rc = waiter.wait(0.1)
            if rc is not None:
                break
        assert rc == 3
        assert proc.returncode == 3
    finally:
        waiter.close()
        proc.kill()
        proc.wait()


def test_killed_by_a_signal_is_negative(tmp_path: Path) -> None:
    proc = _start("import time; time.sleep(60)")
    waiter = _ranks(tmp_path, proc)
    try:
        proc.send_signal(signal.SIGKILL)
        rc = None
        for _ in range(300):
            rc = waiter.wait(0.1)
            if rc is not None:
                break
        assert rc == -signal.SIGKILL
    finally:
        waiter.close()
        waiter.close()  # closing twice is harmless


def test_already_reaped_process_falls_back_to_popen(tmp_path: Path) -> None:
    proc = _start("pass")
    proc.wait()
    waiter = _ranks(tmp_path, proc)  # no pidfd for a reaped pid: Popen answers
    try:
        assert waiter.wait(0.1) == 0
    finally:
        waiter.close()


def test_ranks_end_when_all_exit_zero_and_a_failure_stops_the_rest(tmp_path: Path) -> None:
    fast = _start("pass")
    slow = _start("import time; time.sleep(0.3)", fast.pid)
    waiter = _ranks(tmp_path, fast, slow)
    rc = None
    for _ in range(100):
        rc = waiter.wait(0.1)
        if rc is not None:
            break
    assert rc == 0 and waiter.failed_rank is None
    waiter.close()
    ok = _start("import time; time.sleep(60)")
    bad = _start("import sys; sys.exit(4)", ok.pid)
    waiter = _ranks(tmp_path, ok, bad)
    try:
        for _ in range(100):
            rc = waiter.wait(0.1)
            if rc is not None:
                break
        assert rc == 4 and waiter.failed_rank == 1
        assert ok.poll() is not None  # the healthy rank was stopped
    finally:
        waiter.close()
        ok.kill()
        ok.wait()


def test_mpirun_command_adds_root_flag_only_as_root(tmp_path: Path) -> None:
    argv = launch.mpirun_argv("/usr/bin/mpirun", 4, tmp_path, ["python", "t.py"])
    assert argv[0] == "/usr/bin/mpirun"
    assert ("--allow-run-as-root" in argv) == (os.geteuid() == 0)
    assert argv[argv.index("-np") + 1] == "4" and "--oversubscribe" in argv
    assert argv[-3:] == [str(tmp_path), "python", "t.py"]
    spread = launch.mpirun_argv(
        "mpirun", 2, tmp_path, ["x"], hosts=["a:1", "b:1"], mca=[("plm_rsh_agent", "/bin/sh a")]
    )
    assert spread[spread.index("--host") + 1] == "a:1,b:1"
    at = spread.index("--mca")
    assert spread[at : at + 3] == ["--mca", "plm_rsh_agent", "/bin/sh a"]


def test_the_rank_shim_logs_per_rank_and_takes_a_nodes_own_interpreter(tmp_path: Path) -> None:
    """The shim mpirun starts each rank with: its output in its own log; a node whose daemon was
    given ``TRAINYARD_NODE_PYTHON`` runs the script with that interpreter instead."""
    argv = ["/nowhere/bin/python", "-c", "import sys; print('ran', sys.executable)"]
    base = {"PATH": os.environ["PATH"], "OMPI_COMM_WORLD_RANK": "3"}
    rc = subprocess.run(
        ["/bin/sh", "-c", launch.RANK_SHIM, str(tmp_path), *argv],
        env={**base, "TRAINYARD_NODE_PYTHON": sys.executable},
    ).returncode
    assert rc == 0
    assert (tmp_path / "std_log_process_3.txt").read_text() == f"ran {sys.executable}\n"
    rc = subprocess.run(
        ["/bin/sh", "-c", launch.RANK_SHIM, str(tmp_path), *argv], env=base
    ).returncode
    assert rc == 127  # without it, the launching node's interpreter, absent here
    assert "/nowhere/bin/python" in (tmp_path / "std_log_process_3.txt").read_text()


def test_torch_rank_variables_are_torchruns() -> None:
    env = launch.torch_rank_env(
        rank=3,
        local_rank=1,
        local_world_size=2,
        world_size=4,
        node_rank=1,
        master_addr="10.0.0.1",
        master_port=29500,
        socket_ifname="lo",
        run_id="r1",
    )
    assert env["RANK"] == "3" and env["LOCAL_RANK"] == "1" and env["WORLD_SIZE"] == "4"
    assert env["LOCAL_WORLD_SIZE"] == "2" and env["NODE_RANK"] == env["GROUP_RANK"] == "1"
    assert env["MASTER_ADDR"] == "10.0.0.1" and env["MASTER_PORT"] == "29500"
    assert env["GLOO_SOCKET_IFNAME"] == "lo" and env["GROUP_WORLD_SIZE"] == "2"
    assert 1024 < launch.free_port() < 65536


def test_rank_log_names_follow_v1() -> None:
    assert rank_log(0) == "user_logs/std_log_process_0.txt"
    assert rank_of_log("user_logs/std_log_process_12.txt") == 12
    assert rank_of_log("user_logs/std_log.txt") is None
    names = [rank_log(10), "system_logs/supervisor.txt", rank_log(2), "user_logs/std_log.txt"]
    assert sort_log_names(names) == [
        "user_logs/std_log.txt",
        rank_log(2),
        rank_log(10),
        "system_logs/supervisor.txt",
    ]


def test_the_interface_of_an_address_is_found_with_its_network() -> None:
    assert launch.interface_of("127.0.0.1") == (launch.loopback_interface(), "127.0.0.0/8")
    assert launch.interface_of("203.0.113.254") is None  # TEST-NET-3: on no interface here


def test_the_rank_that_called_mpi_abort_is_the_failed_one(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "r1")
    paths.launcher_log.parent.mkdir(parents=True, exist_ok=True)
    paths.launcher_log.write_text(
        "MPI_ABORT was invoked on rank 3 in communicator MPI_COMM_WORLD\nwith errorcode 1.\n"
    )
    ranks = launch.Ranks(Layout("mpi", 1, 4), [], paths, 1.0, lambda _: None)
    details = ranks.failure(1)
    assert details["rank"] == 3 and details["logFile"] == rank_log(3)
