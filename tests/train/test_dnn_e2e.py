"""End to end: the Chainer and PyTorch MNIST examples submitted with their estimators to local
compute, in environments trainyard builds (uv), then registered, downloaded and scored in a fresh
process with the example's scoring module.

Short runs: 2 epochs on a slice (``--train-slice 2000 --test-slice 500``), so ``Accuracy`` and
``Loss`` come back as per-epoch lists. Environments are built once per test session into a shared
cache (``TRAINYARD_ENV_CACHE`` under pytest's base temp folder; ``tests/examples/test_demo.py`` uses
the same one): the first Chainer build takes ~10 s, torch a few seconds from uv's cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainyard.core import Dataset, Experiment, Model, Workspace
from trainyard.core.script_run import ScriptRun
from trainyard.testing.fixtures import unique_name
from trainyard.train.dnn import Chainer, PyTorch
from trainyard.train.estimator import Estimator

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MNIST = REPO / "data" / "mnist"
EPOCHS = 2


def shared_env_cache(factory: pytest.TempPathFactory) -> Path:
    """One environment cache for the whole session (all xdist workers share it; builds are locked
    per spec hash)."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    cache = base / "trainyard-env-cache"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


@dataclass(frozen=True)
class Example:
    estimator: type[Estimator]
    folder: str
    script: str
    scorer: str
    model_file: str
    framework_version: str
    distribution: str


CHAINER = Example(
    Chainer, "chainer-mnist", "chainer_mnist.py", "chainer_score", "model.npz", "7.8.1", "chainer"
)
TORCH = Example(
    PyTorch, "pytorch-mnist", "pytorch_mnist.py", "pytorch_score", "model.pt", "2.13.0", "torch"
)
EXAMPLES = [pytest.param(CHAINER, id="chainer"), pytest.param(TORCH, id="pytorch")]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace with MNIST on its default datastore; env vars are set before it is created."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINYARD_ENV_CACHE", str(shared_env_cache(tmp_path_factory)))
        mp.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.05")
        mp.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.3")
        workspace = Workspace.create(unique_name("ws"), path=tmp_path_factory.mktemp("dnn") / "ws")
        workspace.get_default_datastore().upload(
            src_dir=str(MNIST), target_path="mnist", overwrite=True, show_progress=False
        )
        yield workspace


def submit(ws: Workspace, ex: Example, **extra_params: Any) -> ScriptRun:
    est = ex.estimator(
        source_directory=str(REPO / "examples" / ex.folder),
        compute_target="local",
        entry_script=ex.script,
        script_params={
            "--epochs": EPOCHS,
            "--batchsize": 100,
            "--output_dir": "./outputs",
            "--train-slice": 2000,
            "--test-slice": 500,
            **extra_params,
        },
        environment_variables={"OMP_NUM_THREADS": "1", "TRAINYARD_MNIST_DIR": str(MNIST)},
    )
    run = Experiment(ws, ex.folder).submit(est)
    assert isinstance(run, ScriptRun)
    run.wait_for_completion(show_output=False, wait_post_processing=True, raise_on_error=False)
    if run.get_status() != "Completed":
        log = ws.context.artifacts.read_bytes(f"runs/{run.id}/user_logs/std_log.txt").decode(
            errors="replace"
        )
        pytest.fail(
            f"run {run.id} is {run.get_status()}: {run.get_details().get('error')}\n{log[-3000:]}"
        )
    return run


def check_metrics(run: ScriptRun) -> None:
    metrics = run.get_metrics()
    assert set(metrics) == {"Batch size", "Epochs", "Accuracy", "Loss"}
    assert metrics["Batch size"] == 100 and metrics["Epochs"] == EPOCHS  # logged once: bare values
    for name in ("Accuracy", "Loss"):  # logged every epoch: lists
        assert isinstance(metrics[name], list) and len(metrics[name]) == EPOCHS, metrics
        assert all(isinstance(v, float) for v in metrics[name])
    assert all(0.0 <= a <= 1.0 for a in metrics["Accuracy"]), metrics
    assert metrics["Loss"][-1] < 2.3, metrics  # learning: below an untrained net's ln(10) ≈ 2.303


