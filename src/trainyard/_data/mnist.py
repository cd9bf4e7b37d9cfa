"""MNIST: find, verify, fetch and read the four original IDX gzip files.

Trainyard reads a local copy first and uses the network only as a fallback (v1 quirk 13: the original
sample downloaded MNIST on every run from a host that was not always reachable). A folder holds MNIST
when it contains the four files named in :data:`MNIST_FILES`; every file is checked against its
published SHA-256 before it is used.

Where the files are looked for (:func:`find_mnist_dir`), in order:

1. the folder passed in explicitly;
2. ``TRAINYARD_MNIST_DIR``;
3. ``data/mnist`` of the source checkout trainyard runs from (``pip install -e``);
4. the user cache, ``<TRAINYARD_HOME>/datasets/mnist`` (``~/.trainyard/datasets/mnist``), which
   :func:`load_mnist` fills with :func:`fetch` when nothing else has the files.

numpy is needed only to read the data (:func:`read_idx`, :func:`load_mnist`,
:func:`write_chainer_npz`); finding, verifying and fetching work without it.

Example::

    from trainyard._data.mnist import load_mnist, write_chainer_npz
    (x_train, y_train), (x_test, y_test) = load_mnist()   # float32 (N, 784) in [0, 1], int32
    x_train.shape, y_test[:3]                              # (60000, 784), array([7, 2, 1])
    write_chainer_npz(None, "/tmp/chainer-root")           # then CHAINER_DATASET_ROOT=/tmp/chainer-root
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import struct
import tempfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from trainyard.exceptions import MissingExtraError, NotFoundError, ValidationError
from trainyard.settings import load_settings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "DEFAULT_MIRRORS",
    "MNIST_DIR_ENV",
    "MNIST_FILES",
    "TEST_IMAGES",
    "TEST_LABELS",
    "TRAIN_IMAGES",
    "TRAIN_LABELS",
    "candidate_dirs",
    "ensure_mnist_dir",
    "fetch",
    "find_mnist_dir",
    "has_mnist_files",
    "load_mnist",
    "load_split",
    "read_idx",
    "user_cache_dir",
    "verify",
    "write_chainer_npz",
]

log = logging.getLogger(__name__)

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

#: The four original files and their published SHA-256 (see ``data/mnist/SOURCE.md``).
MNIST_FILES: Mapping[str, str] = MappingProxyType(
    {
        TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }
)

#: Public mirrors tried in order by :func:`fetch`.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: Environment variable naming a folder that holds the four files.
MNIST_DIR_ENV = "TRAINYARD_MNIST_DIR"

# A download bigger than this is not an MNIST file (the largest is 9.9 MB): stop reading it.
_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024

# IDX type code → (numpy dtype name, item size). Multi-byte values are big-endian.
_IDX_TYPES: dict[int, tuple[str, int]] = {
    0x08: ("u1", 1),
    0x09: ("i1", 1),
    0x0B: ("i2", 2),
    0x0C: ("i4", 4),
    0x0D: ("f4", 4),
    0x0E: ("f8", 8),
}


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy is present wherever MNIST is read
        raise MissingExtraError.for_extra("hyperdrive", "Reading MNIST", "numpy") from None
    return numpy


# ---------------------------------------------------------------------------------------- reading


def _read_bytes(path: Path) -> bytes:
    """The decompressed content of ``path`` (gzip detected by its magic bytes, not its suffix)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as gz:
                return gz.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"IDX file {str(path)!r} does not exist.", path=str(path)) from None
    except (EOFError, OSError, zlib.error) as err:
        raise ValidationError(
            f"IDX file {str(path)!r} is not a readable gzip stream ({err}); the file is truncated "
            "or corrupt. Delete it and fetch it again.",
            path=str(path),
            reason=str(err),
        ) from None


