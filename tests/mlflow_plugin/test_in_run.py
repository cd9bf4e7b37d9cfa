"""Inside a submitted run, an unmodified MLflow-instrumented script logs into its trainyard run:
the run's environment points MLflow at the workspace and the run (issue 16, item 1)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from trainyard.core import Environment, Experiment, ScriptRunConfig, Workspace

SCRIPT = """
import mlflow

with mlflow.start_run():                     # resumes the trainyard run (MLFLOW_RUN_ID)
    mlflow.log_param("lr", 0.1)
    mlflow.set_tag("stage", "train")
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"acc": 0.9, "f1": 0.8})
    mlflow.log_dict({"layers": 3}, "config/model.json")
    print("RUN", mlflow.active_run().info.run_id, flush=True)
"""


def test_an_mlflow_script_logs_into_its_trainyard_run(
    mlflow_python: tuple[str, Path], tmp_path: Path
) -> None:
    _, python = mlflow_python
    ws = Workspace.create("mlflow-in-run", path=tmp_path / "ws")
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent(SCRIPT))
    env = Environment("mlflow-venv")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = str(python)
    run = Experiment(ws, "mlflow").submit(ScriptRunConfig(str(src), "train.py", environment=env))
    details = run.wait_for_completion()
    log = run.read_log("user_logs/std_log.txt").decode()
    assert details["status"] == "Completed", log
    assert f"RUN {run.id}" in log  # mlflow.start_run() resumed the trainyard run
    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert metrics["acc"] == 0.9 and metrics["f1"] == 0.8
    assert run.get_tags()["stage"] == "train"
    info = run.get_details()
    assert "0.1" in {**info.get("properties", {}), **run.get_tags()}.values()
    assert any(n.endswith("config/model.json") for n in run.get_file_names())


def test_the_runtime_entry_points_match_the_package_metadata() -> None:
    import tomllib

    from trainyard._execution.environments.uv import MLFLOW_ENTRY_POINTS

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    declared = {
        group: points
        for group, points in pyproject["project"]["entry-points"].items()
        if group.startswith("mlflow.")
    }
    parsed: dict[str, dict[str, str]] = {}
    group = ""
    for line in MLFLOW_ENTRY_POINTS.splitlines():
        if line.startswith("["):
            group = line.strip("[]")
            parsed[group] = {}
        elif "=" in line:
            name, _, target = line.partition("=")
            parsed[group][name.strip()] = target.strip()
    assert parsed == declared
