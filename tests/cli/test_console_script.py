"""The installed ``trainyard`` console script, run as a subprocess against real workspaces."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from trainyard.core.run import Run
from trainyard.core.workspace import Workspace, find_config
from trainyard.exceptions import UserErrorException

if TYPE_CHECKING:
    from conftest import CliRun, Populated

COMMANDS = [
    [],
    ["workspace"],
    ["workspace", "create"],
    ["workspace", "show"],
    ["experiments"],
    ["experiments", "list"],
    ["runs"],
    ["runs", "list"],
    ["runs", "show"],
    ["runs", "metrics"],
    ["runs", "download"],
]
LEAVES = [c for c in COMMANDS if len(c) == 2]


def strict_json(text: str) -> Any:
    """Parse like a strict JSON parser would: bare NaN/Infinity tokens are an error."""

    def reject(token: str) -> Any:
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=reject)


def _as_json_value(value: Any) -> Any:
    """What the CLI's encoder makes of an API value (non-finite floats become strings)."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == float("-inf"):
        return "-Infinity"
    if isinstance(value, list):
        return [_as_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_json_value(v) for k, v in value.items()}
    return value


# -- help and version -------------------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "trainyard")
def test_help_of_every_command_exits_zero(cli: CliRun, command: list[str]) -> None:
    proc = cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: trainyard" in proc.stdout
    if command in LEAVES or not command:
        assert "Example:" in proc.stdout


def test_version(cli: CliRun) -> None:
    from trainyard import __version__

    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"trainyard {__version__}"


def test_usage_errors_exit_2_without_traceback(cli: CliRun, populated: Populated) -> None:
    for args in (
        ["runs", "list", "--status", "Bogus"],
        ["runs", "show"],
        ["no-such-command"],
    ):
        proc = cli(*args, "-w", str(populated.ws_path))
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