def read_idx(path: str | os.PathLike[str]) -> npt.NDArray[Any]:
    """Read one IDX file (gzip-compressed or raw) into a numpy array of its declared type and shape.

    The header is checked: two zero bytes, a known type code, at least one dimension, and a payload
    of exactly ``prod(dims) * itemsize`` bytes. Anything else raises
    :class:`~trainyard.exceptions.ValidationError` naming the file and what is wrong; a missing file
    raises :class:`~trainyard.exceptions.NotFoundError`.

    Example::

        images = read_idx("data/mnist/t10k-images-idx3-ubyte.gz")   # uint8 (10000, 28, 28)
    """
    p = Path(path)
    data = _read_bytes(p)

    def bad(reason: str) -> ValidationError:
        return ValidationError(
            f"IDX file {str(p)!r} is corrupt or truncated: {reason}.", path=str(p), reason=reason
        )

    if len(data) < 4:
        raise bad(f"only {len(data)} bytes, shorter than the 4-byte magic number")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise bad(f"magic number starts with 0x{zero:04x}, expected 0x0000")
    if type_code not in _IDX_TYPES:
        raise bad(f"unknown data type code 0x{type_code:02x}")
    if ndim == 0:
        raise bad("zero dimensions declared")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise bad(f"header declares {ndim} dimensions but the file ends after {len(data)} bytes")
    dims = struct.unpack(f">{ndim}i", data[4:header_len])
    if any(d < 0 for d in dims):
        raise bad(f"negative dimension in {dims}")
    dtype_name, itemsize = _IDX_TYPES[type_code]
    expected = math.prod(dims) * itemsize
    actual = len(data) - header_len
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise bad(f"{what}: dims {dims} need {expected} data bytes, found {actual}")
    np_ = _numpy()
    array = np_.frombuffer(data, dtype=np_.dtype(">" + dtype_name), offset=header_len)
    # A native-endian, writable copy that owns its memory (frombuffer over bytes is read-only).
    out: npt.NDArray[Any] = array.astype(np_.dtype(dtype_name).newbyteorder("="), copy=True)
    return out.reshape(dims)


# -------------------------------------------------------------------------------------- checksums


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def verify(path: str | os.PathLike[str], expected: str | None = None) -> Path:
    """Check a file's SHA-256 and return its path.

    ``expected`` defaults to the published hash of the MNIST file with the same name. A mismatch
    raises :class:`~trainyard.exceptions.ValidationError` naming the file, the expected and the
    actual hash (also in ``err.details``); a missing file raises
    :class:`~trainyard.exceptions.NotFoundError`.

    Example::

        verify("data/mnist/t10k-labels-idx1-ubyte.gz")
    """
    p = Path(path)
    if expected is None:
        if p.name not in MNIST_FILES:
            raise ValidationError(
                f"{p.name!r} is not an MNIST file; pass expected= or use one of "
                f"{sorted(MNIST_FILES)}.",
                file=str(p),
            )
        expected = MNIST_FILES[p.name]
    if not p.is_file():
        raise NotFoundError(f"MNIST file {str(p)!r} does not exist.", file=str(p))
    actual = _sha256(p)
    if actual != expected.lower():
        raise ValidationError(
            f"Checksum mismatch for {str(p)!r}: expected SHA-256 {expected}, got {actual}. The file "
            "is corrupt or not the original; delete it and fetch it again.",
            file=str(p),
            expected=expected,
            actual=actual,
        )
    return p


# ---------------------------------------------------------------------------------------- finding


