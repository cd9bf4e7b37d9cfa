"""The Chainer and PyTorch MNIST examples, run for real as plain scripts (outside a trainyard run).

The training/scoring subprocesses need an interpreter with the framework and trainyard installed:
``TRAINYARD_TEST_CHAINER_PYTHON`` (chainer 7.8.1, numpy<2, setuptools<74; see
``/work/shared/guide/chainer.md``) and ``TRAINYARD_TEST_TORCH_PYTHON`` (torch 2.13.0). Each test
skips, saying why, when its variable is unset. The request parser shared by both scorers is tested
directly with this interpreter.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

np = pytest.importorskip("numpy")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
MNIST_DIR = REPO / "data" / "mnist"
EPOCH_LINE = re.compile(
    r"^epoch:(\d{2}) train_loss:\d+\.\d{4} val_loss:\d+\.\d{4} val_accuracy:(\d\.\d{4})$", re.M
)


@dataclass(frozen=True)
class Example:
    name: str
    env_var: str
    script: str
    scorer: str
    model_file: str

    @property
    def folder(self) -> Path:
        return EXAMPLES / self.name

    def python(self) -> str:
        exe = os.environ.get(self.env_var)
        if not exe:
            pytest.skip(
                f"{self.env_var} is not set: point it at a Python with {self.name.split('-')[0]} "
                "and trainyard installed to run this example for real"
            )
        return exe


CHAINER = Example(
    "chainer-mnist",
    "TRAINYARD_TEST_CHAINER_PYTHON",
    "chainer_mnist.py",
    "chainer_score",
    "model.npz",
)
TORCH = Example(
    "pytorch-mnist", "TRAINYARD_TEST_TORCH_PYTHON", "pytorch_mnist.py", "pytorch_score", "model.pt"
)
EXAMPLE_LIST = [pytest.param(CHAINER, id="chainer"), pytest.param(TORCH, id="pytorch")]
# Importing torch twice (train, then score) takes > 10 s on a loaded 2-core machine.
TRAIN_AND_SCORE = [
    pytest.param(CHAINER, id="chainer"),
    pytest.param(TORCH, id="pytorch", marks=pytest.mark.slow),
]


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a script run by hand: no run context, MNIST from the repo copy."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRAINYARD_", "AZUREML_")) and k not in ("PYTHONPATH",)
    }
    env.update(
        TRAINYARD_HOME=str(tmp_path / "home"),
        TRAINYARD_MNIST_DIR=str(MNIST_DIR),
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env


def _train(ex: Example, tmp_path: Path, *args: str, timeout: float = 240) -> tuple[str, Path]:
    out = tmp_path / "outputs"
    proc = subprocess.run(
        [ex.python(), str(ex.folder / ex.script), *args, "--output_dir", str(out)],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{ex.script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout, out


SCORE_DRIVER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    scorer = __import__(sys.argv[2])
    scorer.init()
    results = {}
    for key, body in json.loads(sys.stdin.read()).items():
        try:
            results[key] = {"ok": json.dumps(scorer.run(body))}
        except ValueError as err:
            results[key] = {"ValueError": str(err)}
    print("RESULTS=" + json.dumps(results))
    """
)


