"""A full disk while storing a snapshot or registering a model gives a typed error that says so,
and leaves nothing half-stored (issue: nothing lost, nobody in — item 9)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainyard.core import Experiment, ScriptRunConfig, Workspace
from trainyard.core.model import Model
from trainyard.exceptions import TrainyardError


def _big(path: Path, mib: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(os.urandom(mib * 1024 * 1024))
    return path


def test_a_snapshot_on_a_full_disk_is_a_typed_error_and_no_run(
    small_disk: Path, tmp_path: Path
) -> None:
    ws = Workspace.create("full-snap", path=small_disk / "ws")
    src = tmp_path / "src"
    (src).mkdir()
    (src / "train.py").write_text("print('hi')\n")
    _big(src / "data.bin", 60)  # more than the 48 MiB disk holds
    exp = Experiment(ws, "full")
    with pytest.raises(TrainyardError, match=r"(?i)space|full"):
        exp.submit(ScriptRunConfig(str(src), "train.py"))
    assert list(exp.get_runs()) == []


def test_registering_a_model_on_a_full_disk_is_a_typed_error_and_no_version(
    small_disk: Path, tmp_path: Path
) -> None:
    ws = Workspace.create("full-model", path=small_disk / "ws")
    weights = _big(tmp_path / "model.bin", 60)
    with pytest.raises(TrainyardError, match=r"(?i)space|full"):
        Model.register(ws, str(weights), "big")
    assert Model.list(ws) == []
    small = _big(tmp_path / "small.bin", 1)
    assert Model.register(ws, str(small), "small").version == 1  # the store still works
