"""The README demo (``examples/demo.py``) run as a user runs it, twice on the same workspace.

One epoch on the full MNIST set with the Chainer estimator in a uv-built environment (the cache is
the session's shared one, see ``tests/train/test_dnn_e2e.py``). The first run registers version 1
and loads it in a fresh process; the second run on the same workspace works again and registers
version 2.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trainyard.core import Model, Workspace

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo.py"


def shared_env_cache(factory: pytest.TempPathFactory) -> Path:
    """The session's environment cache (the same folder ``test_dnn_e2e.py`` uses)."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    cache = base / "trainyard-env-cache"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def run_demo(workspace: Path, cache: Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINYARD_RUN", "AZUREML_"))}
    env.update(TRAINYARD_ENV_CACHE=str(cache), COLUMNS="400", NO_COLOR="1", TERM="dumb")
    proc = subprocess.run(
        [sys.executable, str(DEMO), "--epochs", "1", "--workspace", str(workspace)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"demo exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


def test_demo_runs_twice_on_one_workspace(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    cache = shared_env_cache(tmp_path_factory)
    workspace = tmp_path / "demo-ws"

    first = run_demo(workspace, cache, tmp_path)
    assert "Uploaded 5 files to datastore workspaceblobstore" in first
    assert re.search(
        r"^epoch:01 train_loss:\d\.\d{4} val_loss:\d\.\d{4} val_accuracy:\d\.\d{4}$", first, re.M
    )
    for metric in ("Batch size", "Epochs", "Accuracy", "Loss"):
        assert metric in first
    registered = re.search(r"Registered chainer-dnn-mnist:(\d+) from run (\S+);", first)
    assert registered and registered.group(1) == "1", first
    accuracy = re.search(r"Fresh process: test accuracy (\d\.\d{4}) on 10000 digits", first)
    assert accuracy, first
    assert float(accuracy.group(1)) > 0.85  # one epoch of the v1 MLP reaches ~0.92
    assert re.search(r"test digit 0 → \[\d\]", first)
    assert "Latest model: chainer-dnn-mnist:1" in first

    second = run_demo(workspace, cache, tmp_path)
    registered2 = re.search(r"Registered chainer-dnn-mnist:(\d+) from run (\S+);", second)
    assert registered2 and registered2.group(1) == "2", second
    assert registered2.group(2) != registered.group(2)  # a new run
    assert "Fresh process: test accuracy" in second
    assert "Latest model: chainer-dnn-mnist:2" in second
    assert re.search(r"Environment: cached", second)  # the second run reuses the built environment

    ws = Workspace(path=workspace)
    assert [m.version for m in Model.list(ws, name="chainer-dnn-mnist")] == [2, 1]
    assert Model(ws, "chainer-dnn-mnist", version=1).run_id == registered.group(2)
