"""Inside a submitted trainyard run, ``mlflow.start_run()`` resumes that run (``MLFLOW_RUN_ID``)."""

from __future__ import annotations

import pytest

from trainyard.core import Run

from .conftest import Client

pytestmark = pytest.mark.slow

TRAIN = """
import os
# What a trainyard supervisor will set for the plugin (emulated here from trainyard's own variables).
os.environ["MLFLOW_TRACKING_URI"] = "trainyard://" + os.environ["TRAINYARD_WORKSPACE_PATH"]
os.environ["MLFLOW_RUN_ID"] = os.environ["TRAINYARD_RUN_ID"]
os.environ["MLFLOW_EXPERIMENT_ID"] = os.environ["TRAINYARD_EXPERIMENT_ID_FOR_TEST"]
import mlflow
with mlflow.start_run() as run:
    assert run.info.run_id == os.environ["TRAINYARD_RUN_ID"], run.info.run_id
    mlflow.log_param("epochs", 3)
    for i in range(3):
        mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    os.makedirs("outputs", exist_ok=True)
    open("outputs/model.txt", "w").write("weights")
    mlflow.log_artifact("outputs/model.txt", artifact_path="mlflow-copy")
print("status while running:", mlflow.get_run(run.info.run_id).info.status)
"""


def test_mlflow_run_id_resumes_the_submitted_run(client: Client) -> None:
    (client.cwd / "src").mkdir()
    (client.cwd / "src" / "train.py").write_text(TRAIN)
    out = client.run(
        """
        from trainyard.core import Experiment, ScriptRunConfig, Workspace
        ws = Workspace(path=os.environ["WS_PATH"])
        exp = Experiment(ws, "submitted")
        os.environ["TRAINYARD_EXPERIMENT_ID_FOR_TEST"] = str(exp.id)
        run = exp.submit(ScriptRunConfig(source_directory="src", script="train.py"))
        run.wait_for_completion(raise_on_error=False)
        c = mlflow.MlflowClient()
        got = c.get_run(run.id)
        emit({"id": run.id, "status": run.get_status(), "mlflow_status": got.info.status,
              "params": got.data.params,
              "hist": [[m.value, m.step] for m in c.get_metric_history(run.id, "loss")],
              "log": open(run.download_file("user_logs/std_log.txt", "log.txt")).read()})
        """,
        env=client.env(WS_PATH=str(client.workspace.path)),
    )
    assert out["status"] == "Completed", out["log"]
    assert (
        "status while running: RUNNING" in out["log"]
    )  # end_run flushed, the supervisor finished it
    assert out["mlflow_status"] == "FINISHED" and out["params"]["epochs"] == "3"
    # every property is a param, trainyard's own included (one record, two views)
    assert set(out["params"]) == {"epochs", "ContentSnapshotId"}
    assert out["hist"] == [[1.0, 0], [0.5, 1], [1 / 3, 2]]
    run = Run.get(client.workspace, out["id"])
    assert run.get_metrics()["loss"] == [1.0, 0.5, 1 / 3]
    assert {"outputs/model.txt", "mlflow-copy/model.txt"} <= set(run.get_file_names())
