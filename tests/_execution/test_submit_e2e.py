"""End to end: ``experiment.submit(ScriptRunConfig)`` runs a real script under a real supervisor.

Every test writes a script into a temporary source folder, submits it and watches the run through
the public API (statuses, details, metrics, files, the streamed log). Scripts that must still be
running while the test looks at them wait for a *release file* the test creates, so nothing here
depends on how fast the machine is.
"""

from __future__ import annotations

import io
import json
import os
import textwrap
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trainyard.core import Environment, Experiment, Run, ScriptRun, ScriptRunConfig, Workspace
from trainyard.core.runconfig import RunConfiguration
from trainyard.exceptions import ActivityFailedException
from trainyard.testing.fixtures import BACKENDS, unique_name

TERMINAL = {"Completed", "Failed", "Canceled"}


def submit(experiment: Experiment, config: ScriptRunConfig) -> ScriptRun:
    """``experiment.submit(config)``, typed as the ``ScriptRun`` it returns."""
    run = experiment.submit(config)
    assert isinstance(run, ScriptRun)
    return run


@pytest.fixture(params=BACKENDS)
def ws(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Workspace:
    """A workspace whose supervisors heartbeat and poll quickly (settings set before it opens)."""
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_SECONDS", "0.3")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.1")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.5")
    monkeypatch.setenv("TRAINYARD_CANCEL_GRACE_SECONDS", "2")
    uri = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws", tracking_uri=uri)


def source(tmp_path: Path, body: str, name: str = "train.py", folder: str = "src") -> Path:
    """A source folder holding ``name`` with ``body`` (dedented)."""
    src = tmp_path / folder
    src.mkdir(exist_ok=True)
    (src / name).write_text(textwrap.dedent(body))
    return src


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def wait_terminal(run: Run, timeout: float = 60.0) -> str:
    """The run's terminal status, polled through the public ``get_status``."""
    status: str = wait_until(
        lambda: (s := run.get_status()) in TERMINAL and s, timeout, f"run {run.id} to finish"
    )
    return status


# ---------------------------------------------------------------------------------------------
# the whole path of a successful run


