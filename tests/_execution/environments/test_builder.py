from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from trainyard._execution.environments import (
    EnvironmentBuilder,
    EnvSpec,
    parse_freeze,
    read_pip_config,
)
from trainyard._execution.environments.builder import MARKER, RUNTIME_DIR
from trainyard._execution.environments.curated import curated_definition
from trainyard.exceptions import EnvironmentBuildError, EnvironmentNotFound, ValidationError


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("env-cache")


@pytest.fixture(scope="module")
def builder(cache_dir: Path) -> EnvironmentBuilder:
    return EnvironmentBuilder(cache_dir, read_pip_config(os.environ))


@pytest.fixture
def own_builder(tmp_path: Path) -> Iterator[EnvironmentBuilder]:
    yield EnvironmentBuilder(tmp_path / "envs", read_pip_config(os.environ))


def run_in(python: Path, code: str) -> str:
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def six_spec(version: str = "1.16.0") -> EnvSpec:
    return EnvSpec.from_requirements([f"six=={version}"], gpu=False)


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if ".tmp-" in p.name or ".trash-" in p.name)


# ---------------------------------------------------------------------- real builds
@pytest.mark.slow
def test_build_six_with_runtime_then_cache_hit(
    builder: EnvironmentBuilder, cache_dir: Path
) -> None:
    lines: list[str] = []
    built = builder.build(six_spec(), log=lines.append)
    assert built.cached is False
    assert built.prefix == cache_dir / built.spec_hash[:16]
    assert built.resolved["six"] == "1.16.0"
    # trainyard links its code in and installs none of its own dependencies (issue 10, item 3).
    assert set(built.resolved) == {"six", "trainyard"}
    assert any("six==1.16.0" in line for line in lines)  # uv's output reached the log
    import trainyard

    where = run_in(
        built.python, "import os, six, trainyard; print(os.path.realpath(trainyard.__file__))"
    )
    assert Path(where).parent == Path(trainyard.__file__).resolve().parent
    marker = json.loads((built.prefix / MARKER).read_text())
    assert marker["spec_hash"] == built.spec_hash and marker["resolved"] == built.resolved
    assert leftovers(cache_dir) == []

    again = builder.build(six_spec(), log=lines.append)
    assert again.cached is True
    assert again.prefix == built.prefix and again.resolved == built.resolved
    assert builder.lookup(six_spec()) is not None
    assert builder.lookup(six_spec("1.15.0")) is None


@pytest.mark.slow
def test_log_accepts_a_text_stream(builder: EnvironmentBuilder) -> None:
    builder.build(six_spec(), log=lambda _line: None)  # built here unless an earlier test did
    stream = io.StringIO()
    builder.build(six_spec(), log=stream)
    assert "reused from the cache" in stream.getvalue()


@pytest.mark.slow
def test_broken_entry_is_rebuilt(own_builder: EnvironmentBuilder) -> None:
    first = own_builder.build(six_spec())
    (first.prefix / RUNTIME_DIR / "trainyard").unlink()
    second = own_builder.build(six_spec())
    assert second.cached is False
    run_in(second.python, "import trainyard, six")


def test_unresolvable_requirement_raises_with_resolver_message(
    own_builder: EnvironmentBuilder,
) -> None:
    spec = EnvSpec.from_requirements(["this-package-does-not-exist-xyz==1.0"], gpu=False)
    lines: list[str] = []
    with pytest.raises(EnvironmentBuildError) as info:
        own_builder.build(spec, log=lines.append)
    message = str(info.value)
    assert "this-package-does-not-exist-xyz" in message
    assert "uv pip install failed" in message
    assert any("this-package-does-not-exist-xyz" in line for line in lines)
    assert leftovers(own_builder.cache_dir) == []
    assert own_builder.list_environments() == []


