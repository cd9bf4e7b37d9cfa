"""Logging that survives the server: spooled records, deduplicated resends, `trainyard sync`, and
a real server stopped and restarted in the middle of 20 live runs with every point counted back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainyard._context import open_remote_context
from trainyard._store.rest.spool import Spool, sync_spools
from trainyard._store.rest.spooling import SpoolingRestStore
from trainyard._store.rest.tracking import RestTrackingStore
from trainyard._tracking.codec import decode_values
from trainyard.core import Experiment, Workspace
from trainyard.exceptions import ServerUnreachable
from trainyard.testing.fixtures import unique_name
from trainyard.testing.server import LiveServer, start_server


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of this test alone (it is stopped and restarted)."""
    server = start_server(f"sqlite:///{tmp_path / 'ty.db'}", tmp_path / "files")
    yield server
    server.stop()


def _workspace(server: LiveServer, tmp_path: Path, name: str) -> Workspace:
    RestTrackingStore(server.url, server.admin_token).ensure_workspace(name)
    ctx = open_remote_context(server.url, name, token=server.admin_token, home=tmp_path / "home")
    return Workspace.from_context(ctx)


def _points(server: LiveServer, run_id: str, metric: str = "x") -> list[float]:
    chunks = RestTrackingStore(server.url, server.admin_token).get_metric_chunks(run_id, [metric])
    decoded = decode_values(chunks)
    return [float(v) for v in decoded[metric][1]] if metric in decoded else []