def has_mnist_files(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` contains all four MNIST file names (checksums are not read here).

    Example::

        has_mnist_files("data/mnist")   # True in a source checkout
    """
    p = Path(folder)
    return all((p / name).is_file() for name in MNIST_FILES)


def _source_checkout_dir() -> Path | None:
    # src/trainyard/_data/mnist.py → parents[2] is "src" only in a source checkout (editable install).
    here = Path(__file__).resolve()
    if here.parents[2].name != "src":
        return None
    return here.parents[3] / "data" / "mnist"


def candidate_dirs(
    data_dir: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> list[tuple[str, Path]]:
    """The folders :func:`find_mnist_dir` considers, in order, each with where it came from.

    Example::

        for source, folder in candidate_dirs():
            print(source, folder)   # e.g. "source checkout /work/main/data/mnist"
    """
    e = os.environ if env is None else env
    out: list[tuple[str, Path]] = []
    if data_dir is not None:
        out.append(("argument", Path(data_dir).expanduser()))
    if e.get(MNIST_DIR_ENV):
        out.append((MNIST_DIR_ENV, Path(e[MNIST_DIR_ENV]).expanduser()))
    repo = _source_checkout_dir()
    if repo is not None:
        out.append(("source checkout", repo))
    out.append(("user cache", user_cache_dir(env=e)))
    return out


def user_cache_dir(*, env: Mapping[str, str] | None = None) -> Path:
    """``<TRAINYARD_HOME>/datasets/mnist`` (default ``~/.trainyard/datasets/mnist``).

    Example::

        user_cache_dir(env={"TRAINYARD_HOME": "/srv/ty"})   # Path('/srv/ty/datasets/mnist')
    """
    return load_settings(os.environ if env is None else env).home / "datasets" / "mnist"


def find_mnist_dir(
    data_dir: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> Path:
    """The first folder that holds the four MNIST files (search order in the module docstring).

    A folder named explicitly (``data_dir`` or ``TRAINYARD_MNIST_DIR``) must hold the files: if it
    does not, :class:`~trainyard.exceptions.NotFoundError` is raised rather than silently using
    another copy. When no folder has them, the error lists every place searched. ``env`` defaults
    to ``os.environ``.

    Example::

        find_mnist_dir()                                   # Path('/work/main/data/mnist')
        find_mnist_dir(env={"TRAINYARD_MNIST_DIR": "/data/mnist"})
    """
    searched = candidate_dirs(data_dir, env=env)
    for source, folder in searched:
        if has_mnist_files(folder):
            return folder
        if source in ("argument", MNIST_DIR_ENV):
            missing = [n for n in MNIST_FILES if not (folder / n).is_file()]
            raise NotFoundError(
                f"MNIST folder {str(folder)!r} (from {source}) lacks {missing}. Put the four IDX "
                "gzip files there or point to a folder that has them.",
                folder=str(folder),
                missing=missing,
            )
    places = ", ".join(f"{source}: {folder}" for source, folder in searched)
    raise NotFoundError(
        f"No MNIST files found (searched {places}). Set {MNIST_DIR_ENV} to a folder with the four "
        "IDX gzip files, or call trainyard._data.mnist.fetch(folder) where the internet is reachable.",
        searched=[str(f) for _, f in searched],
    )


# ---------------------------------------------------------------------------------------- fetching


def _download_one(client: Any, url: str, dest: Path, name: str, expected: str) -> str | None:
    """Download ``url`` to ``dest/name`` atomically if its hash matches; return why not, or None."""
    import httpx

    fd, tmp_name = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".part")
    tmp_path = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as tmp, client.stream("GET", url) as resp:
            if resp.status_code != 200:
                return f"{url}: HTTP {resp.status_code}"
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > _MAX_DOWNLOAD_BYTES:
                    return f"{url}: more than {_MAX_DOWNLOAD_BYTES} bytes, not an MNIST file"
                digest.update(chunk)
                tmp.write(chunk)
        actual = digest.hexdigest()
        if actual != expected:
            return f"{url}: checksum mismatch (expected SHA-256 {expected}, got {actual})"
        os.replace(tmp_path, dest / name)
        return None
    except httpx.HTTPError as err:
        return f"{url}: {type(err).__name__}: {err}"
    finally:
        tmp_path.unlink(missing_ok=True)


def fetch(
    dest: str | os.PathLike[str],
    mirrors: Sequence[str] = DEFAULT_MIRRORS,
    *,
    files: Iterable[str] | None = None,
    timeout: float = 60.0,
) -> list[Path]:
    """Download the MNIST files into ``dest``, verifying each against its SHA-256; return the paths.

    Files already in ``dest`` with the right checksum are kept. Each missing file is tried on every
    mirror in turn (``<mirror>/<file name>``); a download only appears under its final name once its
    checksum matched (temp file, then atomic rename), so an interrupted or tampered download never
    looks complete. If no mirror serves a good copy, :class:`~trainyard.exceptions.ValidationError`
    is raised when every mirror answered with wrong bytes, :class:`~trainyard.exceptions.NotFoundError`
    otherwise; the message lists each mirror's failure.

    Example::

        fetch("~/.trainyard/datasets/mnist")
        fetch("/tmp/mnist", mirrors=["http://127.0.0.1:8000/"], files=["t10k-labels-idx1-ubyte.gz"])
    """
    import httpx

    folder = Path(dest).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    names = list(MNIST_FILES) if files is None else list(files)
    unknown = [n for n in names if n not in MNIST_FILES]
    if unknown:
        raise ValidationError(f"Not MNIST files: {unknown}; known: {sorted(MNIST_FILES)}.")
    if not mirrors:
        raise ValidationError("fetch() needs at least one mirror URL.")
    out: list[Path] = []
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for name in names:
            target = folder / name
            expected = MNIST_FILES[name]
            if target.is_file() and _sha256(target) == expected:
                out.append(target)
                continue
            failures: list[str] = []
            for mirror in mirrors:
                url = mirror.rstrip("/") + "/" + name
                log.info("downloading %s", url)
                why = _download_one(client, url, folder, name, expected)
                if why is None:
                    break
                log.warning("MNIST download failed: %s", why)
                failures.append(why)
            else:
                message = f"Could not download {name} from any mirror: " + "; ".join(failures)
                if all("checksum mismatch" in f for f in failures):
                    raise ValidationError(message, file=name, failures=failures)
                raise NotFoundError(message, file=name, failures=failures)
            out.append(target)
    return out


def ensure_mnist_dir(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    download: bool = True,
    mirrors: Sequence[str] = DEFAULT_MIRRORS,
) -> Path:
    """:func:`find_mnist_dir`, falling back to :func:`fetch` into the user cache.

    The fallback happens only when nothing was named explicitly and ``download`` is true.

    Example::

        folder = ensure_mnist_dir()   # local copy if any, else downloaded once into the cache
    """
    e = os.environ if env is None else env
    try:
        return find_mnist_dir(data_dir, env=e)
    except NotFoundError:
        if data_dir is not None or e.get(MNIST_DIR_ENV) or not download:
            raise
    cache = user_cache_dir(env=e)
    fetch(cache, mirrors)
    return cache


# ------------------------------------------------------------------------------------------ loading


def _load_split(folder: Path, images_name: str, labels_name: str, verify_checksums: bool) -> Any:
    if verify_checksums:
        verify(folder / images_name)
        verify(folder / labels_name)
    images = read_idx(folder / images_name)
    labels = read_idx(folder / labels_name)
    if images.dtype.name != "uint8" or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValidationError(
            f"{images_name} holds {images.dtype} {images.shape}, expected uint8 (N, 28, 28).",
            file=str(folder / images_name),
        )
    if labels.dtype.name != "uint8" or labels.shape != (images.shape[0],):
        raise ValidationError(
            f"{labels_name} holds {labels.dtype} {labels.shape}, expected uint8 "
            f"({images.shape[0]},) to match {images_name}.",
            file=str(folder / labels_name),
        )
    if labels.size and int(labels.max()) > 9:
        raise ValidationError(f"{labels_name} has a label above 9.", file=str(folder / labels_name))
    return images, labels


def load_split(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    ndim: int = 1,
    scale: bool = True,
    *,
    env: Mapping[str, str] | None = None,
    download: bool = True,
    verify_checksums: bool = True,
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int32]]:
    """Load one split, ``"train"`` (60,000) or ``"test"`` (10,000), as ``(x, y)``.

    Same conventions as :func:`load_mnist`; a scorer that only needs the test set uses this.

    Example::

        x_test, y_test = load_split("test")
        x_test.shape   # (10000, 784)
    """
    names = {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)}
    if split not in names:
        raise ValidationError(f"split must be 'train' or 'test', got {split!r}.")
    if ndim not in (1, 2, 3):
        raise ValidationError(f"ndim must be 1, 2 or 3, got {ndim!r}.")
    folder = ensure_mnist_dir(data_dir, env=env, download=download)
    np_ = _numpy()
    shape = {1: (784,), 2: (28, 28), 3: (1, 28, 28)}[ndim]
    images, labels = _load_split(folder, *names[split], verify_checksums)
    x = images.reshape((images.shape[0], *shape))
    if scale:
        x = x.astype(np_.float32) / np_.float32(255.0)
    return x, labels.astype(np_.int32)


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    ndim: int = 1,
    scale: bool = True,
    *,
    env: Mapping[str, str] | None = None,
    download: bool = True,
    verify_checksums: bool = True,
) -> tuple[
    tuple[npt.NDArray[Any], npt.NDArray[np.int32]], tuple[npt.NDArray[Any], npt.NDArray[np.int32]]
]:
    """Load MNIST as ``((x_train, y_train), (x_test, y_test))``.

    Images are float32 in ``[0, 1]`` (``x / 255.0``, as the v1 Gen B ``datautils``) or, with
    ``scale=False``, the raw uint8 pixels. ``ndim`` picks the image shape: 1 → ``(N, 784)``,
    2 → ``(N, 28, 28)``, 3 → ``(N, 1, 28, 28)`` (as ``chainer.datasets.get_mnist``). Labels are
    int32. The files are found with :func:`ensure_mnist_dir` and checked against their SHA-256.

    Example::

        (x_train, y_train), (x_test, y_test) = load_mnist(ndim=2)
        x_test.shape, x_test.dtype, y_test.dtype   # (10000, 28, 28) float32 int32
    """
    folder = ensure_mnist_dir(data_dir, env=env, download=download)
    kwargs: dict[str, Any] = {"ndim": ndim, "scale": scale, "verify_checksums": verify_checksums}
    return load_split("train", folder, **kwargs), load_split("test", folder, **kwargs)


def write_chainer_npz(
    data_dir: str | os.PathLike[str] | None,
    dest: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    env: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write Chainer's MNIST cache so ``chainer.datasets.get_mnist()`` works offline.

    ``dest`` is the Chainer dataset root (what ``CHAINER_DATASET_ROOT`` will point to); the files are
    ``<dest>/pfnet/chainer/mnist/{train,test}.npz``, each ``numpy.savez_compressed(x=uint8[N, 784],
    y=uint8[N])``, the layout Chainer itself writes after downloading. Existing files are kept
    unless ``overwrite``. ``data_dir`` is searched as in :func:`ensure_mnist_dir`.

    Example::

        write_chainer_npz(None, "/tmp/chainer-root")
        # CHAINER_DATASET_ROOT=/tmp/chainer-root python chainer_mnist.py   (Gen A, no internet)
    """
    out_dir = Path(dest).expanduser() / "pfnet" / "chainer" / "mnist"
    targets = [out_dir / "train.npz", out_dir / "test.npz"]
    if not overwrite and all(t.is_file() for t in targets):
        return targets
    folder = ensure_mnist_dir(data_dir, env=env)
    np_ = _numpy()
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS))
    for target, (images_name, labels_name) in zip(targets, pairs, strict=True):
        images, labels = _load_split(folder, images_name, labels_name, True)
        fd, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as tmp:
                np_.savez_compressed(tmp, x=images.reshape(images.shape[0], 784), y=labels)
            os.replace(tmp_name, target)
        finally:
            Path(tmp_name).unlink(missing_ok=True)
    return targets
