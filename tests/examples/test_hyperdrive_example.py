"""The HyperDrive example (``examples/hyperdrive-chainer-mnist/sweep.py --quick``) run as a user runs it.

Eight Chainer children (1-4 epochs on a slice of MNIST, two at a time) in a uv-built environment
from the session's shared cache (see ``tests/train/test_dnn_e2e.py``); then the sweep, its children
and the registered model are checked through the public API.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trainyard.core import Model, Run, Workspace
from trainyard.train.hyperdrive import HyperDriveRun

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "examples" / "hyperdrive-chainer-mnist" / "sweep.py"


def shared_env_cache(factory: pytest.TempPathFactory) -> Path:
    """The session's environment cache (the same folder ``test_dnn_e2e.py`` uses)."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    cache = base / "trainyard-env-cache"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def test_quick_sweep_completes_and_registers_the_best_model(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    workspace = tmp_path / "hd-ws"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINYARD_RUN", "AZUREML_"))}
    env.update(
        TRAINYARD_ENV_CACHE=str(shared_env_cache(tmp_path_factory)), NO_COLOR="1", TERM="dumb"
    )
    proc = subprocess.run(
        [sys.executable, str(SWEEP), "--quick", "--workspace", str(workspace)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 0, (
        f"sweep exited {proc.returncode}\n{out[-4000:]}\n{proc.stderr[-4000:]}"
    )

    submitted = re.search(r"Submitted HyperDrive run (HD_\w+)", out)
    assert submitted, out
    ws = Workspace(path=workspace)
    hd = Run.get(ws, submitted.group(1))
    assert isinstance(hd, HyperDriveRun) and hd.type == "hyperdrive"
    assert hd.get_status() == "Completed"
    assert "Status: Completed" in out  # wait_for_completion's Execution Summary

    # The notebook's config, with --quick's epochs; eight distinct points of the 2 x 4 space.
    tags = hd.get_tags()
    assert json.loads(tags["policy_config"])["name"] == "Bandit"
    assert (tags["max_total_jobs"], tags["max_concurrent_jobs"]) == ("8", "2")
    children = list(hd.get_children())
    assert sorted(c.id for c in children) == sorted(f"{hd.id}_{i}" for i in range(8))
    points = {tuple(sorted(json.loads(v).items())) for v in hd.get_hyperparameters().values()}
    assert len(points) == 8
    for child in children:
        assert child.get_status() in ("Completed", "Canceled"), child.id
        args = child.get_details()["runDefinition"]["arguments"]
        assert args.count("--epochs") == 1 and args.count("--batchsize") == 1  # duplicates dropped

    best = hd.get_best_run_by_primary_metric()
    assert best is not None and best.parent == hd
    ranked = hd.get_children_sorted_by_primary_metric()
    assert ranked[0]["run_id"] == best.id
    assert 0.5 < ranked[0]["best_primary_metric"] <= 1.0
    assert f"Best run: {best.id}" in out

    model = Model(ws, "chainer-dnn-mnist")
    assert model.version == 1 and model.run_id == best.id
    assert "Registered model chainer-dnn-mnist:1" in out
    assert "outputs/model.npz" in best.get_file_names()
