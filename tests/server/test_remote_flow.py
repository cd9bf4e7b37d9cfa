"""The README demo's flow against a live server on PostgreSQL, with v1 code unchanged: train on the
server's compute, sweep there, register the best run's model, deploy it with key auth (the service
runs on the deploying machine, its record on the server), score it over HTTP, delete it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import httpx

from trainyard.core import Environment, Experiment, ScriptRunConfig, Workspace
from trainyard.core.model import InferenceConfig, Model
from trainyard.core.webservice import AciWebservice
from trainyard.testing.fixtures import unique_name
from trainyard.testing.server import LiveServer
from trainyard.train.hyperdrive import (
    GridParameterSampling,
    HyperDriveConfig,
    PrimaryMetricGoal,
    choice,
)

TRAIN = """
import argparse, os
from trainyard.core import Run
p = argparse.ArgumentParser(); p.add_argument("--k", type=int, default=3)
k = p.parse_args().k
run = Run.get_context()
run.log("score", -(k - 4) ** 2)
os.makedirs("outputs", exist_ok=True)
open("outputs/k.txt", "w").write(str(k))
"""

SCORE = """
import json, os
k = None
def init():
    global k
    k = int(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "k.txt")).read())
def run(raw_data):
    return [x * k for x in json.loads(raw_data)["data"]]
"""


def test_train_sweep_register_deploy_on_a_postgres_server(
    postgres_server: LiveServer, tmp_path: Path
) -> None:
    name = unique_name("flow")
    ws = Workspace.create(name, server=postgres_server.url, token=postgres_server.admin_token)
    assert ws.context.remote
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(TRAIN)
    (src / "score.py").write_text(textwrap.dedent(SCORE))
    exp = Experiment(ws, "flow")

    single = exp.submit(ScriptRunConfig(str(src), "train.py", arguments=["--k", "3"]))
    assert single.wait_for_completion()["status"] == "Completed"
    assert single.get_metrics()["score"] == -1

    sweep = exp.submit(
        HyperDriveConfig(
            run_config=ScriptRunConfig(str(src), "train.py"),
            hyperparameter_sampling=GridParameterSampling({"--k": choice(2, 4, 6)}),
            primary_metric_name="score",
            primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
            max_total_runs=3,
            max_concurrent_runs=2,
        )
    )
    assert sweep.wait_for_completion()["status"] == "Completed"
    best = sweep.get_best_run_by_primary_metric()  # type: ignore[attr-defined]
    assert best.get_metrics()["score"] == 0

    model = best.register_model("k-model", "outputs/k.txt")
    assert (model.name, model.version) == ("k-model", 1)
    assert [m.name for m in Model.list(ws)] == ["k-model"]

    env = Environment("current-python")
    env.python.user_managed_dependencies = True
    service = Model.deploy(
        ws,
        unique_name("svc").replace("_", "-"),
        [model],
        InferenceConfig(entry_script="score.py", source_directory=str(src), environment=env),
        AciWebservice.deploy_configuration(auth_enabled=True),
    )
    try:
        service.wait_for_deployment()
        assert service.state == "Healthy", service.get_logs()
        key, _ = service.get_keys()
        # Another client of the workspace sees the service's record on the server.
        other = Workspace.connect(postgres_server.url, name, token=postgres_server.admin_token)
        assert other.webservices[service.name].scoring_uri == service.scoring_uri
        with httpx.Client(timeout=30) as client:
            answer = client.post(
                str(service.scoring_uri),
                content=json.dumps({"data": [1, 2]}),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            denied = client.post(str(service.scoring_uri), content=json.dumps({"data": [1]}))
        assert answer.status_code == 200 and answer.json() == [4, 8]
        assert denied.status_code == 401
    finally:
        service.delete()
    assert (
        service.name
        not in Workspace.connect(
            postgres_server.url, name, token=postgres_server.admin_token
        ).webservices
    )
