"""Real MLflow clients in their own virtual environments, driving a real embedded workspace.

Each pinned MLflow gets a venv at ``<repo>/.venv-mlflow-<pin>`` (ignored by git), built once and
reused across sessions: ``mlflow``, scikit-learn and matplotlib from the index, trainyard installed
editable so MLflow finds the plugin through its entry points. A stamp of ``pyproject.toml`` and the
pins decides when trainyard is reinstalled (entry points live in the install's metadata). A file
lock keeps two xdist workers from building the same venv at once.

Scripts run in subprocesses with ``MLFLOW_TRACKING_URI=trainyard:///<workspace>`` and print one JSON
object as their last line of output; the tests then read the same records through trainyard.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import textwrap
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainyard.core import Workspace

REPO = Path(__file__).resolve().parents[2]
#: pin label → requirement. 3.18.0 pins an mlflow-skinny the index lacks, hence 3.17.2.
PINS = {"3.17.2": "mlflow==3.17.2", "2.22": "mlflow==2.22.*"}
EXTRA = ["scikit-learn", "matplotlib"]


def _pip(python: Path, *args: str) -> None:
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"pip install {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )


def ensure_mlflow_venv(label: str) -> Path:
    """The python of the venv for ``PINS[label]``, created or refreshed as needed."""
    folder = REPO / f".venv-mlflow-{label}"
    python = folder / "bin" / "python"
    want = hashlib.sha256(
        (REPO / "pyproject.toml").read_bytes() + PINS[label].encode() + " ".join(EXTRA).encode()
    ).hexdigest()[:16]
    stamp = folder / ".trainyard-stamp"
    folder.mkdir(exist_ok=True)
    with open(folder / ".build-lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == want and python.exists():
            return python
        if not python.exists():
            venv.create(folder, with_pip=True)
        probe = subprocess.run(
            [str(python), "-c", "import mlflow, sklearn, matplotlib; print(mlflow.__version__)"],
            capture_output=True,
            text=True,
        )
        if probe.returncode != 0 or not probe.stdout.strip().startswith(label):
            _pip(python, PINS[label], *EXTRA)
        _pip(python, "-e", str(REPO))  # (re)registers the entry points
        stamp.write_text(want)
    return python


@dataclass
class Client:
    """Runs MLflow scripts in one pinned venv against one workspace."""

    python: Path
    label: str
    workspace: Workspace
    cwd: Path

    @property
    def major(self) -> int:
        return int(self.label.split(".")[0])

    @property
    def uri(self) -> str:
        return f"trainyard://{self.workspace.path}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "TRAINYARD_RUN", "AZUREML_"))
        }
        env.update(
            MLFLOW_TRACKING_URI=self.uri,
            MLFLOW_DISABLE_TELEMETRY="true",
            DO_NOT_TRACK="true",
            PYTHONUNBUFFERED="1",
            GIT_PYTHON_REFRESH="quiet",
        )
        env.pop("TRAINYARD_WORKSPACE_PATH", None)
        env.update(extra)
        return env

    def run(self, code: str, *, env: dict[str, str] | None = None, check: bool = True) -> Any:
        """Run ``code`` (dedented) and return the JSON object on its last output line."""
        script = self.cwd / "script.py"
        script.write_text(PRELUDE + textwrap.dedent(code))
        proc = subprocess.run(
            [str(self.python), str(script)],
            cwd=self.cwd,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"MLflow {self.label} script failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
            )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            pytest.fail(f"script printed no JSON:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return json.loads(lines[-1])


#: Helpers every script gets: ``emit(obj)`` prints the result; ``code_of(fn)`` runs ``fn`` and
#: returns the MLflow error code it raised (or None).
PRELUDE = '''
import json, math, os, sys
import mlflow
from mlflow.exceptions import MlflowException
MAJOR = int(mlflow.__version__.split(".")[0])

def emit(obj):
    print(json.dumps(obj, default=str))

def code_of(fn):
    try:
        fn()
    except MlflowException as err:
        return err.error_code
    return None

def plain(x):
    """JSON-safe float: NaN and infinities as strings, so they compare exactly."""
    return x if math.isfinite(x) else repr(x)
'''


@pytest.fixture(scope="session", params=sorted(PINS), ids=lambda p: f"mlflow-{p}")
def mlflow_python(request: pytest.FixtureRequest) -> tuple[str, Path]:
    return request.param, ensure_mlflow_venv(request.param)


@pytest.fixture
def client(mlflow_python: tuple[str, Path], tmp_path: Path) -> Client:
    label, python = mlflow_python
    ws = Workspace.create("mlflowws", path=tmp_path / "ws")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return Client(python=python, label=label, workspace=ws, cwd=cwd)
