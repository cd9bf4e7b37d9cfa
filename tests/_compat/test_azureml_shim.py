"""v1 module names inside runs: an unmodified v1 script's ``azureml.*`` imports are trainyard's
modules (the shim on the run's ``PYTHONPATH``), and only there — not in the submitting process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from trainyard._compat import SHIM_DIR, with_shim
from trainyard.core import Experiment, ScriptRunConfig, Workspace
from trainyard.testing.fixtures import unique_name

V1_SCRIPT = """
    from azureml.core.run import Run
    from azureml.core import Run as CoreRun, Model, Workspace
    from azureml.core.model import Model as ModelModel
    from azureml.core.runconfig import CondaDependencies, DockerConfiguration
    from azureml.train.hyperdrive.parameter_expressions import choice
    import trainyard.core
    import trainyard.core.run

    assert Run is CoreRun is trainyard.core.Run
    assert Model is ModelModel is trainyard.core.Model
    import azureml.core.run
    assert azureml.core.run is trainyard.core.run
    assert trainyard.core.run.__spec__.name == "trainyard.core.run"
    try:
        import azureml.core.authentication
    except ModuleNotFoundError as err:
        print("missing:", err)
    run = Run.get_context()
    run.log("v1_imports", 1)
    print("v1 script done", run.id)
"""


def test_v1_imports_in_a_submitted_run(tmp_path: Path) -> None:
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent(V1_SCRIPT), encoding="utf-8")
    run = Experiment(ws, "v1-imports").submit(ScriptRunConfig(str(src), "train.py"))
    run.wait_for_completion(raise_on_error=False)
    log = run.read_log("user_logs/std_log.txt").decode()
    assert run.get_status() == "Completed", log
    assert run.get_metrics()["v1_imports"] == 1
    assert "trainyard has no 'trainyard.core.authentication'" in log


def test_shim_is_not_on_the_submitting_side() -> None:
    assert str(SHIM_DIR) not in sys.path
    out = subprocess.run(
        [sys.executable, "-c", "import azureml.core"], capture_output=True, text=True, check=False
    )
    assert out.returncode != 0  # this interpreter has no azureml: the shim lives in runs only


def test_with_shim_puts_it_first_once() -> None:
    assert with_shim(None) == str(SHIM_DIR)
    assert with_shim(f"/a:{SHIM_DIR}:/b") == f"{SHIM_DIR}:/a:/b"
