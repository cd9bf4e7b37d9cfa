"""``trainyard ui``'s command line and where ``run.get_portal_url()`` points (no browser)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainyard.cli import app
from trainyard.core import Experiment, Workspace
from trainyard.testing.fixtures import unique_name


def test_help_names_the_options() -> None:
    result = CliRunner().invoke(app, ["ui", "--help"])
    assert result.exit_code == 0
    for option in ("--workspace", "--port", "--host"):
        assert option in result.output


def test_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    result = CliRunner().invoke(app, ["ui", "-w", str(tmp_path / "ws"), "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "loopback only" in result.output and "trainyard server" in result.output


def test_portal_url_points_at_a_running_studio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    run = Experiment(ws, "e").start_logging()
    assert run.get_portal_url().startswith("file://")
    (tmp_path / "ws" / "studio.json").write_text(
        json.dumps({"url": "http://127.0.0.1:8766/", "pid": os.getpid()})
    )
    assert run.get_portal_url() == f"http://127.0.0.1:8766/#/w/{ws.name}/runs/{run.id}"
    (tmp_path / "ws" / "studio.json").write_text(json.dumps({"url": "http://x/", "pid": 2**22}))
    assert run.get_portal_url().startswith("file://")  # that studio is gone
    run.complete()


def test_portal_url_from_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINYARD_STUDIO_URL", "https://studio.example.com/studio")
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    run = Experiment(ws, "e").start_logging()
    assert run.get_portal_url() == (
        f"https://studio.example.com/studio/#/w/{ws.name}/runs/{run.id}"
    )
    run.complete()