def test_missing_uv_binary_is_a_build_error(tmp_path: Path) -> None:
    b = EnvironmentBuilder(
        tmp_path / "envs", read_pip_config(os.environ), uv_bin=str(tmp_path / "no-uv")
    )
    with pytest.raises(EnvironmentBuildError, match="could not start"):
        b.build(six_spec())
    assert leftovers(tmp_path / "envs") == []


_CHILD = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from trainyard._execution.environments import EnvironmentBuilder, EnvSpec, read_pip_config
    builder = EnvironmentBuilder(Path(sys.argv[1]), read_pip_config(os.environ))
    built = builder.build(EnvSpec.from_requirements(["six==1.15.0"], gpu=False), log=sys.stderr)
    print(json.dumps({"cached": built.cached, "prefix": str(built.prefix)}))
    """
)


@pytest.mark.slow
def test_two_processes_build_the_same_spec_once(tmp_path: Path) -> None:
    cache = tmp_path / "envs"
    cache.mkdir()
    key = EnvironmentBuilder(cache, read_pip_config(os.environ)).spec_hash(six_spec("1.15.0"))[:16]
    # Hold the build lock so both children are certainly waiting on it at the same time.
    fd = os.open(cache / f"{key}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stderr is not None
            for line in child.stderr:
                if "being built by another process" in line:
                    break
            else:
                pytest.fail("child never waited on the lock")
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    results = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["cached"] for r in results) == [False, True]
    assert results[0]["prefix"] == results[1]["prefix"] == str(cache / key)
    assert leftovers(cache) == []


# A v1-era Chainer snippet: np.int (removed in NumPy 1.24) and assigning an iterator's epoch (a
# read-only property from Chainer 6 on), around one real training step.
V1_CHAINER = textwrap.dedent(
    """
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)
    import numpy as np, chainer, chainer.links as L
    from chainer import iterators, optimizers
    x = np.random.rand(20, 4).astype(np.float32)
    y = (np.arange(20) % 3).astype(np.int32)
    it = iterators.SerialIterator(chainer.datasets.TupleDataset(x, y), 5)
    model = L.Classifier(L.Linear(4, 3))
    opt = optimizers.MomentumSGD(0.01)
    opt.setup(model)
    xb, yb = chainer.dataset.concat_examples(it.next())
    model.cleargrads()
    model(xb, yb).backward()
    opt.update()
    it.epoch = np.int(0)
    print(chainer.__version__, np.__version__, it.epoch)
    """
)


@pytest.mark.slow
def test_curated_chainer_5_1_0_builds_and_runs_a_v1_snippet(builder: EnvironmentBuilder) -> None:
    spec = EnvSpec.from_environment_dict(curated_definition("AzureML-Chainer-5.1.0-CPU"), gpu=False)
    built = builder.build(spec, log=lambda _line: None)
    assert built.resolved["chainer"] == "5.1.0" and built.resolved["numpy"] == "1.23.5"
    assert int(built.resolved["setuptools"].split(".")[0]) < 74 and "mpi4py" in built.resolved
    assert run_in(built.python, V1_CHAINER) == "5.1.0 1.23.5 0"
    run_in(built.python, "import mpi4py, trainyard")  # the wheel imports without Open MPI


@pytest.mark.slow
def test_curated_pytorch_builds_and_imports_torchvision(builder: EnvironmentBuilder) -> None:
    spec = EnvSpec.from_environment_dict(curated_definition("AzureML-PyTorch-2.14-CPU"), gpu=False)
    built = builder.build(spec, log=lambda _line: None)
    assert built.resolved["torchvision"].startswith("0.29.1")
    out = run_in(
        built.python,
        "import torch, torchvision; from torchvision.ops import nms; "
        "print(nms(torch.tensor([[0., 0, 1, 1], [0, 0, 1, 1]]), torch.tensor([.9, .8]), .5).tolist())",
    )
    assert out == "[0]"


def test_mpi4py_source_build_without_mpi_says_what_to_install(
    own_builder: EnvironmentBuilder,
) -> None:
    if shutil.which("mpicc") is not None:
        pytest.skip("MPI compilers are installed here, so mpi4py's source build would succeed")
    # mpi4py 3.1.6 has no wheel for this Python: uv builds its sdist, which needs mpi.h.
    spec = EnvSpec.from_requirements(["mpi4py==3.1.6"], gpu=False)
    lines: list[str] = []
    with pytest.raises(EnvironmentBuildError) as info:
        own_builder.build(spec, log=lines.append)
    assert "apt-get install openmpi-bin libopenmpi-dev" in str(info.value)
    assert info.value.details["hints"]
    assert any(line.startswith("Hint: ") for line in lines)
    assert leftovers(own_builder.cache_dir) == []


# ---------------------------------------------------------------------- list / remove / prune
@pytest.mark.slow
def test_list_get_remove_prune(own_builder: EnvironmentBuilder) -> None:
    built = own_builder.build(six_spec())
    cache = own_builder.cache_dir
    (entry,) = own_builder.list_environments()
    assert entry.spec_hash == built.spec_hash
    assert entry.spec == six_spec()
    assert entry.resolved["six"] == "1.16.0"
    assert own_builder.get(built.spec_hash[:6]).prefix == built.prefix
    with pytest.raises(ValidationError):
        own_builder.get("ab")
    with pytest.raises(EnvironmentNotFound):
        own_builder.get("0000000000")

    (cache / f"{built.spec_hash[:16]}.tmp-dead").mkdir()
    (cache / "abc.trash-1234").mkdir()
    assert own_builder.prune(older_than_days=1) == []  # recently used: kept
    assert leftovers(cache) == []

    old = 3 * 86400
    marker = built.prefix / MARKER
    os.utime(marker, (marker.stat().st_atime - old, marker.stat().st_mtime - old))
    assert own_builder.prune(older_than_days=1, keep_hashes=[built.spec_hash[:8]]) == []
    assert own_builder.prune(older_than_days=1) == [built.spec_hash]
    assert own_builder.list_environments() == []
    assert not built.prefix.exists()
    assert own_builder.remove(built.spec_hash) is False


# ---------------------------------------------------------------------- user-managed
def test_user_managed_uses_the_running_interpreter(own_builder: EnvironmentBuilder) -> None:
    spec = EnvSpec.from_requirements(["anything==1"], user_managed=True, gpu=False)
    lines: list[str] = []
    built = own_builder.build(spec, log=lines.append)
    assert built.python == Path(sys.executable)
    assert built.cached is True
    assert built.resolved["sqlalchemy"] == metadata.version("sqlalchemy")
    assert any("nothing is installed" in line for line in lines)
    assert not own_builder.cache_dir.exists()


def test_user_managed_interpreter_path(own_builder: EnvironmentBuilder, tmp_path: Path) -> None:
    spec = EnvSpec.from_requirements(
        [], user_managed=True, interpreter_path=sys.executable, gpu=False
    )
    assert own_builder.build(spec).python == Path(sys.executable)
    missing = EnvSpec.from_requirements(
        [], user_managed=True, interpreter_path=str(tmp_path / "nope"), gpu=False
    )
    with pytest.raises(EnvironmentBuildError, match="does not exist"):
        own_builder.build(missing)


def test_parse_freeze() -> None:
    text = "Six==1.16.0\n# comment\n-e file:///x\nfoo @ file:///tmp/foo.whl\n\n"
    assert parse_freeze(text) == {"six": "1.16.0", "foo": "file:///tmp/foo.whl"}


def test_unavailable_python_is_explained(own_builder: EnvironmentBuilder) -> None:
    spec = EnvSpec.from_requirements(["six"], python_version="3.99", gpu=False)
    with pytest.raises(EnvironmentBuildError, match=r"Python 3\.99 was requested"):
        own_builder.build(spec)
    assert leftovers(own_builder.cache_dir) == []