# -- the spool file -----------------------------------------------------------------------------
def test_spool_records_are_durable_ordered_and_owned_by_one_process(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    assert spool.owned
    for i in range(5):
        assert spool.append("set_tags", {"run_id": "r", "tags": {"i": str(i)}}) == i + 1
    pending = spool.pending()
    assert [p[0] for p in pending] == [1, 2, 3, 4, 5]
    spool.ack(2, pending[1][3])
    assert [p[0] for p in spool.pending()] == [3, 4, 5]
    # A second opener (another process's view) does not own it while this one is alive.
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from trainyard._store.rest.spool import Spool;"
            f"s = Spool(Path({str(spool.path)!r})); print(s.owned, s.acked, s.last_seq)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.split() == ["False", "2", "5"]
    # A record cut short by a crash mid-write is not a record.
    with open(spool.path, "a", encoding="utf-8") as fh:
        fh.write('{"seq": 6, "op": "set_tags", "args": {"ru')
    spool.close()
    reopened = Spool(spool.path)
    assert reopened.last_seq == 5 and [p[0] for p in reopened.pending()] == [3, 4, 5]


# -- through a live server ----------------------------------------------------------------------
def test_points_logged_while_the_server_is_down_arrive_once_it_is_back(
    own_server: LiveServer, tmp_path: Path
) -> None:
    ws = _workspace(own_server, tmp_path, unique_name("outage"))
    run = Experiment(ws, "spool").start_logging()
    for i in range(1000):
        run.log("x", i)
    run.flush()
    own_server.stop()
    started = time.monotonic()
    for i in range(1000, 3000):
        run.log("x", i)
    run.tag("phase", "offline")
    run.flush()  # durable in the spool: it does not wait for the server
    assert time.monotonic() - started < 10
    store = ws.context.store
    assert isinstance(store, SpoolingRestStore) and store.pending_records() > 0
    own_server.restart()
    run.complete()  # waits for the spool to drain, then records the status
    assert store.pending_records() == 0
    assert sorted(_points(own_server, run.id)) == [float(i) for i in range(3000)]
    info = RestTrackingStore(own_server.url, own_server.admin_token).get_run(run.id)
    assert info.status == "Completed" and info.tags["phase"] == "offline"


def test_a_status_change_while_the_server_is_down_is_delivered_later(
    own_server: LiveServer, tmp_path: Path
) -> None:
    ws = _workspace(own_server, tmp_path, unique_name("offline-status"))
    run = Experiment(ws, "spool").start_logging()
    run.log("x", 1.0)
    own_server.stop()
    started = time.monotonic()
    run.complete()  # the server is away: the run as this process saw it, now Completed
    assert time.monotonic() - started < 15
    own_server.restart()
    store = ws.context.store
    assert isinstance(store, SpoolingRestStore)
    assert store.wait_drained_strict(60)
    info = RestTrackingStore(own_server.url, own_server.admin_token).get_run(run.id)
    assert info.status == "Completed"
    assert _points(own_server, run.id) == [1.0]


def test_a_spool_sent_twice_stores_each_point_once(own_server: LiveServer, tmp_path: Path) -> None:
    name = unique_name("dedupe")
    ws = _workspace(own_server, tmp_path, name)
    run = Experiment(ws, "spool").start_logging()
    for i in range(500):
        run.log("x", i)
    run.complete()
    store = ws.context.store
    assert isinstance(store, SpoolingRestStore) and store.spool_path is not None
    # Resend the whole spool, as a sync after a lost acknowledgement would.
    copy = tmp_path / "again"
    copy.mkdir()
    target = copy / store.spool_path.name
    target.write_bytes(store.spool_path.read_bytes())
    files, records = sync_spools(copy, store.send_now)
    assert files == 1 and records > 0
    assert sorted(_points(own_server, run.id)) == [float(i) for i in range(500)]


_OFFLINE_CLIENT = """
import sys
from trainyard._context import open_remote_context
from trainyard.core import Experiment, Workspace
url, name, token, home = sys.argv[1:5]
ws = Workspace.from_context(open_remote_context(url, name, token=token, home=__import__("pathlib").Path(home)))
run = Experiment(ws, "sync").start_logging()
print(run.id, flush=True)
sys.stdin.readline()          # the test stops the server here
for i in range(2000):
    run.log("x", i)
run.complete()
"""


def test_trainyard_sync_sends_what_a_process_left_offline(
    own_server: LiveServer, tmp_path: Path
) -> None:
    name = unique_name("sync")
    RestTrackingStore(own_server.url, own_server.admin_token).ensure_workspace(name)
    home = tmp_path / "client-home"
    env = {
        **os.environ,
        "TRAINYARD_SPOOL_EXIT_SECONDS": "1",
        "TRAINYARD_SERVER_RETRY_SECONDS": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _OFFLINE_CLIENT,
            own_server.url,
            name,
            own_server.admin_token,
            str(home),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdin is not None
    run_id = proc.stdout.readline().strip()
    own_server.stop()
    proc.stdin.write("\n")
    proc.stdin.flush()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "trainyard sync" in err  # told where the records are and what to run
    own_server.restart()
    cli = [sys.executable, "-c", "from trainyard.cli import main; main()"]
    out = subprocess.run(
        [*cli, "sync", str(home), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "TRAINYARD_TOKEN": own_server.admin_token},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)["folders"]
    assert [r["records"] > 0 and r["workspace"] == name for r in result] == [True]
    assert sorted(_points(own_server, run_id)) == [float(i) for i in range(2000)]
    info = RestTrackingStore(own_server.url, own_server.admin_token).get_run(run_id)
    assert info.status == "Completed"
    again = subprocess.run(
        [*cli, "sync", str(home), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "TRAINYARD_TOKEN": own_server.admin_token},
        timeout=120,
    )
    assert json.loads(again.stdout)["folders"] == []  # the spool was removed once sent


def test_a_process_that_sent_everything_leaves_no_spool(
    own_server: LiveServer, tmp_path: Path
) -> None:
    name = unique_name("clean")
    RestTrackingStore(own_server.url, own_server.admin_token).ensure_workspace(name)
    home = tmp_path / "client-home"
    code = (
        "import sys; from pathlib import Path\n"
        "from trainyard._context import open_remote_context\n"
        "from trainyard.core import Experiment, Workspace\n"
        "url, name, token, home = sys.argv[1:5]\n"
        "ws = Workspace.from_context(open_remote_context(url, name, token=token, home=Path(home)))\n"
        "run = Experiment(ws, 'clean').start_logging()\n"
        "[run.log('x', i) for i in range(100)]\n"
        "run.complete()\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, own_server.url, name, own_server.admin_token, str(home)],
        check=True,
        timeout=120,
    )
    assert list((home / "spool").rglob("*.spool")) == []


_LIVE_CLIENT = """
import sys, time
from pathlib import Path
from trainyard._context import open_remote_context
from trainyard.core import Experiment, Workspace
url, name, token, home, n = sys.argv[1:6]
ws = Workspace.from_context(open_remote_context(url, name, token=token, home=Path(home)))
run = Experiment(ws, "live").start_logging()
print(run.id, flush=True)
deadline = time.monotonic() + 12.0
for i in range(int(n)):
    run.log("x", i)
    if i % 100 == 99:
        time.sleep(max(0.0, (deadline - time.monotonic()) / ((int(n) - i) / 100)))
run.tag("done", "yes")
run.complete()
"""


def test_twenty_live_runs_lose_nothing_when_the_server_restarts(
    own_server: LiveServer, tmp_path: Path
) -> None:
    name = unique_name("twenty")
    RestTrackingStore(own_server.url, own_server.admin_token).ensure_workspace(name)
    n = 3000
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _LIVE_CLIENT,
                own_server.url,
                name,
                own_server.admin_token,
                str(tmp_path / f"c{i}"),
                str(n),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TRAINYARD_SPOOL_EXIT_SECONDS": "120"},
        )
        for i in range(20)
    ]
    run_ids = []
    for p in procs:
        assert p.stdout is not None
        run_ids.append(p.stdout.readline().strip())
    time.sleep(3.0)
    own_server.stop()  # in the middle of logging: the clients go on
    time.sleep(4.0)
    own_server.restart()
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    store = RestTrackingStore(own_server.url, own_server.admin_token)
    total = 0
    for run_id in run_ids:
        values = _points(own_server, run_id)
        assert sorted(values) == [float(i) for i in range(n)], run_id
        total += len(values)
        info = store.get_run(run_id)
        assert info.status == "Completed" and info.tags["done"] == "yes"
    assert total == 20 * n


