"""Offline open datasets with the ``azureml.opendatasets`` names (v1 Gen B notebooks use these).

Only MNIST is provided. ``MNIST.get_file_dataset()`` returns the four original IDX gzip files, as
the original did, but from a local copy (found by :func:`trainyard._data.mnist.find_mnist_dir`: an
explicit folder, ``TRAINYARD_MNIST_DIR``, the source checkout's ``data/mnist`` or the user cache
``~/.trainyard/datasets/mnist``); the public mirrors are contacted only when no local copy exists.
Every file is checked against its published SHA-256 before it is handed out.

The Gen B ``datautils.py`` pattern works unchanged once ``azureml`` is renamed::

    from trainyard.opendatasets import MNIST

    data_folder = os.path.join(os.getcwd(), "data/mnist")
    os.makedirs(data_folder, exist_ok=True)
    mnist_file_dataset = MNIST.get_file_dataset()
    mnist_file_dataset.download(data_folder, overwrite=True)   # four .gz paths

Differences from the original: the files land directly in ``target_path`` (the original nested them
under a URL-shaped folder, which is why Gen B code globs ``**/train-images-idx3-ubyte.gz``; the glob
still matches), and the object returned is a light stand-in with ``download`` and ``to_path`` only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from trainyard._data import mnist as _mnist
from trainyard.exceptions import AlreadyExistsError, ValidationError

__all__ = ["MNIST", "MnistFileDataset"]


class MnistFileDataset:
    """The four MNIST IDX gzip files, shaped like a v1 ``FileDataset`` (``download``, ``to_path``).

    The local folder is resolved when the files are first needed, not when the object is made.

    Example::

        ds = MNIST.get_file_dataset()
        ds.to_path()                       # ['/t10k-images-idx3-ubyte.gz', ...]
        paths = ds.download("/tmp/mnist")  # absolute paths of the four copies
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._data_dir = data_dir
        self._env = dict(os.environ if env is None else env)

    def _source_dir(self) -> Path:
        return _mnist.ensure_mnist_dir(self._data_dir, env=self._env)

    def to_path(self) -> list[str]:
        """The dataset's file paths relative to its root, each starting with ``/`` (v1 form).

        Example::

            MNIST.get_file_dataset().to_path()[0]   # '/t10k-images-idx3-ubyte.gz'
        """
        return ["/" + name for name in sorted(_mnist.MNIST_FILES)]

    def download(
        self,
        target_path: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        ignore_not_found: bool = False,
    ) -> list[str]:
        """Copy the four verified files into ``target_path`` and return their absolute paths.

        ``target_path`` defaults to a new temporary folder. A file already at the target is replaced
        when ``overwrite`` is true, kept when it is already the verified original, and otherwise
        raises :class:`~trainyard.exceptions.AlreadyExistsError` (as v1 did). ``ignore_not_found``
        is accepted for v1 compatibility; every file of this dataset always exists.

        Example::

            MNIST.get_file_dataset().download("./data/mnist", overwrite=True)
        """
        del ignore_not_found
        if target_path is None:
            target = Path(tempfile.mkdtemp(prefix="trainyard-mnist-"))
        else:
            target = Path(target_path).expanduser().resolve()
        source = self._source_dir()
        target.mkdir(parents=True, exist_ok=True)
        out: list[str] = []
        for rel in self.to_path():
            name = rel.lstrip("/")
            dst = target / name
            src = _mnist.verify(source / name)
            if dst.exists() and not overwrite:
                try:
                    _mnist.verify(dst)
                except ValidationError:
                    raise AlreadyExistsError(
                        f"{str(dst)!r} already exists and differs from the original; pass "
                        "overwrite=True to replace it.",
                        path=str(dst),
                    ) from None
            elif not (dst.exists() and dst.samefile(src)):
                tmp = target / f".{name}.part"
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)
            out.append(str(dst))
        return out


class MNIST:
    """The MNIST handwritten digits (60,000 training and 10,000 test images), offline.

    Example::

        from trainyard.opendatasets import MNIST
        files = MNIST.get_file_dataset().download(overwrite=True)
    """

    @classmethod
    def get_file_dataset(
        cls,
        enable_telemetry: bool = True,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> MnistFileDataset:
        """The four IDX gzip files as a file dataset (``enable_telemetry`` is accepted and ignored).

        ``data_dir`` names a folder holding the files; by default they are searched for as in
        :func:`trainyard._data.mnist.find_mnist_dir`.

        Example::

            ds = MNIST.get_file_dataset()
            ds.download(target_path="./data/mnist", overwrite=True)
        """
        del enable_telemetry
        return MnistFileDataset(data_dir, env=env)
