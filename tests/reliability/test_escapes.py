"""A run's files come from its working copy only, and registering a model never hangs on a file
that is not a regular one (issue: nothing lost, nobody in — item 2)."""

from __future__ import annotations

import os
import textwrap
import threading
from pathlib import Path

import pytest

from trainyard.core import Experiment, ScriptRunConfig, Workspace
from trainyard.core.model import Model
from trainyard.exceptions import ModelPathNotFoundException

ESCAPE = """
import os, shutil, sys
secret = sys.argv[1]
shutil.rmtree("outputs"); os.symlink(secret, "outputs")        # ./outputs → a folder elsewhere
shutil.rmtree("logs"); os.symlink(secret, "logs")              # ./logs → the same
print("replaced", flush=True)
"""

LINKS = """
import os, sys
secret = sys.argv[1]
os.makedirs("outputs/sub", exist_ok=True)
open("outputs/mine.txt", "w").write("mine")
os.symlink(os.path.join(secret, "key.txt"), "outputs/stolen.txt")   # a file link out
os.symlink(secret, "outputs/sub/dir")                               # a folder link out
open("outputs/inside.txt", "w").write("inside")
os.symlink("inside.txt", "outputs/alias.txt")                       # a link that stays inside
"""


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    folder = tmp_path / "secret"
    folder.mkdir()
    (folder / "key.txt").write_text("do not upload")
    return folder


def _run(tmp_path: Path, script: str, secret: Path) -> list[str]:
    ws = Workspace.create("escapes", path=tmp_path / "ws", exist_ok=True)
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(textwrap.dedent(script))
    run = Experiment(ws, "escape").submit(
        ScriptRunConfig(str(src), "train.py", arguments=[str(secret)])
    )
    assert run.wait_for_completion()["status"] == "Completed"
    return list(run.get_file_names())


def test_outputs_and_logs_replaced_by_symlinks_upload_nothing_from_outside(
    tmp_path: Path, secret: Path
) -> None:
    names = _run(tmp_path, ESCAPE, secret)
    assert not [n for n in names if n.endswith("key.txt")], names


def test_symlinks_inside_outputs_never_reach_outside(tmp_path: Path, secret: Path) -> None:
    names = _run(tmp_path, LINKS, secret)
    assert "outputs/mine.txt" in names and "outputs/inside.txt" in names
    assert "outputs/alias.txt" in names  # stays inside the working copy: kept
    assert not [n for n in names if "stolen" in n or "key.txt" in n], names


def _register_within(seconds: float, **kwargs: object) -> BaseException | None:
    """Register in a thread; a hang is a failure (the FIFO would block forever)."""
    outcome: list[BaseException | None] = []

    def go() -> None:
        try:
            Model.register(**kwargs)  # type: ignore[arg-type]
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    assert outcome, "Model.register hung on a file that is not a regular one"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_registering_a_folder_with_a_fifo_fails_fast_and_typed(tmp_path: Path) -> None:
    ws = Workspace.create("fifo", path=tmp_path / "ws")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\0" * 16)
    os.mkfifo(model / "pipe")
    err = _register_within(20, workspace=ws, model_path=str(model), model_name="m")
    assert isinstance(err, ModelPathNotFoundException) and "pipe" in err.message
    err = _register_within(20, workspace=ws, model_path=str(model / "pipe"), model_name="m")
    assert isinstance(err, ModelPathNotFoundException) and "FIFO" in err.message
    assert Model.list(ws) == []  # nothing half-registered
