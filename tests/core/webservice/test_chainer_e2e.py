"""The notebook's deployment cells on a real Chainer model (slow: builds Chainer environments).

A short Chainer run (1 epoch on 2,000 images) is submitted with the estimator; its model is
registered and deployed with the example's ``chainer_score.py``, the run's environment and the
notebook's ACI configuration (1 core, 1 GB, auth on); digits are scored over HTTP by index and by
pixels, and the answers must match the model's accuracy on the same digits.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from trainyard._data.mnist import load_split
from trainyard.core import Experiment, Workspace
from trainyard.core.model import InferenceConfig, Model
from trainyard.core.script_run import ScriptRun
from trainyard.core.webservice import AciWebservice, Webservice
from trainyard.testing.fixtures import unique_name
from trainyard.train.dnn import Chainer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
SOURCE = REPO / "examples" / "chainer-mnist"
MNIST = REPO / "data" / "mnist"


def shared_env_cache(factory: pytest.TempPathFactory) -> Path:
    """The session's environment cache (the folder ``tests/train/test_dnn_e2e.py`` uses)."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    cache = base / "trainyard-env-cache"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, ScriptRun]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINYARD_ENV_CACHE", str(shared_env_cache(tmp_path_factory)))
        ws = Workspace.create(unique_name("ws"), path=tmp_path_factory.mktemp("chainer") / "ws")
        est = Chainer(
            source_directory=str(SOURCE),
            compute_target="local",
            entry_script="chainer_mnist.py",
            script_params={
                "--epochs": 1,
                "--batchsize": 100,
                "--output_dir": "./outputs",
                "--train-slice": 2000,
                "--test-slice": 500,
            },
            environment_variables={"OMP_NUM_THREADS": "1", "TRAINYARD_MNIST_DIR": str(MNIST)},
        )
        run = Experiment(ws, "chainer-mnist").submit(est)
        assert isinstance(run, ScriptRun)
        run.wait_for_completion(show_output=False, raise_on_error=False)
        assert run.get_status() == "Completed", run.get_details().get("error")
        yield ws, run
        for service in Webservice.list(ws):
            service.delete()


def test_notebook_deployment_of_the_chainer_model(
    trained: tuple[Workspace, ScriptRun], capsys: pytest.CaptureFixture[str]
) -> None:
    ws, run = trained
    model = run.register_model(model_name="chainer-dnn-mnist", model_path="outputs/model.npz")
    inference_config = InferenceConfig(
        entry_script="chainer_score.py",
        source_directory=str(SOURCE),
        environment=run.get_environment(),
    )
    aciconfig = AciWebservice.deploy_configuration(
        cpu_cores=1,
        memory_gb=1,
        auth_enabled=True,
        tags={"name": "mnist", "framework": "Chainer"},
        description="Chainer DNN with MNIST",
    )
    service = Model.deploy(
        workspace=ws,
        name="chainer-mnist-1",
        models=[model],
        inference_config=inference_config,
        deployment_config=aciconfig,
    )
    service.wait_for_deployment(True)
    assert "trainyard-deploy: healthy" in capsys.readouterr().out
    assert service.state == "Healthy"
    assert ws.webservices["chainer-mnist-1"].scoring_uri == service.scoring_uri
    details = service.serialize()
    assert details["python"] != os.path.realpath(sys.executable)  # a built environment
    assert details["resourceLimits"]["rlimitDataBytes"] == 1024**3

    key1, _ = service.get_keys()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + key1}
    images, labels = load_split("test", str(MNIST))
    resp = httpx.post(service.scoring_uri or "", content='{"data": [3]}', headers=headers)
    assert resp.status_code == 200 and len(resp.text) == 3 and resp.text[1].isdigit()

    with httpx.Client(timeout=60) as client:
        by_index: list[int] = []
        for start in range(0, 500, 100):
            r = client.post(
                service.scoring_uri or "",
                content=json.dumps({"data": list(range(start, start + 100))}),
                headers=headers,
            )
            assert r.status_code == 200, r.text
            by_index += r.json()
        pixels = images[:16].astype(float).tolist()
        by_pixels = client.post(
            service.scoring_uri or "", content=json.dumps({"data": pixels}), headers=headers
        ).json()
        image_28 = client.post(
            service.scoring_uri or "",
            content=json.dumps({"data": images[5].reshape(28, 28).astype(float).tolist()}),
            headers=headers,
        ).json()
        bad = client.post(service.scoring_uri or "", content='{"data": [10000]}', headers=headers)
    # The run validated on the same first 500 test digits in batches of 100 (equal batches: the
    # mean of batch accuracies is the accuracy), so the served model must score exactly that.
    accuracy = float(np.mean(np.asarray(by_index) == labels[:500]))
    metric = run.get_metrics()["Accuracy"]
    assert accuracy == pytest.approx(metric[-1] if isinstance(metric, list) else metric, abs=1e-6)
    assert accuracy > 0.2  # learnt something (chance is 0.1)
    assert by_pixels == by_index[:16]
    assert image_28 == [by_index[5]]
    assert bad.status_code == 500 and "ValueError" in bad.json()["error"]
    assert service.run(json.dumps({"data": [3]})) == [by_index[3]]
    assert "init() completed" in service.get_logs()
    service.delete()
    assert "chainer-mnist-1" not in ws.webservices
