"""The Preparing stage: which environments start at once on this interpreter, and that a run in one
still records everything about its environment (recorded after the script started)."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from trainyard._execution.prepare import current_interpreter, prepare_environment
from trainyard.core import Environment, Experiment, ScriptRun, ScriptRunConfig, Workspace
from trainyard.core.conda_dependencies import CondaDependencies
from trainyard.core.runconfig import RunConfiguration
from trainyard.exceptions import ValidationError
from trainyard.settings import load_settings
from trainyard.testing.fixtures import unique_name


def test_default_environment_is_this_interpreter() -> None:
    assert current_interpreter({}) == (sys.executable, {})
    default = RunConfiguration().environment.to_dict()  # what a ScriptRunConfig without one sends
    assert current_interpreter(default) == (sys.executable, {})


def test_user_managed_environment_keeps_its_variables() -> None:
    env = Environment("mine")
    env.python.user_managed_dependencies = True
    env.environment_variables = {"ANSWER": 42}
    assert current_interpreter(env.to_dict()) == (sys.executable, {"ANSWER": "42"})


def test_environments_that_need_preparing_are_not_started_at_once() -> None:
    built = Environment("built")
    built.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    assert current_interpreter(built.to_dict()) is None
    other = Environment("other-python")
    other.python.user_managed_dependencies = True
    other.python.interpreter_path = "/usr/bin/python3"
    assert current_interpreter(other.to_dict()) is None


def test_same_interpreter_and_variables_as_prepare_environment() -> None:
    env = Environment("mine")
    env.python.user_managed_dependencies = True
    env.environment_variables = {"A": "1"}
    lines: list[str] = []
    prepared = prepare_environment(env.to_dict(), load_settings(), lines.append)
    assert current_interpreter(env.to_dict()) == (prepared.python, prepared.env)
    assert "trainyard" in prepared.resolved
    assert any("User-managed environment" in line for line in lines)


def test_invalid_definition_raises_as_prepare_environment_does() -> None:
    env = Environment("bad")
    env.python.user_managed_dependencies = True
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six ((( bad"])
    with pytest.raises(ValidationError, match=r"six \(\(\( bad"):
        prepare_environment(env.to_dict(), load_settings(), lambda _line: None)
    with pytest.raises(ValidationError, match=r"six \(\(\( bad"):
        current_interpreter(env.to_dict())


def test_run_in_default_environment_records_it_after_starting(tmp_path: Path) -> None:
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        textwrap.dedent("""
            import os, sys
            print("python", sys.executable, "var", os.environ.get("PREP_VAR"))
        """)
    )
    config = ScriptRunConfig(str(src), "train.py")
    config.run_config.environment.environment_variables = {"PREP_VAR": "set"}
    run = Experiment(ws, "prepare").submit(config)
    assert isinstance(run, ScriptRun)
    deadline = time.monotonic() + 60
    while run.get_status() not in ("Completed", "Failed", "Canceled"):
        assert time.monotonic() < deadline, "the run did not finish in 60 s"
        time.sleep(0.05)
    details = run.get_details()
    assert run.get_status() == "Completed", details.get("error")
    runtime = run._refresh().runtime
    assert runtime["python"] == sys.executable
    assert runtime["environment_cached"] is True
    assert runtime["prepare_seconds"] >= 0
    assert runtime["environment_hash"]
    assert "trainyard" in details["resolvedPackages"]
    log = run.read_log("user_logs/std_log.txt").decode()
    assert f"python {sys.executable} var set" in log
    build_log = run.read_log("system_logs/environment_build.txt").decode()
    assert "User-managed environment" in build_log
