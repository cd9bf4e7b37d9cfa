"""The store relay (issue 10, item 3): a script's records go through its supervisor.

Each test serves a real workspace's stores (SQLite through SQLAlchemy) with a real
:class:`StoreRelay` and drives it from real child processes, some of which cannot import
SQLAlchemy, Alembic, PyYAML, packaging, pathspec or httpx at all (an import hook refuses them), as in
a user's environment where trainyard installs nothing of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainyard._context import WorkspaceContext, open_context, relay_description
from trainyard._store.relay import RELAY_KEY_VAR, RelayConnection, StoreRelay, relay_stores
from trainyard.core import Experiment, Run, Workspace
from trainyard.exceptions import RunNotFound, StoreError

#: Refuses trainyard's own third-party dependencies, as a bare user environment would.
BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    _DENY = {"sqlalchemy", "alembic", "yaml", "packaging", "pathspec", "httpx", "psycopg",
             "pydantic", "rich", "typer", "numpy"}
    class _Deny(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in _DENY:
                raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)")
            return None
    sys.meta_path.insert(0, _Deny())
    """
)


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[tuple[Workspace, WorkspaceContext, StoreRelay]]:
    ws = Workspace.create("relay-ws", path=tmp_path / "ws")
    ctx = open_context(tmp_path / "ws")
    with StoreRelay(ctx.store, ctx.artifacts, describe=relay_description(ctx)) as relay:
        yield ws, ctx, relay


def run_child(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "child.py"
    script.write_text(BLOCKER + textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_a_script_without_any_database_driver_records_through_the_relay(
    opened: tuple[Workspace, WorkspaceContext, StoreRelay], tmp_path: Path
) -> None:
    ws, _, relay = opened
    run = Experiment(ws, "e").start_logging()
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01")
    env = {**relay.env, "TRAINYARD_RUN_ID": run.id, "TRAINYARD_WORKSPACE_PATH": str(ws.path)}
    proc = run_child(
        """
        import os, sys
        from trainyard.core import Run, Workspace
        run = Run.get_context()
        run.log("loss", 0.5)
        run.log("loss", 0.25)
        run.log_row("table", a=1, b="x")
        run.tag("stage", "relayed")
        run.add_properties({"p": "1"})
        run.upload_file("outputs/weights.bin", "weights.bin")
        child = run.child_run(name="inner")
        child.log("inner_metric", 3)
        child.complete()
        # A second open of the same folder (as MLflow's plugin does) goes through the relay too.
        again = Workspace(path=os.environ["TRAINYARD_WORKSPACE_PATH"])
        assert again.name == "relay-ws", again.name
        # A forked child opens its own connection (data-loader workers log from forks).
        pid = os.fork()
        if pid == 0:
            Run.get_context().log("from_fork", 1)
            Run.get_context().flush()
            os._exit(0)
        os.waitpid(pid, 0)
        run.flush()
        print(run.get_details()["status"])
        print(sorted(m for m in sys.modules if m.startswith("trainyard._store.sql")))
        """,
        env,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["Running", "[]"]
    reloaded = Run.get(ws, run.id)
    metrics = reloaded.get_metrics()
    assert metrics["loss"] == [0.5, 0.25]
    assert metrics["table"] == {"a": 1, "b": "x"}
    assert metrics["from_fork"] == 1
    assert reloaded.get_tags()["stage"] == "relayed"
    assert reloaded.get_properties()["p"] == "1"
    assert "outputs/weights.bin" in reloaded.get_file_names()
    (inner,) = list(reloaded.get_children())
    assert inner.get_metrics() == {"inner_metric": 3} and inner.get_status() == "Completed"


def test_errors_come_back_typed_and_unknown_calls_are_refused(
    opened: tuple[Workspace, WorkspaceContext, StoreRelay],
) -> None:
    _, _, relay = opened
    conn = RelayConnection.from_env(relay.env)
    assert conn is not None
    stores = relay_stores(conn)
    with pytest.raises(RunNotFound):
        stores.store.get_run("no-such-run")
    for target, method in (("store", "close"), ("store", "_engine"), ("nowhere", "x")):
        with pytest.raises(StoreError, match="does not serve"):
            conn.call(target, method)
    # The supervisor refuses them too, and junk, whatever a client sends (JSON only, never pickle).
    from multiprocessing.connection import Client

    host, port = relay.address
    raw = Client((host, port), family="AF_INET", authkey=bytes.fromhex(relay.env[RELAY_KEY_VAR]))
    for request in (
        b'{"target": "store", "method": "close", "args": {}}',
        b'{"target": "store", "method": "get_run", "args": {"nope": 1}}',
        b"\x80\x04K\x01.",  # a pickle
        b"not json",
    ):
        raw.send_bytes(request)
        answer = json.loads(raw.recv_bytes())
        assert answer["error"]["code"] == "STORE_ERROR", answer
    raw.close()
    # The connection is still good after refusals; the supervisor's store was never closed.
    assert stores.store.list_workspaces()[0].name == "relay-ws"
    assert stores.describe["name"] == "relay-ws" and stores.describe["artifacts_root"]


def test_a_wrong_secret_is_refused_and_others_keep_being_served(
    opened: tuple[Workspace, WorkspaceContext, StoreRelay],
) -> None:
    _, _, relay = opened
    intruder = RelayConnection(relay.address, b"\x00" * 32)
    with pytest.raises(StoreError, match="Cannot reach the run's supervisor"):
        intruder.call("relay", "describe")
    good = RelayConnection.from_env(relay.env)
    assert good is not None and good.call("relay", "describe")["name"] == "relay-ws"


def test_a_supervisor_that_is_gone_is_a_store_error_that_says_so(tmp_path: Path) -> None:
    Workspace.create("gone", path=tmp_path / "ws")
    ctx = open_context(tmp_path / "ws")
    relay = StoreRelay(ctx.store, ctx.artifacts, describe=relay_description(ctx))
    conn = RelayConnection.from_env(relay.env)
    assert conn is not None
    assert conn.call("relay", "describe")["name"] == "gone"
    relay.close()
    with pytest.raises(StoreError, match="supervisor"):
        conn.call("relay", "describe")


def test_the_description_never_carries_a_database_password(tmp_path: Path) -> None:
    Workspace.create("pw", path=tmp_path / "ws")
    ctx = open_context(tmp_path / "ws")
    from dataclasses import replace

    secret = replace(ctx, store_url="postgresql+psycopg://bob:hunter2@db.example/test")
    assert "hunter2" not in str(relay_description(secret))


@pytest.mark.parametrize(
    ("text", "key"),
    [("nohost", "00" * 32), ("127.0.0.1:port", "00" * 32), ("127.0.0.1:1", "zz"), ("h:1", "00")],
)
def test_malformed_relay_variables_are_config_errors_naming_them(text: str, key: str) -> None:
    from trainyard.exceptions import ConfigError

    with pytest.raises(ConfigError, match="TRAINYARD_RUN_RELAY"):
        RelayConnection.from_env({"TRAINYARD_RUN_RELAY": text, "TRAINYARD_RUN_RELAY_KEY": key})
