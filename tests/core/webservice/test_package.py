"""``Model.package``: a self-contained folder whose ``run.sh`` serves the models."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from trainyard.core import Workspace
from trainyard.core.model import InferenceConfig, Model
from trainyard.core.webservice import ModelPackage
from trainyard.exceptions import WebserviceException

from .conftest import register_k


def test_package_folder_layout(
    ws: Workspace, model7: Model, inference: InferenceConfig, tmp_path: Path
) -> None:
    package = Model.package(
        ws, [model7], inference, generate_dockerfile=True, image_name="k-image", image_label="v1"
    )
    assert isinstance(package, ModelPackage)
    package.wait_for_creation()
    root = Path(package.location)
    assert root == ws.path / "packages" / "k-image" / "v1"
    assert (root / "app" / "score.py").is_file() and (root / "app" / "helper.py").is_file()
    assert (root / "trainyard-models" / "k-model" / "1" / "k.txt").read_text() == "7"
    assert (root / "trainyard-runtime" / "trainyard" / "_serving" / "__main__.py").is_file()
    reqs = (root / "requirements.txt").read_text()
    assert re.search(r"^fastapi==", reqs, re.M) and re.search(r"^uvicorn==", reqs, re.M)
    assert "dependencies:" in (root / "conda_dependencies.yml").read_text()
    service = json.loads((root / "service.json").read_text())
    assert service["entryScript"] == "score.py"
    assert service["modelDir"] == "trainyard-models/k-model/1"
    dockerfile = (root / "Dockerfile").read_text()
    assert dockerfile.startswith("# Build context") and 'CMD ["bash", "run.sh"]' in dockerfile
    assert os.access(root / "run.sh", os.X_OK)
    copy = package.save(tmp_path / "copy")
    assert (Path(copy) / "run.sh").is_file()
    with pytest.raises(WebserviceException, match="not empty"):
        Model.package(ws, [model7], inference, image_name="k-image", image_label="v1")


def test_run_sh_serves_the_package(
    ws: Workspace, inference: InferenceConfig, tmp_path: Path
) -> None:
    model5 = register_k(ws, tmp_path / "k5", 5, name="five")
    package = Model.package(ws, [model5], inference, image_name="five")
    root = Path(package.location)
    env = dict(os.environ, TRAINYARD_PYTHON=sys.executable, PORT="0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", str(root / "run.sh")],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
            start_new_session=True,
        )
    try:
        url = _wait_listening(log, proc)
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/").status_code != 200:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        resp = httpx.post(f"{url}/score", content='{"data": [2]}')
        assert resp.text == "[10]"
        # The packaged copy of trainyard (first on PYTHONPATH) is the one that runs: importing it
        # compiled its modules next to it.
        assert (root / "trainyard-runtime" / "trainyard" / "_serving" / "__pycache__").is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _wait_listening(log: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"listening on (http://\S+)", log.read_text())
        if match:
            return match.group(1)
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(log.read_text())