def test_submit_runs_script_through_every_status(ws: Workspace, tmp_path: Path) -> None:
    release = tmp_path / "release"
    seen = tmp_path / "seen.json"
    src = source(
        tmp_path,
        f"""
        import json, os, sys, time
        from pathlib import Path
        from trainyard.core import Run

        run = Run.get_context()
        info = {{
            "argv": sys.argv[1:],
            "cwd": os.getcwd(),
            "outputs_dir": os.path.isdir("outputs"),
            "logs_dir": os.path.isdir("logs"),
            "context_run_id": run.id,
            "env": {{k: os.environ.get(k) for k in (
                "MY_SETTING", "ENV_LEVEL", "TRAINYARD_RUN_ID", "AZUREML_RUN_ID",
                "AZUREML_ARM_PROJECT_NAME", "AZUREML_ARM_WORKSPACE_NAME")}},
        }}
        Path({str(seen)!r}).write_text(json.dumps(info))
        while not os.path.exists({str(release)!r}):
            time.sleep(0.05)
        for i in range(3):
            run.log("loss", 1.0 / (i + 1))
        run.log("accuracy", 0.97)
        Path("outputs/model.txt").write_text("weights")
        Path("outputs/sub").mkdir()
        Path("outputs/sub/extra.json").write_text("{{}}")
        print("training done")
        """,
    )
    env = Environment("env-vars")
    env.python.user_managed_dependencies = True  # this interpreter: no build in this test
    env.environment_variables = {"ENV_LEVEL": "from-environment"}
    rc = RunConfiguration()
    rc.environment_variables = {"MY_SETTING": "hello"}
    config = ScriptRunConfig(
        source_directory=src,
        script="train.py",
        arguments=["--epochs", 3, "--lr", 0.5, "--flag", True],
        run_config=rc,
        environment=env,
    )
    exp = Experiment(ws, "e2e")
    run = submit(exp, config)

    # submit returned while the script is still waiting for us: it did not wait for the run
    assert isinstance(run, ScriptRun)
    assert run.type == "azureml.scriptrun"
    assert run.get_status() not in TERMINAL
    details = run.get_details()
    definition = details["runDefinition"]
    assert definition["script"] == "train.py"
    assert definition["arguments"] == ["--epochs", "3", "--lr", "0.5", "--flag", "True"]
    assert definition["environment"]["name"] == "env-vars"
    assert definition["target"] == "local"
    assert details["target"] == "local"

    wait_until(seen.exists, what="the script to start")
    assert run.get_status() == "Running"
    release.write_text("go")
    assert wait_terminal(run) == "Completed"

    info = json.loads(seen.read_text())
    assert info["argv"] == ["--epochs", "3", "--lr", "0.5", "--flag", "True"]
    assert info["outputs_dir"] and info["logs_dir"]
    assert Path(info["cwd"]).name == "wd"
    assert info["context_run_id"] == run.id
    assert info["env"] == {
        "MY_SETTING": "hello",
        "ENV_LEVEL": "from-environment",
        "TRAINYARD_RUN_ID": run.id,
        "AZUREML_RUN_ID": run.id,
        "AZUREML_ARM_PROJECT_NAME": "e2e",
        "AZUREML_ARM_WORKSPACE_NAME": ws.name,
    }

    details = run.get_details()
    history = [e["status"] for e in details["statusHistory"]]
    assert history == ["NotStarted", "Queued", "Preparing", "Running", "Finalizing", "Completed"]
    assert all(e["timeUtc"] for e in details["statusHistory"])
    times = [e["timeUtc"] for e in details["statusHistory"]]
    assert times == sorted(times)
    assert details["startTimeUtc"] and details["endTimeUtc"]
    assert "error" not in details

    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert metrics["accuracy"] == 0.97

    names = run.get_file_names()
    assert "outputs/model.txt" in names and "outputs/sub/extra.json" in names
    assert "user_logs/std_log.txt" in names
    assert any(n.startswith("system_logs/") for n in names)
    assert "user_logs/std_log.txt" in details["logFiles"]
    download = tmp_path / "model.txt"
    run.download_file("outputs/model.txt", str(download))
    assert download.read_text() == "weights"
    std_log = tmp_path / "std_log.txt"
    run.download_file("user_logs/std_log.txt", str(std_log))
    assert "training done" in std_log.read_text()


def test_command_instead_of_script(ws: Workspace, tmp_path: Path) -> None:
    src = source(tmp_path, "print('unused')\n", name="unused.py")
    (src / "data.txt").write_text("payload-from-snapshot")
    config = ScriptRunConfig(
        source_directory=src,
        command="echo from-command && cat data.txt && echo run=$AZUREML_RUN_ID",
    )
    run = submit(Experiment(ws, "cmd"), config)
    details = run.wait_for_completion(wait_post_processing=True)
    assert details["status"] == "Completed"
    assert details["runDefinition"]["command"].startswith("echo from-command")
    assert details["runDefinition"]["script"] is None
    out = tmp_path / "log.txt"
    run.download_file("user_logs/std_log.txt", str(out))
    text = out.read_text()
    assert "from-command" in text and "payload-from-snapshot" in text
    assert f"run={run.id}" in text


# ---------------------------------------------------------------------------------------------
# files while running