def _score(
    ex: Example, tmp_path: Path, model_dir: Path, bodies: dict[str, str]
) -> dict[str, dict[str, str]]:
    proc = subprocess.run(
        [ex.python(), "-c", SCORE_DRIVER, str(ex.folder), ex.scorer],
        cwd=tmp_path,
        env=_clean_env(tmp_path, AZUREML_MODEL_DIR=str(model_dir)),
        input=json.dumps(bodies),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{ex.scorer} failed:\n{proc.stdout}\n{proc.stderr}"
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULTS="))
    return json.loads(line[len("RESULTS=") :])


@pytest.mark.parametrize("ex", TRAIN_AND_SCORE)
def test_one_epoch_on_a_slice_then_score(ex: Example, tmp_path: Path) -> None:
    stdout, out = _train(
        ex,
        tmp_path,
        "-e",
        "1",
        "-b",
        "50",
        "--gpu_id",
        "-1",
        "--train-slice",
        "1000",
        "--test-slice",
        "300",
    )
    epochs = EPOCH_LINE.findall(stdout)
    assert [e for e, _ in epochs] == ["01"], stdout
    # Offline Run.get_context() prints each metric it would have logged.
    for metric in ("Batch size", "Epochs", "Accuracy", "Loss"):
        assert metric in stdout, stdout
    assert (out / ex.model_file).is_file()

    x_test = _test_pixels(range(3))
    bodies = {
        "one": '{"data": [0]}',
        "many": '{"data": [0, 1, 2]}',
        "pixels_one": json.dumps({"data": x_test[0].tolist()}),
        "pixels_28": json.dumps({"data": x_test[1].reshape(28, 28).tolist()}),
        "pixels_many": json.dumps({"data": x_test.reshape(3, 28, 28).tolist()}),
        "out_of_range": '{"data": [10000]}',
        "not_json": "nope",
        "no_data": '{"x": [1]}',
        "bad_shape": '{"data": [0.5, 0.25]}',
        "bad_range": json.dumps({"data": [2.0] * 784}),
    }
    res = _score(ex, tmp_path, out, bodies)
    assert re.fullmatch(r"\[\d\]", res["one"]["ok"])  # compact: resp.text[1] is the digit
    many = json.loads(res["many"]["ok"])
    assert len(many) == 3 and many[0] == json.loads(res["one"]["ok"])[0]
    assert json.loads(res["pixels_one"]["ok"]) == many[:1]
    assert json.loads(res["pixels_28"]["ok"]) == many[1:2]
    assert json.loads(res["pixels_many"]["ok"]) == many
    for key in ("out_of_range", "not_json", "no_data", "bad_shape", "bad_range"):
        assert "ValueError" in res[key], (key, res[key])


@pytest.mark.parametrize("ex", EXAMPLE_LIST)
def test_data_folder_argument_is_used(ex: Example, tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    proc = subprocess.run(
        [ex.python(), str(ex.folder / ex.script), "-e", "1", "--data-folder", str(empty)],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "nothing-here" in proc.stderr and "NotFoundError" in proc.stderr


@pytest.mark.slow
def test_chainer_mlp_reaches_97_percent_in_10_epochs(tmp_path: Path) -> None:
    stdout, out = _train(CHAINER, tmp_path, "--epochs", "10", "--batchsize", "128", timeout=600)
    epochs = EPOCH_LINE.findall(stdout)
    assert [e for e, _ in epochs] == [f"{i:02d}" for i in range(1, 11)]
    assert float(epochs[-1][1]) >= 0.97, stdout
    with np.load(out / "model.npz") as npz:
        assert sorted(npz.files) == ["l1/W", "l1/b", "l2/W", "l2/b", "l3/W", "l3/b"]
        assert npz["l1/W"].shape == (100, 784)


# ------------------------------------------------------------------------- request parsing


def _load_datautils(example: str) -> ModuleType:
    path = EXAMPLES / example / "datautils.py"
    spec = importlib.util.spec_from_file_location(f"_datautils_{example.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _test_pixels(indices: range) -> Any:
    from trainyard._data.mnist import load_split

    x, _ = load_split("test", MNIST_DIR)
    return x[list(indices)]


@pytest.fixture(scope="module", params=["chainer-mnist", "pytorch-mnist"])
def datautils(request: pytest.FixtureRequest) -> ModuleType:
    return _load_datautils(request.param)


@pytest.fixture(scope="module")
def test_images() -> Any:
    return np.arange(5 * 784, dtype=np.float32).reshape(5, 784) / (5 * 784)


def test_indices_select_test_images(datautils: ModuleType, test_images: Any) -> None:
    out = datautils.images_from_request('{"data": [3]}', test_images)
    assert out.shape == (1, 784) and out.dtype == np.float32
    assert np.array_equal(out[0], test_images[3])
    out = datautils.images_from_request(b'{"data": [4, 0, 4]}', test_images)
    assert np.array_equal(out, test_images[[4, 0, 4]])
    assert datautils.images_from_request('{"data": 2}', test_images).shape == (1, 784)


@pytest.mark.parametrize(
    ("shape", "k"), [((784,), 1), ((28, 28), 1), ((2, 784), 2), ((3, 28, 28), 3)]
)
def test_pixel_shapes(
    datautils: ModuleType, test_images: Any, shape: tuple[int, ...], k: int
) -> None:
    pixels = np.full(shape, 0.5)
    out = datautils.images_from_request(json.dumps({"data": pixels.tolist()}), test_images)
    assert out.shape == (k, 784) and out.dtype == np.float32 and float(out.max()) == 0.5


def test_mixed_int_and_float_pixels_are_pixels(datautils: ModuleType, test_images: Any) -> None:
    data = [0] * 783 + [1.0]
    out = datautils.images_from_request(json.dumps({"data": data}), test_images)
    assert out.shape == (1, 784) and out[0, -1] == 1.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"input": [1]}', "JSON object"),
        ('{"data": []}', "non-empty"),
        ('{"data": "7"}', "non-empty"),
        ('{"data": [5]}', r"\[0, 5\)"),
        ('{"data": [-1]}', r"\[0, 5\)"),
        ('{"data": [true]}', "shape"),
        ('{"data": [0.1, 0.2, 0.3]}', "shape"),
        ('{"data": [[0.1, 0.2], [0.3]]}', "regular"),
        ('{"data": [["a"]]}', "regular"),
        (json.dumps({"data": [255.0] * 784}), r"\[0, 1\]"),
        (json.dumps({"data": [-0.5] * 784}), r"\[0, 1\]"),
        ('{"data": [' + ",".join(["NaN"] * 784) + "]}", "finite"),
    ],
)
def test_bad_requests_raise_value_error(
    datautils: ModuleType, test_images: Any, body: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        datautils.images_from_request(body, test_images)


def test_both_examples_ship_the_same_request_parser() -> None:
    import inspect

    a = inspect.getsource(_load_datautils("chainer-mnist").images_from_request)
    b = inspect.getsource(_load_datautils("pytorch-mnist").images_from_request)
    assert a == b


@pytest.mark.slow
def test_chainer_get_mnist_works_offline_from_the_written_cache(tmp_path: Path) -> None:
    """Gen A scripts call ``chainer.datasets.get_mnist()``; ``write_chainer_npz`` makes it offline."""
    python = CHAINER.python()
    from trainyard._data.mnist import load_split, write_chainer_npz

    write_chainer_npz(MNIST_DIR, tmp_path / "chainer-root")
    code = textwrap.dedent(
        """
        import chainer, numpy
        train, test = chainer.datasets.get_mnist(withlabel=True, ndim=1)
        x, y = test[0]
        print(len(train), len(test), x.shape, x.dtype, int(y), float(x.max()))
        numpy.save("test_x.npy", test._datasets[0])
        """
    )
    env = _clean_env(tmp_path, CHAINER_DATASET_ROOT=str(tmp_path / "chainer-root"))
    # An unroutable proxy makes any download attempt fail fast instead of reaching the internet.
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    proc = subprocess.run(
        [python, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["60000", "10000", "(784,)", "float32", "7", "1.0"]
    x_test, _ = load_split("test", MNIST_DIR)
    assert np.allclose(np.load(tmp_path / "test_x.npy"), x_test, atol=1e-6)
