"""``trainyard compute``: create (local and Ray), attach, list, show, update and delete, in process
through typer's runner; one real Ray cluster for the module's slow tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from trainyard.cli import app
from trainyard.core import Workspace
from trainyard.core.compute import ComputeTarget, ComputeTargetException
from trainyard.testing.fixtures import unique_name

runner = CliRunner()
ENV: dict[str, str | None] = {
    "TRAINYARD_WORKSPACE": None,
    "TRAINYARD_AMLCOMPUTE_BACKEND": None,
    "COLUMNS": "200",
}


def invoke(ws: Workspace, *args: str) -> Result:
    return runner.invoke(app, [*args, "-w", str(ws.path)], env=ENV)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws")


@pytest.mark.parametrize(
    "command", [[], ["create"], ["attach"], ["list"], ["show"], ["update"], ["delete"]]
)
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, ["compute", *command, "--help"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_local_cluster_create_update_list_delete(ws: Workspace) -> None:
    created = as_json(
        invoke(ws, "compute", "create", "loc", "--max-nodes", "2", "--backend", "local", "--json")
    )
    assert created["type"] == "amlcompute"
    assert created["status"]["backend"] == "local"
    assert created["status"]["scale_settings"]["maximum_node_count"] == 2
    updated = as_json(invoke(ws, "compute", "update", "loc", "--max-nodes", "3", "--json"))
    assert updated["status"]["scale_settings"]["maximum_node_count"] == 3
    rows = {r["name"]: r for r in as_json(invoke(ws, "compute", "list", "--json"))}
    assert rows["loc"]["backend"] == "local" and rows["loc"]["maxConcurrentRuns"] == 3
    assert rows["local"]["backend"] == "local" and rows["loc"]["currentNodes"] is None
    table = invoke(ws, "compute", "list")
    assert table.exit_code == 0 and "loc" in table.stdout and "Backend" in table.stdout
    shown = invoke(ws, "compute", "show", "loc")
    assert shown.exit_code == 0 and "Succeeded" in shown.stdout
    assert as_json(invoke(ws, "compute", "delete", "loc", "--yes", "--json"))["deleted"] is True
    assert "loc" not in ws.compute_targets


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["create", "c", "--vm-size", "Standard_Bogus9", "--backend", "ray"], "INVALID_COMPUTE"),
        (["create", "c", "--min-nodes", "3", "--max-nodes", "1"], "INVALID_COMPUTE"),
        (["create", "c", "--backend", "spark"], "INVALID_COMPUTE"),
        (["create", "bad name"], "INVALID_COMPUTE"),
        (["delete", "local", "--yes"], "COMPUTE_TARGET"),
        (["show", "nope"], "COMPUTE_TARGET_NOT_FOUND"),
        (["update", "local", "--max-nodes", "2"], "COMPUTE_TARGET"),
        (["attach", "a"], "INVALID_COMPUTE"),
    ],
)
def test_misuse_is_one_clean_error_line(ws: Workspace, args: list[str], code: str) -> None:
    result = invoke(ws, "compute", *args)
    assert result.exit_code == 1, result.output
    assert f"Error [{code}]: " in result.stderr
    assert "Traceback" not in result.output
    assert "c" not in ws.compute_targets


def test_json_errors_are_parseable(ws: Workspace) -> None:
    result = invoke(ws, "compute", "create", "c", "--vm-size", "nope", "--backend", "ray", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "INVALID_COMPUTE"


# -- a real Ray cluster -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    pytest.importorskip("ray")
    ws = Workspace.create(unique_name("ws"), path=tmp_path_factory.mktemp("cli-ray") / "ws")
    yield ws
    try:
        ComputeTarget(ws, "rc").delete()
    except ComputeTargetException:
        pass


@pytest.mark.slow
def test_ray_cluster_through_the_command_line(rws: Workspace) -> None:
    created = invoke(
        rws,
        "compute",
        "create",
        "rc",
        "--vm-size",
        "standard_ds2_v2",
        "--max-nodes",
        "1",
        "--idle-seconds",
        "6",
        "--backend",
        "ray",
        "--runs-per-node",
        "2",
        "--wait",
    )
    assert created.exit_code == 0, created.output
    assert 'operation "Succeeded"' in created.stdout
    assert "backend ray" in created.stdout

    shown = as_json(invoke(rws, "compute", "show", "rc", "--json"))
    assert shown["status"]["provisioning_state"] == "Succeeded"
    assert shown["status"]["current_node_count"] == 0
    assert shown["status"]["max_concurrent_runs"] == 2
    assert shown["status"]["dashboard_url"].startswith("http://127.0.0.1:")
    text = invoke(rws, "compute", "show", "rc")
    assert text.exit_code == 0 and "Dashboard:" in text.stdout

    rows = {r["name"]: r for r in as_json(invoke(rws, "compute", "list", "--json"))}
    assert rows["rc"]["backend"] == "ray" and rows["rc"]["currentNodes"] == 0
    assert rows["rc"]["properties"]["ray"]["managed"] is True

    updated = as_json(invoke(rws, "compute", "update", "rc", "--max-nodes", "2", "--json"))
    assert updated["status"]["scale_settings"]["maximum_node_count"] == 2
    assert updated["status"]["max_concurrent_runs"] == 4

    url = shown["status"]["dashboard_url"]
    refused = invoke(rws, "compute", "attach", "theirs", "--dashboard-url", url, "--token", "x")
    assert refused.exit_code == 1 and "refused its token" in refused.stderr
    token = Path(rows["rc"]["properties"]["ray"]["token_file"]).read_text().strip()
    attached = invoke(rws, "compute", "attach", "theirs", "--dashboard-url", url, "--token", token)
    assert attached.exit_code == 0, attached.output
    refused_update = invoke(rws, "compute", "update", "theirs", "--min-nodes", "1")
    assert refused_update.exit_code == 1 and "attached" in refused_update.stderr
    assert invoke(rws, "compute", "delete", "theirs", "--yes").exit_code == 0

    folder = rws.context.home / "clusters" / "rc"
    deleted = invoke(rws, "compute", "delete", "rc", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert not folder.exists()
    assert set(rws.compute_targets) == {"local"}