def test_logs_folder_is_synced_while_running(ws: Workspace, tmp_path: Path) -> None:
    release = tmp_path / "release"
    src = source(
        tmp_path,
        f"""
        import os, time
        with open("logs/progress.txt", "w") as fh:
            fh.write("epoch 1 of 10\\n")
        while not os.path.exists({str(release)!r}):
            time.sleep(0.05)
        """,
    )
    run = submit(Experiment(ws, "logs"), ScriptRunConfig(src, "train.py"))
    try:
        wait_until(
            lambda: "logs/progress.txt" in run.get_file_names(), 30, "logs/progress.txt to sync"
        )
        assert run.get_status() == "Running"
        got = tmp_path / "progress.txt"
        run.download_file("logs/progress.txt", str(got))
        assert got.read_text() == "epoch 1 of 10\n"
    finally:
        release.write_text("go")
    assert wait_terminal(run) == "Completed"


# ---------------------------------------------------------------------------------------------
# failures


FAILING = """
import sys
print("about to fail")
def train(x):
    raise ValueError(f"boom {x}")
train(42)
"""


def test_failed_script_records_error_and_traceback(ws: Workspace, tmp_path: Path) -> None:
    src = source(tmp_path, FAILING)
    run = submit(Experiment(ws, "fail"), ScriptRunConfig(src, "train.py"))
    assert wait_terminal(run) == "Failed"
    details = run.get_details()
    error = details["error"]
    assert error["message"] == "ValueError: boom 42"
    assert error["exitCode"] == 1
    assert "Traceback (most recent call last)" in error["traceback"]
    assert "in train" in error["traceback"]
    assert "user_logs/std_log.txt" in run.get_file_names()
    assert [e["status"] for e in details["statusHistory"]][-2:] == ["Finalizing", "Failed"]


