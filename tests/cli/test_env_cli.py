"""``trainyard env list|show|prune`` against a temporary ``TRAINYARD_ENV_CACHE``.

One tiny environment (``six==1.16.0``) is built once per module, by a real ``trainyard submit
--pip six==1.16.0 --wait`` whose script imports it; the prune tests build theirs in their own
cache (uv's cache makes that a second or two).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainyard.cli.env import fmt_bytes
from trainyard.core.workspace import Workspace

FAST = {
    "TRAINYARD_HEARTBEAT_SECONDS": "0.3",
    "TRAINYARD_HEARTBEAT_TIMEOUT": "15",
    "TRAINYARD_CANCEL_GRACE_SECONDS": "2",
    "TRAINYARD_POLLING_INTERVAL_MIN": "0.1",
    "TRAINYARD_POLLING_INTERVAL_MAX": "0.5",
}
Runner = Callable[..., subprocess.CompletedProcess[str]]


def runner(exe: Path, home: Path, ws: Path, cache: Path) -> Runner:
    """The console script with its own home, workspace and environment cache."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "TRAINYARD_WORKSPACE"}
        env.update(FAST)
        env.update(
            {
                "TRAINYARD_HOME": str(home),
                "TRAINYARD_WORKSPACE": str(ws),
                "TRAINYARD_ENV_CACHE": str(cache),
                "COLUMNS": "200",
                "NO_COLOR": "1",
            }
        )
        return subprocess.run(
            [str(exe), *args], env=env, capture_output=True, text=True, timeout=300, cwd=home
        )

    return run


SIX_SCRIPT = "import six\nprint('six', six.__version__)\n"


def submit_six(
    ty: Runner, folder: Path, body: str = SIX_SCRIPT, wait: bool = True
) -> subprocess.CompletedProcess[str]:
    """``trainyard submit --pip six==1.16.0`` of ``body`` (with ``--wait``, else ``--json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "use_six.py").write_text(textwrap.dedent(body))
    args = ["submit", "--pip", "six==1.16.0", str(folder / "use_six.py")]
    return ty(*args, "--wait") if wait else ty(*args, "--json")


@dataclass(frozen=True)
class Built:
    ty: Runner
    cache: Path
    hash: str
    submit_stdout: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, trainyard_exe: Path) -> Built:
    root = tmp_path_factory.mktemp("env-cli")
    (root / "home").mkdir()
    ws = Workspace.create("envws", path=root / "ws").path
    ty = runner(trainyard_exe, root / "home", ws, root / "envs")
    proc = submit_six(ty, root / "src")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(ty("env", "list", "--json").stdout)
    assert len(rows) == 1
    return Built(ty=ty, cache=root / "envs", hash=rows[0]["hash"], submit_stdout=proc.stdout)


def test_submit_pip_builds_and_uses_the_environment(built: Built) -> None:
    assert "six 1.16.0" in built.submit_stdout
    assert "Building environment" in built.submit_stdout  # the build log was streamed


def test_env_list_json_and_table(built: Built) -> None:
    rows = json.loads(built.ty("env", "list", "--json").stdout)
    (row,) = rows
    assert row["hash"] == built.hash and len(row["hash"]) == 64
    assert row["requirements"] == ["six==1.16.0"]
    assert row["packages"] >= 2  # six and the injected trainyard runtime
    assert row["sizeBytes"] > 0
    assert Path(row["prefix"]).parent == built.cache
    assert row["pythonVersion"].count(".") == 2
    assert row["created"] <= row["lastUsed"]
    table = built.ty("env", "list")
    assert table.returncode == 0
    assert built.hash[:12] in table.stdout
    assert "six==1.16.0" in table.stdout
    assert fmt_bytes(row["sizeBytes"]) in table.stdout


def test_env_show(built: Built) -> None:
    data = json.loads(built.ty("env", "show", built.hash[:8], "--json").stdout)
    assert data["hash"] == built.hash
    assert data["spec"]["requirements"] == ["six==1.16.0"]
    assert data["resolved"]["six"] == "1.16.0"
    assert "trainyard" in data["resolved"]
    assert isinstance(data["notices"], list)
    table = built.ty("env", "show", built.hash[:6])
    assert table.returncode == 0
    assert built.hash in table.stdout
    assert "six==1.16.0" in table.stdout
    assert "Resolved (" in table.stdout


def test_env_show_errors(built: Built, clean_error: Callable[..., None]) -> None:
    clean_error(built.ty("env", "show", "zz"), "INVALID_VALUE")
    other = "0000" if not built.hash.startswith("0000") else "1111"
    clean_error(built.ty("env", "show", other), "ENVIRONMENT_NOT_FOUND")


def test_prune_needs_a_choice_and_dry_runs_without_yes(built: Built) -> None:
    usage = built.ty("env", "prune")
    assert usage.returncode == 2
    assert built.ty("env", "prune", "--all", "--older-than-days", "1").returncode == 2
    dry = built.ty("env", "prune", "--all")
    assert dry.returncode == 0
    assert f"Would remove {built.hash[:12]}" in dry.stdout
    assert "--yes" in dry.stdout
    data = json.loads(built.ty("env", "prune", "--all", "--json").stdout)
    assert data["dryRun"] is True
    assert [e["hash"] for e in data["environments"]] == [built.hash]
    assert data["totalBytes"] > 0
    recent = json.loads(built.ty("env", "prune", "--older-than-days", "1", "--json").stdout)
    assert recent["environments"] == []
    assert (built.cache / built.hash[:16]).is_dir()  # nothing deleted


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.1)
    return value


@pytest.mark.slow  # a build, a run and seven commands: about 9 s on 2 idle cores
def test_prune_yes_removes_and_keeps_what_a_running_run_uses(
    tmp_path: Path, trainyard_exe: Path
) -> None:
    (tmp_path / "home").mkdir()
    ws = Workspace.create("prunews", path=tmp_path / "ws").path
    cache = tmp_path / "envs"
    ty = runner(trainyard_exe, tmp_path / "home", ws, cache)
    release = tmp_path / "release"
    body = f"""
    import os, time, six
    print("using six", flush=True)
    while not os.path.exists({str(release)!r}):
        time.sleep(0.05)
    """
    submitted = submit_six(ty, tmp_path / "src", body, wait=False)
    assert submitted.returncode == 0, submitted.stderr
    run_id = json.loads(submitted.stdout)["runId"]
    wait_for(lambda: ty("runs", "logs", run_id).stdout == "using six\n")
    (digest,) = [e["hash"] for e in json.loads(ty("env", "list", "--json").stdout)]

    busy = json.loads(ty("env", "prune", "--all", "--yes", "--json").stdout)
    assert busy["environments"] == [] and busy["kept"] == [digest]
    assert (cache / digest[:16]).is_dir()
    kept = json.loads(ty("env", "prune", "--all", "--yes", "--keep", digest[:6], "--json").stdout)
    assert kept["kept"] == [digest]

    release.touch()
    wait_for(
        lambda: json.loads(ty("runs", "show", run_id, "--json").stdout)["status"] == "Completed"
    )
    proc = ty("env", "prune", "--all", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert f"Removed {digest[:12]}" in proc.stdout
    assert "Removed 1 environment, freed" in proc.stdout
    assert not (cache / digest[:16]).exists()
    assert json.loads(ty("env", "list", "--json").stdout) == []
    assert "No cached environments" in ty("env", "list").stdout
