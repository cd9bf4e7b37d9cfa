"""``trainyard submit``, ``runs logs``, ``runs cancel`` and ``compute list``: the installed console
script against real workspaces, real supervisors and real scripts.

Scripts that must still be running while a test looks at them wait for a *release file* the test
creates, so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from trainyard.cli.submit import experiment_name_for, parse_tags, project_requirements
from trainyard.core.compute.target import AmlCompute, ComputeTarget
from trainyard.core.workspace import Workspace

if TYPE_CHECKING:
    from conftest import CliRun

#: Quick heartbeats, polls and cancel grace for every command (the supervisors inherit them).
FAST = {
    "TRAINYARD_HEARTBEAT_SECONDS": "0.3",
    "TRAINYARD_HEARTBEAT_TIMEOUT": "15",
    "TRAINYARD_CANCEL_GRACE_SECONDS": "2",
    "TRAINYARD_POLLING_INTERVAL_MIN": "0.1",
    "TRAINYARD_POLLING_INTERVAL_MAX": "0.5",
}
TERMINAL = {"Completed", "Failed", "Canceled"}

HELLO = """
import sys
from trainyard.core import Run
from helper import GREETING

run = Run.get_context()
print(GREETING, "args=" + ",".join(sys.argv[1:]))
run.log("acc", 0.75)
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A fresh workspace folder."""
    return Workspace.create("subws", path=tmp_path / "ws").path


@pytest.fixture
def ty(cli: CliRun, ws: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``ty(*args)``: the console script on ``ws`` with fast settings."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return cli(*args, env={**FAST, "TRAINYARD_WORKSPACE": str(ws), **env})

    return run


def write_script(folder: Path, body: str, name: str = "train.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def poll(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def run_json(ty: Callable[..., subprocess.CompletedProcess[str]], run_id: str) -> dict[str, Any]:
    proc = ty("runs", "show", run_id, "--json")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


# -- help -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["submit"],
        ["runs", "logs"],
        ["runs", "cancel"],
        ["env", "list"],
        ["env", "show"],
        ["env", "prune"],
        ["models", "list"],
        ["models", "show"],
        ["models", "download"],
        ["compute", "list"],
    ],
    ids=" ".join,
)
def test_help_has_description_and_example(cli: CliRun, command: list[str]) -> None:
    proc = cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: trainyard" in proc.stdout
    assert "Example:" in proc.stdout


def test_groups_are_listed_in_root_help(cli: CliRun) -> None:
    proc = cli("--help")
    for group in ("submit", "env", "models", "compute"):
        assert group in proc.stdout


# -- helpers ----------------------------------------------------------------------------------
def test_default_experiment_name_follows_v1_rule() -> None:
    assert experiment_name_for("train.py") == "train"
    assert experiment_name_for("src/my train.v2.py") == "my_train_v2"
    assert experiment_name_for("_hidden.py") == "hidden"
    assert experiment_name_for("...py") == "default"
    assert len(experiment_name_for("x" * 300 + ".py")) == 255


def test_parse_tags() -> None:
    import typer

    assert parse_tags(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(typer.BadParameter):
        parse_tags(["novalue"])


# -- submit --wait ----------------------------------------------------------------------------
def test_submit_wait_streams_the_log_and_records_the_run(
    ty: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    src = tmp_path / "proj"
    write_script(src, "GREETING = 'hello-from-script'\n", "helper.py")
    script = write_script(src, HELLO)
    proc = ty("submit", "--wait", "--tag", "team=vision", str(script), "--", "--epochs", "3", "-x")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello-from-script args=--epochs,3,-x" in proc.stdout
    assert "Streaming user_logs/std_log.txt" in proc.stdout
    assert "Execution Summary" in proc.stdout

    listed = ty("runs", "list", "--json")
    rows = json.loads(listed.stdout)
    assert len(rows) == 1
    run_id = rows[0]["runId"]
    assert rows[0]["status"] == "Completed"
    assert rows[0]["experiment"] == "train"  # the script's stem
    assert rows[0]["tags"]["team"] == "vision"
    table = ty("runs", "list")
    assert run_id in table.stdout and "Completed" in table.stdout

    logs = ty("runs", "logs", run_id)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "hello-from-script args=--epochs,3,-x\n"
    followed = ty("runs", "logs", run_id, "-f")  # a finished run: prints all and returns
    assert followed.returncode == 0 and followed.stdout == logs.stdout
    build = ty("runs", "logs", run_id, "--log", "system_logs/environment_build.txt")
    assert "User-managed environment" in build.stdout
    metrics = json.loads(ty("runs", "metrics", run_id, "--json").stdout)
    assert metrics == {"acc": 0.75}


def test_submit_json_and_options(
    ty: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    src = tmp_path / "proj"
    write_script(src, "GREETING = 'hi'\n", "helper.py")
    write_script(src / "sub", HELLO, "job.py")
    (src / "sub" / "helper.py").write_text("GREETING = 'sub-hi'\n")
    # the script given relative to --source-dir; the folder's own files come along
    args = ["-e", "exp-1", "--source-dir", str(src), "--max-seconds", "600", "--wait", "--json"]
    proc = ty("submit", *args, "sub/job.py", "a", "b")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # the streamed log went to stderr
    assert data["status"] == "Completed"
    assert data["experiment"] == "exp-1"
    assert data["script"] == "sub/job.py"
    assert data["arguments"] == ["a", "b"]
    assert data["error"] is None
    assert "args=a,b" in proc.stderr
    details = run_json(ty, data["runId"])
    assert details["runDefinition"]["maxRunDurationSeconds"] == 600
    assert details["runDefinition"]["script"] == "sub/job.py"


def test_failing_script_exits_1(
    ty: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    script = write_script(tmp_path / "bad", "print('about to fail')\nraise ValueError('boom')\n")
    proc = ty("submit", "--wait", str(script))
    assert proc.returncode == 1
    assert "about to fail" in proc.stdout
    assert "ValueError: boom" in proc.stdout
    assert "ended Failed: ValueError: boom" in proc.stderr
    as_json = ty("submit", "--wait", "--json", str(script))
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["status"] == "Failed"
    assert data["error"]["message"] == "ValueError: boom"
    statuses = {r["status"] for r in json.loads(ty("runs", "list", "--json").stdout)}
    assert statuses == {"Failed"}


def test_max_seconds_cancels_the_run(
    ty: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    script = write_script(
        tmp_path / "slow", "import time\nprint('sleeping', flush=True)\ntime.sleep(300)\n"
    )
    proc = ty("submit", "--wait", "--json", "--max-seconds", "1", str(script))
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["status"] == "Canceled"
    assert "max_run_duration_seconds" in data["error"]["message"]


# -- submit without --wait, logs -f, cancel ---------------------------------------------------
def test_submit_prints_run_id_and_logs_follow_until_the_end(
    ty: Callable[..., subprocess.CompletedProcess[str]],
    cli: CliRun,
    ws: Path,
    tmp_path: Path,
    trainyard_exe: Path,
) -> None:
    release = tmp_path / "release"
    script = write_script(
        tmp_path / "follow",
        f"""
        import os, time
        print("first line", flush=True)
        while not os.path.exists({str(release)!r}):
            time.sleep(0.05)
        print("second line", flush=True)
        print("no newline at the end", end="")
        """,
    )
    proc = ty("submit", str(script))
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    assert run_id.startswith("train_") and "\n" not in run_id  # stdout is only the id
    assert f"trainyard runs logs {run_id} -f" in proc.stderr

    def first_line_logged() -> bool:
        return ty("runs", "logs", run_id).stdout == "first line\n"

    poll(first_line_logged, what="the first line in the log")
    env = {
        **{k: v for k, v in os.environ.items() if k != "TRAINYARD_WORKSPACE"},
        **FAST,
        "TRAINYARD_WORKSPACE": str(ws),
    }
    with subprocess.Popen(
        [str(trainyard_exe), "runs", "logs", run_id, "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as follower:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "first line\n"
        assert follower.poll() is None  # still following a running run
        release.touch()
        out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert out == "second line\nno newline at the end"
    assert run_json(ty, run_id)["status"] == "Completed"


def test_logs_of_a_run_without_output_yet_and_unknown_log(
    ty: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    clean_error: Callable[..., None],
) -> None:
    script = write_script(tmp_path / "quiet", "pass\n")
    proc = ty("submit", "--wait", str(script))
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(ty("runs", "list", "--json").stdout)[0]["runId"]
    empty = ty("runs", "logs", run_id)
    assert empty.returncode == 0 and empty.stdout == ""
    missing = ty("runs", "logs", run_id, "--log", "user_logs/nope.txt")
    clean_error(missing, "ARTIFACT_NOT_FOUND")
    assert "user_logs/std_log.txt" in missing.stderr  # names the logs that exist
    clean_error(ty("runs", "logs", "no_such_run"), "RUN_NOT_FOUND")
    clean_error(ty("runs", "logs", run_id, "--log", "../x"), "UNSAFE_PATH")


def test_cancel_a_sleeping_run(
    ty: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    clean_error: Callable[..., None],
    trainyard_exe: Path,
    ws: Path,
) -> None:
    script = write_script(
        tmp_path / "sleepy", "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"
    )
    run_id = json.loads(ty("submit", "--json", str(script)).stdout)["runId"]
    # Ctrl-C stops following, not the run
    env = {**os.environ, **FAST, "TRAINYARD_WORKSPACE": str(ws)}
    with subprocess.Popen(
        [str(trainyard_exe), "runs", "logs", run_id, "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as follower:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "sleeping\n"
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=60)
    assert follower.returncode == 130
    assert "keeps running" in err and "Traceback" not in err
    assert run_json(ty, run_id)["status"] == "Running"
    proc = ty("runs", "cancel", run_id, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["canceled"] is True and data["runId"] == run_id
    assert data["status"] in ("CancelRequested", "Canceled")
    status = poll(
        lambda: (s := run_json(ty, run_id)["status"]) in TERMINAL and s, what="the cancel"
    )
    assert status == "Canceled"
    again = ty("runs", "cancel", run_id)
    clean_error(again, "RUN_FINISHED")
    assert "already finished with status Canceled" in again.stderr
    again_json = ty("runs", "cancel", run_id, "--json")
    assert again_json.returncode == 1
    assert json.loads(again_json.stdout)["error"]["details"]["status"] == "Canceled"


def test_cancel_prints_status(
    ty: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    release = tmp_path / "never"
    script = write_script(
        tmp_path / "wait",
        f"import os, time\nwhile not os.path.exists({str(release)!r}):\n    time.sleep(0.05)\n",
    )
    run_id = ty("submit", str(script)).stdout.strip()
    proc = ty("runs", "cancel", run_id)
    assert proc.returncode == 0, proc.stderr
    assert f"Cancel requested for run {run_id}; status: " in proc.stdout
    poll(lambda: run_json(ty, run_id)["status"] == "Canceled", what="the cancel")


# -- errors -----------------------------------------------------------------------------------
def test_submit_errors_leave_no_run(
    ty: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    clean_error: Callable[..., None],
) -> None:
    script = write_script(tmp_path / "ok", "pass\n")
    outside = write_script(tmp_path / "elsewhere", "pass\n")
    clean_error(ty("submit", str(tmp_path / "missing.py")), "USER_ERROR")
    clean_error(ty("submit", "--source-dir", str(script.parent), str(outside)), "USER_ERROR")
    clean_error(ty("submit", "-c", "no-such-target", str(script)), "COMPUTE_TARGET_NOT_FOUND")
    clean_error(ty("submit", "-e", "bad name!", str(script)), "INVALID_NAME")
    clean_error(ty("submit", "--env", str(tmp_path / "nope.txt"), str(script)), "BAD_CONFIG")
    clean_error(ty("submit", "--pip", "not a requirement ===", str(script)), "INVALID_VALUE")
    bad_json = ty("submit", "--json", str(tmp_path / "missing.py"))
    assert json.loads(bad_json.stdout)["error"]["code"] == "USER_ERROR"
    usage = ty("submit", "--tag", "novalue", str(script))
    assert usage.returncode == 2 and "KEY=VALUE" in usage.stderr
    assert json.loads(ty("runs", "list", "--json").stdout) == []


def test_submit_with_requirements_file_validates_it(
    ty: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    clean_error: Callable[..., None],
) -> None:
    script = write_script(tmp_path / "ok", "pass\n")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("six==1.16.0\n-e ./local\n")
    proc = ty("submit", "--env", str(reqs), str(script))
    clean_error(proc, "INVALID_VALUE")
    assert "-e ./local" in proc.stderr
    conda = tmp_path / "env.yml"
    conda.write_text("dependencies:\n  - some-conda-only-pkg\n")
    clean_error(ty("submit", "--env", str(conda), str(script)), "INVALID_VALUE")


def test_submit_uses_the_projects_requirements_txt_and_says_so(
    ty: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    clean_error: Callable[..., None],
) -> None:
    """Without --env, requirements.txt next to the script is the run's environment (stderr says
    so); --no-requirements runs in this interpreter; --env wins over it."""
    script = write_script(tmp_path / "proj", "print('ran here')\n")
    reqs = script.parent / "requirements.txt"
    reqs.write_text("six==1.16.0\n-e ./local\n")  # invalid on purpose: nothing gets built
    picked = ty("submit", str(script))
    clean_error(picked, "INVALID_VALUE")
    assert f"Using {reqs}" in picked.stderr and "--no-requirements" in picked.stderr
    assert "-e ./local" in picked.stderr
    plain = ty("submit", "--no-requirements", "--wait", "--json", str(script))
    assert plain.returncode == 0, plain.stderr
    data = json.loads(plain.stdout)
    assert data["status"] == "Completed" and data["environmentFile"] is None
    assert "Using " not in plain.stderr and "ran here" in plain.stderr
    other = tmp_path / "other.txt"
    other.write_text("-e ./elsewhere\n")
    chosen = ty("submit", "--env", str(other), str(script))
    clean_error(chosen, "INVALID_VALUE")
    assert "./elsewhere" in chosen.stderr and "Using " not in chosen.stderr


def test_project_requirements_rules(tmp_path: Path) -> None:
    assert project_requirements(tmp_path, None, True) is None
    (tmp_path / "requirements.txt").write_text("six\n")
    assert project_requirements(tmp_path, None, True) == tmp_path / "requirements.txt"
    assert project_requirements(tmp_path, None, False) is None
    assert project_requirements(tmp_path, tmp_path / "env.yml", True) is None


# -- compute list -----------------------------------------------------------------------------
def test_compute_list(ty: Callable[..., subprocess.CompletedProcess[str]], ws: Path) -> None:
    workspace = Workspace(path=ws)
    ComputeTarget.create(
        workspace, "cpu-cluster", AmlCompute.provisioning_configuration(max_nodes=3)
    )
    rows = {r["name"]: r for r in json.loads(ty("compute", "list", "--json").stdout)}
    assert set(rows) == {"local", "cpu-cluster"}
    assert rows["cpu-cluster"]["type"] == "amlcompute"
    assert rows["cpu-cluster"]["maxConcurrentRuns"] == 3
    assert rows["cpu-cluster"]["maxNodes"] == 3
    assert rows["local"]["maxConcurrentRuns"] >= 1
    assert rows["local"]["gpus"] == 0
    table = ty("compute", "list")
    assert table.returncode == 0
    assert "cpu-cluster" in table.stdout and "amlcompute" in table.stdout