def test_calls_that_are_not_spooled_fail_typed_when_the_server_stays_away(
    own_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINYARD_SERVER_RETRY_SECONDS", "1")
    ws = _workspace(own_server, tmp_path, unique_name("away"))
    own_server.stop()
    with pytest.raises(ServerUnreachable, match="trainyard server"):
        list(Experiment(ws, "nothing").get_runs())
    own_server.restart()


def test_the_run_script_reading_back_its_own_points(own_server: LiveServer, tmp_path: Path) -> None:
    ws = _workspace(own_server, tmp_path, unique_name("ryw"))
    run = Experiment(ws, "ryw").start_logging()
    for i in range(10):
        run.log("loss", 1.0 / (i + 1))
    run.flush()
    assert len(run.get_metrics()["loss"]) == 10  # a read waits for the spool to drain
    run.complete()


def test_a_run_on_the_server_goes_on_while_the_server_restarts(
    own_server: LiveServer, tmp_path: Path
) -> None:
    from trainyard.core import ScriptRunConfig

    ws = _workspace(own_server, tmp_path, unique_name("server-run"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        "import time\n"
        "from trainyard.core import Run\n"
        "run = Run.get_context()\n"
        "for i in range(2000):\n"
        "    run.log('x', i)\n"
        "    if i % 100 == 99:\n"
        "        time.sleep(0.5)\n"
        "print('trained', flush=True)\n"
    )
    run = Experiment(ws, "through").submit(ScriptRunConfig(str(src), "train.py"))
    deadline = time.monotonic() + 120
    while run.get_status() != "Running":
        assert time.monotonic() < deadline, run.get_status()
        time.sleep(0.2)
    time.sleep(2.0)
    own_server.stop()  # the supervisor and the script keep running on the server machine
    time.sleep(5.0)
    own_server.restart()
    details = run.wait_for_completion()
    assert details["status"] == "Completed", details
    assert sorted(_points(own_server, run.id)) == [float(i) for i in range(2000)]
