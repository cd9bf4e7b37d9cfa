"""A follower node's interpreter and variables for a multi-node run (``ray/nodeenv.py``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from trainyard._execution.ray.nodeenv import build_log_name, node_python, retarget
from trainyard.core import Environment
from trainyard.core.conda_dependencies import CondaDependencies


def test_the_leaders_environment_prefix_is_moved_to_the_nodes_own() -> None:
    env = {
        "VIRTUAL_ENV": "/a/cache/env1",
        "PATH": os.pathsep.join(["/a/cache/env1/bin", "/usr/bin"]),
        "OTHER": "/a/cache/env1/bin",
    }
    moved = retarget(env, "/a/cache/env1/bin/python", "/b/cache/env1/bin/python")
    assert moved["VIRTUAL_ENV"] == "/b/cache/env1"
    assert moved["PATH"].split(os.pathsep) == ["/b/cache/env1/bin", "/usr/bin"]
    assert moved["OTHER"] == "/a/cache/env1/bin"  # only the variables that name the environment
    assert retarget(env, "/x/bin/python", "/x/bin/python") == env


def test_a_user_managed_environment_is_this_nodes_interpreter(tmp_path: Path) -> None:
    log = tmp_path / build_log_name(1)
    assert build_log_name(1) == "system_logs/environment_build_node_1.txt"
    python = node_python({"python": {"userManagedDependencies": True}}, (), {}, log)
    assert Path(python).resolve() == Path(sys.executable).resolve()


@pytest.mark.slow
def test_a_built_environment_comes_from_the_nodes_own_cache(tmp_path: Path) -> None:
    env = Environment("node-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    environment = env.to_dict()
    variables = {**os.environ, "TRAINYARD_ENV_CACHE": str(tmp_path / "node-cache")}
    log = tmp_path / "live" / build_log_name(2)
    python = node_python(environment, (), variables, log)
    assert Path(python).is_relative_to(tmp_path / "node-cache")
    assert node_python(environment, (), variables, log) == python  # the second time: reused
    assert "reused from the cache" in log.read_text()
