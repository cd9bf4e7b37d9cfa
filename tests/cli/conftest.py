"""Fixtures for the ``trainyard`` command tests: a real populated workspace and a runner that
invokes the installed console script (``.venv/bin/trainyard``) as a subprocess."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from trainyard.core.experiment import Experiment
from trainyard.core.workspace import Workspace

CliRun = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Populated:
    """What the ``populated`` fixture created, for assertions."""

    ws_path: Path
    project: Path  # holds .trainyard/config.json pointing at ws_path
    done: str  # Completed run of "train" with metrics, tags, properties, files
    failed: str  # Failed run of "train"
    running: str  # Running run of "eval"
    child: str  # Completed child of ``done``
    archived_run: str  # run of the archived experiment "old"


@pytest.fixture(scope="session")
def trainyard_exe() -> Path:
    """The installed console script next to the interpreter running the tests."""
    exe = Path(sys.executable).parent / "trainyard"
    assert exe.is_file(), f"console script not installed at {exe}; run pip install -e ."
    return exe


@pytest.fixture(scope="session")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    """A workspace with three experiments, runs in several statuses, metrics (NaN/inf
    included), tags, properties and files, all created through the public API."""
    root = tmp_path_factory.mktemp("cli-ws")
    ws = Workspace.create("cliws", path=root / "ws")
    project = root / "project"
    project.mkdir()
    ws.write_config(project)

    train = Experiment(ws, "train")
    done = train.start_logging(display_name="first")
    for step, acc in enumerate([0.5, 0.75, 0.9], start=1):
        done.log("acc", acc, step=step)
    for loss in [2.0, float("nan"), 0.25]:
        done.log("loss", loss)
    done.log("lr", 0.01)
    done.log("best", float("inf"))
    done.log("note", "hello")
    done.log_row("table", epoch=1, score=0.5)
    done.set_tags({"team": "vision", "size": "small"})
    done.add_properties({"algo": "sgd"})
    done.upload_file("outputs/model.txt", io.BytesIO(b"model-bytes"))
    done.upload_file("outputs/sub/weights.bin", io.BytesIO(b"\x00\x01\x02"))
    done.upload_file("logs/train.log", io.BytesIO(b"epoch 1\n"))
    child = done.child_run(name="trial")
    child.log("acc", 0.42)
    child.complete()
    done.complete()

    failed = train.start_logging()
    failed.fail(error_details="boom: out of memory")

    running = Experiment(ws, "eval").start_logging()
    running.log("seen", 3)
    running.flush()

    old = Experiment(ws, "old")
    archived_run = old.start_logging()
    archived_run.complete()
    old.archive()
    return Populated(
        ws_path=ws.path,
        project=project,
        done=done.id,
        failed=failed.id,
        running=running.id,
        child=child.id,
        archived_run=archived_run.id,
    )


@pytest.fixture
def cli(trainyard_exe: Path, tmp_path: Path) -> CliRun:
    """``cli(*args, cwd=..., env={...})`` runs the console script and returns the finished process.

    ``TRAINYARD_HOME`` is a fresh folder per test, ``TRAINYARD_WORKSPACE`` is unset unless given,
    and ``COLUMNS`` is fixed so tables never cut ids.
    """
    home = tmp_path / "home"
    home.mkdir()

    def run(
        *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if k != "TRAINYARD_WORKSPACE"}
        full_env.update({"TRAINYARD_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"})
        full_env.update(env or {})
        return subprocess.run(
            [str(trainyard_exe), *args],
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def _assert_clean_error(
    proc: subprocess.CompletedProcess[str], code: str, args: Sequence[str] = ()
) -> None:
    assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
    assert f"Error [{code}]: " in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.fixture
def clean_error() -> Callable[..., None]:
    """``clean_error(proc, CODE)``: exit status 1, ``Error [CODE]: …`` on stderr, no traceback."""
    return _assert_clean_error
