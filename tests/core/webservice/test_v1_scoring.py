"""An unmodified v1 scoring script: ``from azureml.core.model import Model`` and
``Model.get_model_path(name)`` in ``init()`` find the deployed model (aml-reference §9.6), with one
model (``AZUREML_MODEL_DIR`` at ``<root>/<name>/<version>``) and with several (at the root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainyard.core import Workspace
from trainyard.core.model import InferenceConfig, Model

from .conftest import current_interpreter, register_k, write_app

V1_SCORE_PY = """
    import json

    from azureml.core.model import Model
    from azureml.core import Run

    k = None


    def init():
        global k
        path = Model.get_model_path("k-model")
        print("model path:", path, flush=True)
        k = int(open(path).read())


    def run(raw_data):
        return [x * k for x in json.loads(raw_data)["data"]]
"""


@pytest.fixture(scope="module")
def v1_inference(tmp_path_factory: pytest.TempPathFactory) -> InferenceConfig:
    app = write_app(tmp_path_factory.mktemp("v1app"), {"score.py": V1_SCORE_PY})
    return InferenceConfig(
        entry_script="score.py", source_directory=str(app), environment=current_interpreter()
    )


def test_v1_scoring_script_one_model(
    ws: Workspace, model7: Model, v1_inference: InferenceConfig
) -> None:
    svc = Model.deploy(ws, "v1-one", [model7], v1_inference)
    svc.wait_for_deployment()
    assert svc.state == "Healthy", svc.get_logs()
    assert svc.run('{"data": [1, 2]}') == [7, 14]
    assert "trainyard-models/k-model/1/k.txt" in svc.get_logs()
    svc.delete()


def test_v1_scoring_script_several_models(
    ws: Workspace, model7: Model, v1_inference: InferenceConfig, tmp_path: Path
) -> None:
    other = register_k(ws, tmp_path / "o", 3, name="other-model")
    svc = Model.deploy(ws, "v1-two", [model7, other], v1_inference)
    svc.wait_for_deployment()
    assert svc.state == "Healthy", svc.get_logs()
    assert svc.run('{"data": [1]}') == [7]
    svc.delete()