# -- workspace --------------------------------------------------------------------------------
def test_workspace_create_writes_config_and_show_finds_it(cli: CliRun, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "src" / "deep").mkdir(parents=True)
    proc = cli("workspace", "create", "made", "--path", "ws", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "Created workspace made" in proc.stdout
    config = project / ".trainyard" / "config.json"
    assert config.is_file()
    assert json.loads(config.read_text())["workspace_path"] == str((project / "ws").resolve())

    # found again from a subfolder, walking up
    shown = cli("workspace", "show", "--json", cwd=project / "src" / "deep")
    assert shown.returncode == 0, shown.stderr
    assert strict_json(shown.stdout) == Workspace(path=project / "ws").get_details()
    table = cli("workspace", "show", cwd=project)
    assert "made" in table.stdout
    assert str(config) in table.stdout  # says where it was found


def test_workspace_create_twice(
    cli: CliRun, tmp_path: Path, clean_error: Callable[..., None]
) -> None:
    assert cli("workspace", "create", "twice", "--path", "ws").returncode == 0
    again = cli("workspace", "create", "twice", "--path", "ws")
    clean_error(again, "ALREADY_EXISTS")
    ok = cli("workspace", "create", "twice", "--path", "ws", "--exist-ok", "--json")
    assert ok.returncode == 0, ok.stderr
    payload = strict_json(ok.stdout)
    assert payload["created"] is False
    assert payload["name"] == "twice"


def test_workspace_create_no_write_config_and_default_home(cli: CliRun, tmp_path: Path) -> None:
    proc = cli("workspace", "create", "homed", "--no-write-config", "--json")
    assert proc.returncode == 0, proc.stderr
    payload = strict_json(proc.stdout)
    assert payload["config"] is None
    assert payload["path"] == str((tmp_path / "home" / "workspaces" / "homed").resolve())
    assert not (tmp_path / ".trainyard").exists()


def test_invalid_workspace_name_is_a_clean_error(
    cli: CliRun, clean_error: Callable[..., None]
) -> None:
    clean_error(cli("workspace", "create", "bad name!", "--no-write-config"), "INVALID_NAME")


# -- workspace resolution ---------------------------------------------------------------------
def test_no_workspace_found_says_what_to_run(
    cli: CliRun, tmp_path: Path, clean_error: Callable[..., None]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    try:
        stray = find_config(empty)
    except UserErrorException:
        stray = None
    if stray is not None:
        pytest.skip(f"a stray config above the temp folder is visible: {stray}")
    proc = cli("runs", "list", cwd=empty)
    clean_error(proc, "WORKSPACE_NOT_FOUND")
    assert "trainyard workspace create" in proc.stderr
    assert "--workspace" in proc.stderr
    assert "TRAINYARD_WORKSPACE" in proc.stderr
    as_json = cli("runs", "list", "--json", cwd=empty)
    assert as_json.returncode == 1
    assert strict_json(as_json.stdout)["error"]["code"] == "WORKSPACE_NOT_FOUND"


def test_workspace_env_variable_and_precedence(
    cli: CliRun, populated: Populated, tmp_path: Path, clean_error: Callable[..., None]
) -> None:
    env = {"TRAINYARD_WORKSPACE": str(populated.ws_path)}
    shown = cli("workspace", "show", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert strict_json(shown.stdout)["path"] == str(populated.ws_path)
    # the option beats the environment variable
    bad_env = {"TRAINYARD_WORKSPACE": str(tmp_path / "missing")}
    assert cli("workspace", "show", "-w", str(populated.ws_path), env=bad_env).returncode == 0
    proc = cli("workspace", "show", env=bad_env)
    clean_error(proc, "WORKSPACE_NOT_FOUND")
    assert "TRAINYARD_WORKSPACE" in proc.stderr


# -- experiments ------------------------------------------------------------------------------
def test_experiments_list(cli: CliRun, populated: Populated) -> None:
    w = ["-w", str(populated.ws_path)]
    table = cli("experiments", "list", *w)
    assert table.returncode == 0, table.stderr
    assert "train" in table.stdout
    assert "eval" in table.stdout
    assert "old" not in table.stdout
    rows = {
        e["name"]: e for e in strict_json(cli("experiments", "list", "--all", "--json", *w).stdout)
    }
    assert set(rows) == {"train", "eval", "old"}
    assert rows["old"]["archived"] is True
    assert rows["train"]["runs"] == 2  # top-level runs only
    assert rows["eval"]["runs"] == 1


# -- runs list --------------------------------------------------------------------------------
def test_runs_list_table_and_json(cli: CliRun, populated: Populated) -> None:
    ws = Workspace(path=populated.ws_path)
    table = cli("runs", "list", cwd=populated.project)  # found through .trainyard/config.json
    assert table.returncode == 0, table.stderr
    for run_id, status in (
        (populated.done, "Completed"),
        (populated.failed, "Failed"),
        (populated.running, "Running"),
    ):
        line = next(ln for ln in table.stdout.splitlines() if run_id in ln)
        assert status in line
    assert populated.child not in table.stdout
    assert populated.archived_run not in table.stdout

    rows = strict_json(cli("runs", "list", "--json", cwd=populated.project).stdout)
    assert [r["runId"] for r in rows] == [populated.running, populated.failed, populated.done]
    for row in rows:
        run = Run.get(ws, row["runId"])
        details = run.get_details()
        assert row["status"] == run.get_status()
        assert row["number"] == run.number
        assert row["experiment"] == run.experiment.name
        assert row["type"] == run.type
        assert row["startTimeUtc"] == details["startTimeUtc"]
        assert row["endTimeUtc"] == details.get("endTimeUtc")
        assert row["tags"] == run.get_tags()


def test_runs_list_unknown_experiment(
    cli: CliRun, populated: Populated, clean_error: Callable[..., None]
) -> None:
    clean_error(
        cli("runs", "list", "-e", "nope", "-w", str(populated.ws_path)), "EXPERIMENT_NOT_FOUND"
    )


# -- runs show --------------------------------------------------------------------------------
def test_runs_show_table(cli: CliRun, populated: Populated) -> None:
    proc = cli("runs", "show", populated.done, "-w", str(populated.ws_path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for expected in (
        "Completed",
        "train",
        "vision",
        "algo",
        "sgd",
        "outputs/model.txt",
        "logs/train.log",
        "first",
    ):
        assert expected in out, expected
    failed = cli("runs", "show", populated.failed, "-w", str(populated.ws_path))
    assert "Failed" in failed.stdout
    assert "boom: out of memory" in failed.stdout


def test_runs_show_json_matches_api(cli: CliRun, populated: Populated) -> None:
    run = Run.get(Workspace(path=populated.ws_path), populated.failed)
    proc = cli("runs", "show", populated.failed, "--json", "-w", str(populated.ws_path))
    assert proc.returncode == 0, proc.stderr
    payload = strict_json(proc.stdout)
    details = run.get_details()
    for key in (
        "runId",
        "status",
        "startTimeUtc",
        "endTimeUtc",
        "tags",
        "properties",
        "runDefinition",
        "error",
    ):
        assert payload[key] == details[key], key
    assert payload["files"] == run.get_file_names()
    assert payload["experiment"] == "train"


def test_unknown_run_is_a_clean_error(
    cli: CliRun, populated: Populated, clean_error: Callable[..., None]
) -> None:
    for command in ("show", "metrics", "download"):
        proc = cli("runs", command, "no_such_run", "-w", str(populated.ws_path))
        clean_error(proc, "RUN_NOT_FOUND", [command])
    proc = cli("runs", "show", "no_such_run", "--json", "-w", str(populated.ws_path))
    assert proc.returncode == 1
    error = strict_json(proc.stdout)["error"]
    assert error["code"] == "RUN_NOT_FOUND"
    assert "no_such_run" in error["message"]


# -- runs metrics -----------------------------------------------------------------------------
def test_runs_metrics_table(cli: CliRun, populated: Populated) -> None:
    proc = cli("runs", "metrics", populated.done, "-w", str(populated.ws_path))
    assert proc.returncode == 0, proc.stderr
    cells = {
        ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[2:-1]]
        for ln in proc.stdout.splitlines()
        if ln.count("│") == 6
    }
    assert cells["acc"] == ["3", "0.9", "0.5", "0.9"]
    assert cells["loss"] == ["3", "0.25", "0.25", "2"]  # NaN is left out of min/max
    assert cells["lr"] == ["1", "0.01", "0.01", "0.01"]
    assert cells["best"] == ["1", "Infinity", "Infinity", "Infinity"]
    assert cells["note"] == ["1", "hello", "-", "-"]
    assert cells["table"][0] == "1"


def test_runs_metrics_json_matches_api_with_nan_as_strings(
    cli: CliRun, populated: Populated
) -> None:
    run = Run.get(Workspace(path=populated.ws_path), populated.done)
    proc = cli("runs", "metrics", populated.done, "--json", "-w", str(populated.ws_path))
    assert proc.returncode == 0, proc.stderr
    payload = strict_json(proc.stdout)
    assert payload == _as_json_value(run.get_metrics())
    assert payload["loss"] == [2.0, "NaN", 0.25]
    assert payload["best"] == "Infinity"
    one = strict_json(
        cli(
            "runs",
            "metrics",
            populated.done,
            "--name",
            "acc",
            "--json",
            "-w",
            str(populated.ws_path),
        ).stdout
    )
    assert one == {"acc": [0.5, 0.75, 0.9]}


def test_runs_metrics_points(
    cli: CliRun, populated: Populated, clean_error: Callable[..., None]
) -> None:
    w = ["-w", str(populated.ws_path)]
    run = Run.get(Workspace(path=populated.ws_path), populated.done)
    proc = cli("runs", "metrics", populated.done, "--name", "acc", "--points", "--json", *w)
    assert proc.returncode == 0, proc.stderr
    expected = [
        {"step": p.step, "timestamp": p.timestamp, "value": p.value}
        for p in run.get_metric_points("acc")
    ]
    assert strict_json(proc.stdout) == {"acc": expected}
    assert [p["step"] for p in expected] == [1, 2, 3]

    table = cli("runs", "metrics", populated.done, "--points", *w)
    assert table.returncode == 0, table.stderr
    assert "acc (3 points)" in table.stdout
    assert "loss (3 points)" in table.stdout
    rows = [
        [c.strip() for c in ln.split("│")[1:-1]]
        for ln in table.stdout.split("acc (3 points)")[1].split("loss (3 points)")[0].splitlines()
        if ln.count("│") == 4
    ]
    assert [(r[0], r[2]) for r in rows] == [("1", "0.5"), ("2", "0.75"), ("3", "0.9")]

    clean_error(cli("runs", "metrics", populated.done, "--name", "nope", *w), "NOT_FOUND")


# -- runs download ----------------------------------------------------------------------------
def test_runs_download(cli: CliRun, populated: Populated, tmp_path: Path) -> None:
    w = ["-w", str(populated.ws_path)]
    proc = cli("runs", "download", populated.done, "--output", str(tmp_path / "all"), *w)
    assert proc.returncode == 0, proc.stderr
    assert "Downloaded 3 files" in proc.stdout
    assert (tmp_path / "all" / "outputs" / "model.txt").read_bytes() == b"model-bytes"
    assert (tmp_path / "all" / "outputs" / "sub" / "weights.bin").read_bytes() == b"\x00\x01\x02"
    assert (tmp_path / "all" / "logs" / "train.log").read_text() == "epoch 1\n"

    only = cli("runs", "download", populated.done, "--prefix", "outputs", "--json", *w)
    assert only.returncode == 0, only.stderr
    payload = strict_json(only.stdout)
    default_dir = tmp_path / populated.done  # default output: ./RUN_ID
    assert payload["output"] == str(default_dir)
    assert sorted(payload["files"]) == [
        str(default_dir / "outputs" / "model.txt"),
        str(default_dir / "outputs" / "sub" / "weights.bin"),
    ]
    assert not (default_dir / "logs").exists()


def test_runs_download_bad_prefixes(
    cli: CliRun, populated: Populated, clean_error: Callable[..., None]
) -> None:
    w = ["-w", str(populated.ws_path)]
    clean_error(cli("runs", "download", populated.done, "--prefix", "../etc", *w), "UNSAFE_PATH")
    proc = cli("runs", "download", populated.done, "--prefix", "output", *w)
    clean_error(proc, "ARTIFACT_NOT_FOUND")
    assert "outputs" in proc.stderr  # names what exists
