"""``trainyard service list|show|logs|delete`` on a service deployed through the Python API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from trainyard.core.environment import Environment
from trainyard.core.model import InferenceConfig, Model
from trainyard.core.webservice import AciWebservice, Webservice
from trainyard.core.workspace import Workspace

if TYPE_CHECKING:
    from conftest import CliRun

SCORE = "def init():\n    print('init ran', flush=True)\n\ndef run(raw):\n    return [len(raw)]\n"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace with the service ``cli-svc`` (auth on) serving a one-file model."""
    root = tmp_path_factory.mktemp("service-cli")
    ws = Workspace.create("svcws", path=root / "ws")
    (root / "app").mkdir()
    (root / "app" / "score.py").write_text(SCORE)
    (root / "m.txt").write_text("x")
    model = Model.register(ws, root / "m.txt", "tiny")
    env = Environment("here")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = sys.executable
    cfg = InferenceConfig(
        entry_script="score.py", source_directory=str(root / "app"), environment=env
    )
    svc = Model.deploy(
        ws, "cli-svc", [model], cfg, AciWebservice.deploy_configuration(auth_enabled=True)
    )
    svc.wait_for_deployment()
    yield ws
    for service in Webservice.list(ws):
        service.delete()


@pytest.fixture
def ty(cli: CliRun, deployed: Workspace) -> CliRun:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(*args, env={"TRAINYARD_WORKSPACE": str(deployed.path)})

    return run


def test_service_list(ty: CliRun) -> None:
    rows = json.loads(ty("service", "list", "--json").stdout)
    assert [r["name"] for r in rows] == ["cli-svc"]
    assert rows[0]["state"] == "Healthy" and rows[0]["models"] == ["tiny:1"]
    assert rows[0]["authEnabled"] is True and "primaryKey" not in json.dumps(rows)
    table = ty("service", "list").stdout
    assert "cli-svc" in table and "Healthy" in table and "http://127.0.0.1:" in table


def test_service_show(ty: CliRun, deployed: Workspace) -> None:
    data = json.loads(ty("service", "show", "cli-svc", "--json").stdout)
    assert data["scoringUri"] == Webservice(deployed, "cli-svc").scoring_uri
    assert data["lastOperation"]["status"] == "Succeeded"
    primary, _ = Webservice(deployed, "cli-svc").get_keys()
    text = ty("service", "show", "cli-svc").stdout
    assert "Healthy" in text and "tiny:1" in text and primary not in text


def test_service_logs(ty: CliRun) -> None:
    out = ty("service", "logs", "cli-svc", "--lines", "500").stdout
    assert "init ran" in out and "trainyard-deploy: healthy" in out
    lines = json.loads(ty("service", "logs", "cli-svc", "-n", "3", "--json").stdout)["lines"]
    assert len(lines) == 3


def test_service_errors(ty: CliRun, clean_error: Callable[..., None]) -> None:
    clean_error(ty("service", "show", "nope-svc"), "WEBSERVICE_NOT_FOUND")
    clean_error(ty("service", "logs", "nope-svc"), "WEBSERVICE_NOT_FOUND")


def test_service_delete(ty: CliRun, deployed: Workspace, clean_error: Callable[..., None]) -> None:
    uri = Webservice(deployed, "cli-svc").scoring_uri or ""
    assert json.loads(ty("service", "delete", "cli-svc", "--yes", "--json").stdout) == {
        "name": "cli-svc",
        "deleted": True,
    }
    assert deployed.webservices == {}
    with pytest.raises(httpx.ConnectError):
        httpx.post(uri, content="{}")
    clean_error(ty("service", "delete", "cli-svc", "--yes"), "WEBSERVICE_NOT_FOUND")
    assert "No web services" in ty("service", "list").stdout


def test_service_deploy_serves_and_a_failed_one_is_retried(
    ty: CliRun, deployed: Workspace, tmp_path_factory: pytest.TempPathFactory
) -> None:
    app = tmp_path_factory.mktemp("deploy-app")
    (app / "score.py").write_text("def init():\n    raise RuntimeError('no model here')\n")
    args = ["service", "deploy", "cli-new", "-m", "tiny:1", "--entry-script", "score.py"]
    failed = ty(*args, "--source-dir", str(app), "--no-auth", "--json")
    assert failed.returncode == 1
    error = json.loads(failed.stdout)["error"]
    assert error["details"]["state"] == "Failed" and "init() raised" in error["message"]
    assert "overwrite=True" in failed.stderr
    (app / "score.py").write_text(SCORE)
    again = ty(*args, "--source-dir", str(app), "--no-auth", "--json")
    assert again.returncode == 1 and "is Failed" in again.stderr  # says how to retry
    fixed = ty(*args, "--source-dir", str(app), "--no-auth", "--overwrite", "--json")
    assert fixed.returncode == 0, fixed.stderr
    data = json.loads(fixed.stdout)
    assert data["state"] == "Healthy" and "tiny:1" in json.dumps(data["models"])
    assert httpx.post(data["scoringUri"], content=b"abc").json() == [3]
    assert ty("service", "delete", "cli-new", "--yes").returncode == 0
