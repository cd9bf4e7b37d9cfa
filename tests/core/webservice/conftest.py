"""Fixtures for the web-service tests: a workspace, a tiny "model" and scoring app, real services.

The model is a text file holding a multiplier ``k``; the scoring script multiplies the request's
``data`` by it, so a response says which model version served it. Services run on the current
interpreter (a user-managed environment), which starts in about a second. Every service a module
deploys is deleted at the end of the module, so no process outlives the tests.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainyard.core import Workspace
from trainyard.core.environment import Environment
from trainyard.core.model import InferenceConfig, Model
from trainyard.core.webservice import Webservice
from trainyard.testing.fixtures import unique_name

SCORE_PY = """
    import json
    import os

    import helper

    k = None


    def init():
        global k
        k = int(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "k.txt")).read())
        print(f"init: k = {k}", flush=True)


    def run(raw_data):
        data = json.loads(raw_data)["data"]
        if data == "boom":
            raise RuntimeError("run() failed on purpose")
        return helper.scale(data, k)
"""

HELPER_PY = """
    def scale(data, k):
        if not isinstance(data, list) or not all(isinstance(x, int) for x in data):
            raise ValueError("data must be a list of integers")
        return [x * k for x in data]
"""

FAILING_PY = """
    def init():
        raise RuntimeError("cannot load the model: marker-7f3a")


    def run(raw_data):
        return []
"""


def write_app(folder: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (name → dedented source) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (folder / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


def current_interpreter() -> Environment:
    """An environment that runs on this interpreter (nothing is built)."""
    env = Environment("current-python")
    env.python.user_managed_dependencies = True
    return env


def register_k(ws: Workspace, folder: Path, k: int, name: str = "k-model") -> Model:
    """Register a model whose file ``k.txt`` holds ``k`` (a new version each call)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "k.txt"
    path.write_text(str(k), encoding="utf-8")
    return Model.register(ws, str(path), name)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A module's workspace; its services are deleted when the module ends."""
    workspace = Workspace.create(unique_name("ws"), path=tmp_path_factory.mktemp("svc") / "ws")
    yield workspace
    for service in Webservice.list(workspace):
        service.delete()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scoring app folder (``score.py`` imports ``helper.py``)."""
    return write_app(tmp_path_factory.mktemp("app"), {"score.py": SCORE_PY, "helper.py": HELPER_PY})


@pytest.fixture(scope="module")
def inference(app: Path) -> InferenceConfig:
    """``InferenceConfig`` for :data:`SCORE_PY` on this interpreter."""
    return InferenceConfig(
        entry_script="score.py", source_directory=str(app), environment=current_interpreter()
    )


@pytest.fixture(scope="module")
def model7(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Model:
    """``k-model`` version 1, k = 7."""
    return register_k(ws, tmp_path_factory.mktemp("k7"), 7)
