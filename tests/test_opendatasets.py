"""The offline ``trainyard.opendatasets.MNIST`` provider (the v1 Gen B ``datautils`` calls)."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from trainyard._data import mnist
from trainyard.exceptions import AlreadyExistsError, NotFoundError
from trainyard.opendatasets import MNIST

REPO_MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist"


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_gen_b_download_pattern(tmp_path: Path) -> None:
    data_folder = os.path.join(str(tmp_path), "data/mnist")
    os.makedirs(data_folder, exist_ok=True)
    paths = MNIST.get_file_dataset().download(data_folder, overwrite=True)
    assert sorted(Path(p).name for p in paths) == sorted(mnist.MNIST_FILES)
    for p in paths:
        assert os.path.isabs(p)
        assert _sha(p) == mnist.MNIST_FILES[Path(p).name]
    # Gen B code finds the files with a recursive glob.
    hits = glob.glob(os.path.join(data_folder, "**/train-images-idx3-ubyte.gz"), recursive=True)
    assert len(hits) == 1
    assert not [n for n in os.listdir(data_folder) if n.startswith(".")]


def test_default_target_is_a_new_temp_dir() -> None:
    paths = MNIST.get_file_dataset().download()
    folder = Path(paths[0]).parent
    try:
        assert folder != REPO_MNIST and folder.name.startswith("trainyard-mnist-")
        assert len(paths) == 4
    finally:
        for p in paths:
            Path(p).unlink()
        folder.rmdir()


def test_to_path_is_v1_shaped() -> None:
    assert MNIST.get_file_dataset(enable_telemetry=False).to_path() == [
        "/" + n for n in sorted(mnist.MNIST_FILES)
    ]


def test_existing_files_overwrite_rules(tmp_path: Path) -> None:
    ds = MNIST.get_file_dataset()
    ds.download(tmp_path)
    # Identical originals already there: fine without overwrite.
    assert len(ds.download(tmp_path)) == 4
    (tmp_path / mnist.TEST_LABELS).write_bytes(b"stale")
    with pytest.raises(AlreadyExistsError, match="overwrite=True"):
        ds.download(tmp_path)
    ds.download(tmp_path, overwrite=True)
    assert _sha(tmp_path / mnist.TEST_LABELS) == mnist.MNIST_FILES[mnist.TEST_LABELS]


def test_explicit_source_and_env_are_honoured(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotFoundError):
        MNIST.get_file_dataset(data_dir=empty).download(tmp_path / "out")
    with pytest.raises(NotFoundError):
        MNIST.get_file_dataset(env={mnist.MNIST_DIR_ENV: str(empty)}).download(tmp_path / "out")
    paths = MNIST.get_file_dataset(env={mnist.MNIST_DIR_ENV: str(REPO_MNIST)}).download(
        tmp_path / "ok"
    )
    assert len(paths) == 4


def test_download_into_the_source_folder_itself_is_a_no_op(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO_MNIST, src)
    before = {n: (src / n).stat().st_ino for n in mnist.MNIST_FILES}
    paths = MNIST.get_file_dataset(data_dir=src).download(src, overwrite=True)
    assert sorted(paths) == sorted(str(src / n) for n in mnist.MNIST_FILES)
    assert {n: (src / n).stat().st_ino for n in mnist.MNIST_FILES} == before
    for p in paths:
        mnist.verify(p)