SCORE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    scorer = __import__(sys.argv[2])
    from trainyard._data.mnist import load_split
    scorer.init()
    x, y = load_split("test", sys.argv[3], ndim=1)
    idx = list(range(8))
    by_index = scorer.run(json.dumps({"data": idx}))
    one = scorer.run(json.dumps({"data": [3]}))
    pixels = scorer.run(json.dumps({"data": x[:8].tolist()}))
    image_28 = scorer.run(json.dumps({"data": x[5].reshape(28, 28).tolist()}))
    first = list(range(500))
    preds = scorer.run(json.dumps({"data": first}))
    acc = sum(int(p == t) for p, t in zip(preds, y[:500].tolist())) / 500
    print("RESULT=" + json.dumps({"by_index": by_index, "one": one, "pixels": pixels,
                                  "image_28": image_28, "accuracy": acc}))
    """
)


def score_in_env(run: ScriptRun, ex: Example, model_dir: Path, cwd: Path) -> dict[str, Any]:
    python = run._refresh().runtime["python"]
    assert Path(python).exists()
    proc = subprocess.run(
        [python, "-c", SCORE, str(REPO / "examples" / ex.folder), ex.scorer, str(MNIST)],
        env={
            "AZUREML_MODEL_DIR": str(model_dir),
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
            "HOME": str(cwd),
        },
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT="))
    result: dict[str, Any] = json.loads(line[len("RESULT=") :])
    return result


@pytest.mark.parametrize("ex", EXAMPLES)
def test_train_register_download_and_score(ws: Workspace, ex: Example, tmp_path: Path) -> None:
    run = submit(ws, ex)
    check_metrics(run)
    details = run.get_details()
    info = details["runDefinition"]["frameworkInfo"]
    assert info["name"] == ex.estimator.__name__ and info["version"] == ex.framework_version
    # What frameworkInfo records is what the build installed (a local +cpu tag aside).
    installed = details["resolvedPackages"][ex.distribution]
    assert installed.split("+")[0] == info["version"], (installed, info)
    assert f"outputs/{ex.model_file}" in run.get_file_names()
    log = ws.context.artifacts.read_bytes(f"runs/{run.id}/user_logs/std_log.txt").decode()
    assert [f"epoch:{e:02d}" in log for e in range(1, EPOCHS + 1)] == [True] * EPOCHS

    model = run.register_model(
        model_name=f"{ex.folder}-e2e",
        model_path=f"outputs/{ex.model_file}",
        model_framework=ex.estimator.__name__,
        model_framework_version=info["version"],
    )
    assert model.id == f"{ex.folder}-e2e:1" and model.run_id == run.id
    assert Model(ws, f"{ex.folder}-e2e").id == model.id
    target = tmp_path / "model"
    local = model.download(target_dir=str(target), exist_ok=True)
    assert local == str(target / ex.model_file) and Path(local).stat().st_size > 0

    result = score_in_env(run, ex, target, tmp_path)
    by_index, pixels = result["by_index"], result["pixels"]
    assert len(by_index) == 8 and all(isinstance(p, int) and 0 <= p <= 9 for p in by_index)
    assert pixels == by_index  # raw pixels of the same test images give the same digits
    assert result["one"] == by_index[3:4] and result["image_28"] == by_index[5:6]
    # The downloaded model is the trained one: on the run's 500 test images (5 equal batches, so the
    # script's mean of batch accuracies is the plain accuracy) it scores the run's last Accuracy.
    assert result["accuracy"] == pytest.approx(run.get_metrics()["Accuracy"][-1], abs=1e-5), result


@pytest.mark.parametrize("ex", EXAMPLES)
def test_data_folder_from_a_datastore_mount(ws: Workspace, ex: Example) -> None:
    ds = ws.get_default_datastore()
    mnist = Dataset.File.from_files(path=(ds, "mnist/*.gz"))
    assert len(mnist) == 4
    run = submit(ws, ex, **{"--data-folder": mnist.as_mount()})
    check_metrics(run)
    definition = run.get_details()["runDefinition"]
    token = definition["arguments"][definition["arguments"].index("--data-folder") + 1]
    assert token in definition["datasets"] and definition["datasets"][token]["mode"] == "mount"
    assert f"outputs/{ex.model_file}" in run.get_file_names()


def test_an_empty_mount_makes_the_script_fail_with_its_error(ws: Workspace, tmp_path: Path) -> None:
    """The mounted folder really is what the script reads: a dataset without MNIST fails the run."""
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "note.txt").write_text("not mnist")
    ds = ws.get_default_datastore()
    ds.upload(str(tmp_path / "other"), target_path="other", overwrite=True, show_progress=False)
    est = Chainer(
        source_directory=str(REPO / "examples" / "chainer-mnist"),
        compute_target="local",
        entry_script="chainer_mnist.py",
        script_params={
            "--epochs": 1,
            "--data-folder": Dataset.File.from_files((ds, "other")).as_mount(),
        },
    )
    run = Experiment(ws, "empty-mount").submit(est)
    assert isinstance(run, ScriptRun)
    run.wait_for_completion(show_output=False, wait_post_processing=True, raise_on_error=False)
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]
    assert "NotFoundError" in json.dumps(error)
