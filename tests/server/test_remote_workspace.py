"""A workspace on a team server, driven with unchanged v1 code: runs execute on the server's compute
with a run-scoped token, logs stream from the server, sweeps run there too."""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainyard._store.rest.tracking import RestTrackingStore
from trainyard._store.sql.accounts import SqlAccounts
from trainyard._store.sql.store import SqlTrackingStore
from trainyard.core import Experiment, ScriptRun, ScriptRunConfig, Workspace
from trainyard.exceptions import PermissionDenied
from trainyard.testing.fixtures import unique_name
from trainyard.testing.server import LiveServer


@pytest.fixture
def team(sqlite_server: LiveServer) -> Iterator[tuple[LiveServer, str]]:
    name = unique_name("team")
    RestTrackingStore(sqlite_server.url, sqlite_server.admin_token).ensure_workspace(name)
    yield sqlite_server, name


def _user_token(server: LiveServer, workspace: str, role: str) -> str:
    store = SqlTrackingStore(server.store_url)
    accounts = SqlAccounts(store.engine)
    user = accounts.create_user(unique_name(role))
    accounts.set_role(store.get_workspace(workspace).id, user.id, role)
    return accounts.create_token(user.id)[1]


def _source(tmp_path: Path, body: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(textwrap.dedent(body).lstrip())
    return src


def test_a_v1_notebook_runs_against_a_server(
    team: tuple[LiveServer, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, name = team
    token = _user_token(server, name, "contributor")
    project = tmp_path / "project"
    project.mkdir()
    (project / ".trainyard").mkdir()
    (project / ".trainyard" / "config.json").write_text(
        json.dumps({"server": server.url, "workspace_name": name})
    )
    monkeypatch.setenv("TRAINYARD_TOKEN", token)
    monkeypatch.chdir(project)
    src = _source(
        tmp_path,
        """
        import json, os
        from trainyard.core import Run
        run = Run.get_context()
        for i in range(5):
            run.log("loss", 1.0 / (i + 1))
            print(f"epoch {i}", flush=True)
        os.makedirs("outputs", exist_ok=True)
        open("outputs/model.txt", "w").write("weights")
        leaked = {k: v for k, v in os.environ.items() if DB in v}
        print("LEAKED", json.dumps(leaked))
        """.replace("DB", repr(server.store_url.split("///")[-1])),
    )
    ws = Workspace.from_config()
    assert ws.context.remote and ws.get_mlflow_tracking_uri() == f"{server.url}/mlflow/{name}"
    run = Experiment(ws, "remote").submit(ScriptRunConfig(src, "train.py"))
    assert isinstance(run, ScriptRun)
    out = io.StringIO()
    details = run.wait_for_completion(show_output=True, out=out)
    assert details["status"] == "Completed", out.getvalue()
    text = out.getvalue()
    assert "Streaming user_logs/std_log.txt" in text and "epoch 4" in text
    assert "LEAKED {}" in text, "the script saw a database URL"
    assert run.get_metrics()["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    run.download_file("outputs/model.txt", str(tmp_path / "model.txt"))
    assert (tmp_path / "model.txt").read_text() == "weights"
    model = run.register_model("remote-model", "outputs/model.txt")
    assert model.version == 1
    # The run's token ended with the run.
    tokens = SqlAccounts(SqlTrackingStore(server.store_url).engine)
    from sqlalchemy import select

    from trainyard._store.sql import schema

    with tokens.engine.connect() as conn:
        rows = conn.execute(select(schema.tokens).where(schema.tokens.c.run_id == run.id)).all()
    assert rows and all(r.revoked_at is not None for r in rows)


def test_a_run_token_writes_only_its_own_run(team: tuple[LiveServer, str], tmp_path: Path) -> None:
    server, name = team
    ws = Workspace.connect(server.url, name, token=server.admin_token)
    exp = Experiment(ws, "scoped")
    with exp.start_logging() as other:
        other.tag("owner", "me")
    src = _source(
        tmp_path,
        f"""
        import os
        from trainyard._store.rest.tracking import RestTrackingStore
        from trainyard.core import Run
        run = Run.get_context()
        run.tag("mine", "yes")                       # its own run: allowed
        store = RestTrackingStore({server.url!r}, os.environ["TRAINYARD_TOKEN"])
        try:
            store.set_tags({other.id!r}, {{"owner": "mallory"}})
            print("WROTE OTHER RUN")
        except Exception as err:
            print("REFUSED", type(err).__name__)
        """,
    )
    run = exp.submit(ScriptRunConfig(src, "train.py"))
    out = io.StringIO()
    assert run.wait_for_completion(show_output=True, out=out)["status"] == "Completed"
    assert "REFUSED PermissionDenied" in out.getvalue()
    assert other.get_tags()["owner"] == "me"
    assert run.get_tags()["mine"] == "yes"


def test_a_reader_cannot_submit_and_nothing_is_stored(
    team: tuple[LiveServer, str], tmp_path: Path
) -> None:
    server, name = team
    reader = Workspace.connect(server.url, name, token=_user_token(server, name, "reader"))
    admin = Workspace.connect(server.url, name, token=server.admin_token)
    Experiment(admin, "ro")
    src = _source(tmp_path, "print('never')\n")
    before = len(list(Experiment(admin, "ro").get_runs()))
    with pytest.raises(PermissionDenied, match="contributor"):
        Experiment(reader, "ro").submit(ScriptRunConfig(src, "train.py"))
    assert len(list(Experiment(admin, "ro").get_runs())) == before


def test_cancel_a_remote_run(team: tuple[LiveServer, str], tmp_path: Path) -> None:
    server, name = team
    ws = Workspace.connect(server.url, name, token=server.admin_token)
    src = _source(tmp_path, "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    run = Experiment(ws, "cancel").submit(ScriptRunConfig(src, "train.py"))
    assert isinstance(run, ScriptRun)
    for chunk in run.follow_log("user_logs/std_log.txt", interval=0.05):
        if b"up" in chunk:
            break
    assert run.cancel() is True
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"


def test_a_sweep_runs_on_the_server(team: tuple[LiveServer, str], tmp_path: Path) -> None:
    from trainyard.train.hyperdrive import (
        GridParameterSampling,
        HyperDriveConfig,
        PrimaryMetricGoal,
        choice,
    )

    server, name = team
    ws = Workspace.connect(server.url, name, token=server.admin_token)
    src = _source(
        tmp_path,
        """
        import argparse
        from trainyard.core import Run
        p = argparse.ArgumentParser(); p.add_argument("--x", type=float)
        Run.get_context().log("score", -(p.parse_args().x - 2) ** 2)
        """,
    )
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(src, "train.py"),
        hyperparameter_sampling=GridParameterSampling({"--x": choice(1, 2, 3)}),
        primary_metric_name="score",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=3,
        max_concurrent_runs=2,
    )
    sweep = Experiment(ws, "sweep").submit(config)
    out = io.StringIO()
    details = sweep.wait_for_completion(show_output=True, _out=out)  # type: ignore[call-arg]
    assert details["status"] == "Completed", out.getvalue()
    best = sweep.get_best_run_by_primary_metric()  # type: ignore[attr-defined]
    assert best.get_metrics()["score"] == 0
    assert len(list(sweep.get_children())) == 3


def test_an_interactive_run_on_a_server_heartbeats_straight_to_it(
    team: tuple[LiveServer, str],
) -> None:
    """Issue 11 item 3: the server's reaper watches interactive runs too, so a client's run must
    heartbeat there; the beat is a direct call (never queued in the spool behind records)."""
    import time

    server, name = team
    ws = Workspace.connect(server.url, name, token=server.admin_token)
    run = Experiment(ws, "beats").start_logging()
    direct = SqlTrackingStore(server.store_url)
    deadline = time.monotonic() + 15
    while direct.get_run(run.id).heartbeat_at is None:
        assert time.monotonic() < deadline, "no heartbeat reached the server"
        time.sleep(0.1)
    run.complete()
    assert direct.get_run(run.id).status == "Completed"