def test_wait_for_completion_streams_and_raises_on_failure(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = source(tmp_path, FAILING)
    run = submit(Experiment(ws, "fail-wait"), ScriptRunConfig(src, "train.py"))
    with pytest.raises(ActivityFailedException) as info:
        run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert f"RunId: {run.id}" in out
    assert "Streaming user_logs/std_log.txt" in out
    assert "about to fail" in out
    assert "ValueError: boom 42" in out
    assert "Execution Summary" in out
    assert "boom 42" in str(info.value)
    assert json.loads(info.value.error_details)["message"] == "ValueError: boom 42"

    details = run.wait_for_completion(show_output=False, raise_on_error=False)
    assert details["status"] == "Failed"
    assert details["error"]["message"] == "ValueError: boom 42"


def test_wait_for_completion_raises_even_when_failure_finalizes_slowly(
    ws: Workspace, tmp_path: Path
) -> None:
    """A failed run passes through Finalizing (its outputs are uploaded): a watcher that polls
    during Finalizing must still see the failure, not return as if the run had succeeded."""
    src = source(
        tmp_path,
        """
        import os
        for i in range(600):
            with open(f"outputs/part-{i}.txt", "w") as fh:
                fh.write("x" * 100)
        raise SystemExit("bad data")
        """,
    )
    run = submit(Experiment(ws, "fail-slow"), ScriptRunConfig(src, "train.py"))
    wait_until(lambda: run.get_status() == "Finalizing", 60, "Finalizing")
    with pytest.raises(ActivityFailedException):
        run.wait_for_completion()
    assert run.get_status() == "Failed"
    assert run.get_details()["error"]["message"].endswith("bad data")


def test_streamed_line_appears_while_script_still_runs(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = tmp_path / "release"
    src = source(
        tmp_path,
        f"""
        import os, time
        print("first-line-from-script")
        while not os.path.exists({str(release)!r}):
            time.sleep(0.05)
        print("last-line-from-script")
        open("outputs/result.txt", "w").write("done")
        print("tail-without-newline", end="")
        """,
    )
    run = submit(Experiment(ws, "stream"), ScriptRunConfig(src, "train.py"))
    result: dict[str, Any] = {}

    def watch() -> None:
        try:
            result["details"] = run.wait_for_completion(show_output=True)
        except BaseException as err:  # surfaced by the assertions below
            result["error"] = err

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    captured = io.StringIO()

    def line_streamed() -> bool:
        captured.write(capsys.readouterr().out)
        return "first-line-from-script" in captured.getvalue()

    try:
        wait_until(line_streamed, 30, "the first line to be streamed")
        assert run.get_status() == "Running"
        assert "last-line-from-script" not in captured.getvalue()
    finally:
        release.write_text("go")
    watcher.join(60)
    assert not watcher.is_alive()
    captured.write(capsys.readouterr().out)
    assert "error" not in result, result.get("error")
    # v1: without wait_post_processing the wait may end in Finalizing, but only once the outputs
    # are uploaded
    assert result["details"]["status"] in ("Finalizing", "Completed")
    assert "outputs/result.txt" in run.get_file_names()
    text = captured.getvalue()
    assert text.count("first-line-from-script") == 1
    assert "last-line-from-script" in text
    assert text.index("last-line-from-script") < text.index("Execution Summary")
    # a last line without a newline is still shown once the run is over
    assert "tail-without-newline\n" in text
    assert text.index("tail-without-newline") < text.index("Execution Summary")


# ---------------------------------------------------------------------------------------------
# snapshots


def test_snapshot_id_restore_and_ignore_file(ws: Workspace, tmp_path: Path) -> None:
    src = source(
        tmp_path,
        """
        import os
        assert os.path.exists("helper.py"), "helper.py missing from the working copy"
        assert not os.path.exists("secret.bin"), "an ignored file reached the working copy"
        assert not os.path.exists("data"), "an ignored folder reached the working copy"
        print("snapshot ok")
        """,
    )
    (src / "helper.py").write_text("X = 1\n")
    (src / "secret.bin").write_bytes(b"\0" * 10)
    (src / "data").mkdir()
    (src / "data" / "big.csv").write_text("a,b\n")
    (src / ".trainyardignore").write_text("secret.bin\ndata/\n")
    (tmp_path / "elsewhere.txt").write_text("not part of the project")
    (src / "link.txt").symlink_to(tmp_path / "elsewhere.txt")
    exp = Experiment(ws, "snap")
    run = submit(exp, ScriptRunConfig(src, "train.py"))
    snap_id = run.properties["ContentSnapshotId"]
    assert snap_id and run.get_snapshot_id() == snap_id
    details = run.wait_for_completion(wait_post_processing=True)
    assert details["status"] == "Completed"
    # what the snapshot skipped is reported, not silently dropped
    assert any("link.txt" in w for w in details["warnings"])

    archive = Path(run.restore_snapshot(path=tmp_path / "restored"))
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        assert zf.read("helper.py") == b"X = 1\n"
    assert {"train.py", "helper.py"} <= names
    assert "secret.bin" not in names and "data/big.csv" not in names and "link.txt" not in names

    # the same source again is the same snapshot; a change makes a new one
    again = submit(exp, ScriptRunConfig(src, "train.py"))
    assert again.properties["ContentSnapshotId"] == snap_id
    (src / "helper.py").write_text("X = 2\n")
    changed = submit(exp, ScriptRunConfig(src, "train.py"))
    assert changed.properties["ContentSnapshotId"] != snap_id
    assert again.wait_for_completion(wait_post_processing=True)["status"] == "Completed"
    assert changed.wait_for_completion(wait_post_processing=True)["status"] == "Completed"


# ---------------------------------------------------------------------------------------------
# run objects loaded again


def test_run_loaded_by_id_is_a_script_run(ws: Workspace, tmp_path: Path) -> None:
    src = source(tmp_path, "print('ok')\n")
    run = submit(Experiment(ws, "reload"), ScriptRunConfig(src, "train.py"))
    again = Run.get(ws, run.id)
    assert isinstance(again, ScriptRun)
    assert again.wait_for_completion(wait_post_processing=True)["status"] == "Completed"
    env = again.get_environment()
    assert env is not None
    assert os.fspath(src.resolve()) == again.get_details()["runDefinition"]["sourceDirectory"]
