"""MNIST reader, checksums, discovery, fetch (against a real local HTTP server) and Chainer cache."""

from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")

from trainyard._data import mnist  # noqa: E402
from trainyard.exceptions import NotFoundError, ValidationError  # noqa: E402

REPO_MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
Serve = Callable[[Path], tuple[str, list[str]]]
SMALL = [mnist.TEST_LABELS, mnist.TRAIN_LABELS]  # the two small files, for fast fetch tests


def _write_idx(path: Path, header: bytes, payload: bytes, *, compress: bool = True) -> Path:
    data = header + payload
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------------- read_idx


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    return {name: mnist.read_idx(REPO_MNIST / name) for name in mnist.MNIST_FILES}


def test_real_files_have_the_published_shapes_and_dtypes(real: dict[str, Any]) -> None:
    assert real[mnist.TRAIN_IMAGES].shape == (60000, 28, 28)
    assert real[mnist.TEST_IMAGES].shape == (10000, 28, 28)
    assert real[mnist.TRAIN_LABELS].shape == (60000,)
    assert real[mnist.TEST_LABELS].shape == (10000,)
    for arr in real.values():
        assert arr.dtype == np.uint8
        assert arr.flags.writeable


def test_real_label_counts_match_source_md(real: dict[str, Any]) -> None:
    assert np.bincount(real[mnist.TRAIN_LABELS]).tolist() == TRAIN_COUNTS
    assert np.bincount(real[mnist.TEST_LABELS]).tolist() == TEST_COUNTS
    assert real[mnist.TEST_LABELS][:5].tolist() == [7, 2, 1, 0, 4]
    assert real[mnist.TRAIN_IMAGES].max() == 255


@pytest.mark.parametrize("compress", [True, False])
def test_multibyte_types_are_big_endian_and_come_back_native(
    tmp_path: Path, compress: bool
) -> None:
    values = np.arange(-6, 6, dtype=">i4").reshape(3, 4)
    path = _write_idx(
        tmp_path / "x.idx",
        struct.pack(">HBB2i", 0, 0x0C, 2, 3, 4),
        values.tobytes(),
        compress=compress,
    )
    out = mnist.read_idx(path)
    assert out.dtype == np.dtype("int32") and out.dtype.isnative
    assert out.tolist() == values.tolist()


def test_float64_idx(tmp_path: Path) -> None:
    values = np.array([0.5, -1.25], dtype=">f8")
    path = _write_idx(tmp_path / "f.idx.gz", struct.pack(">HBBi", 0, 0x0E, 1, 2), values.tobytes())
    assert mnist.read_idx(path).tolist() == [0.5, -1.25]


@pytest.mark.parametrize(
    ("header", "payload", "reason"),
    [
        (b"\x00\x00", b"", "shorter than the 4-byte magic"),
        (struct.pack(">HBBi", 0x0102, 0x08, 1, 3), b"abc", "magic number starts with 0x0102"),
        (struct.pack(">HBBi", 0, 0x07, 1, 3), b"abc", "unknown data type code 0x07"),
        (struct.pack(">HBB", 0, 0x08, 0), b"", "zero dimensions"),
        (struct.pack(">HBBi", 0, 0x08, 3, 2), b"", "declares 3 dimensions"),
        (struct.pack(">HBBi", 0, 0x08, 1, -1), b"", "negative dimension"),
        (struct.pack(">HBB2i", 0, 0x08, 2, 10, 10), b"x" * 99, "truncated"),
        (struct.pack(">HBBi", 0, 0x08, 1, 3), b"abcd", "trailing bytes"),
        (struct.pack(">HBBi", 0, 0x0C, 1, 2), b"\x00" * 7, "need 8 data bytes, found 7"),
    ],
)
def test_malformed_idx_raises_validation_error(
    tmp_path: Path, header: bytes, payload: bytes, reason: str
) -> None:
    path = _write_idx(tmp_path / "bad.gz", header, payload)
    with pytest.raises(ValidationError, match=reason) as info:
        mnist.read_idx(path)
    assert str(path) in info.value.message
    assert info.value.details["path"] == str(path)


def test_truncated_gzip_of_the_real_file_raises_validation_error(tmp_path: Path) -> None:
    data = (REPO_MNIST / mnist.TEST_LABELS).read_bytes()
    cut = tmp_path / mnist.TEST_LABELS
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValidationError, match="truncated or corrupt"):
        mnist.read_idx(cut)


def test_corrupted_gzip_body_raises_validation_error(tmp_path: Path) -> None:
    data = bytearray((REPO_MNIST / mnist.TEST_LABELS).read_bytes())
    for i in range(100, 200):
        data[i] ^= 0xFF
    bad = tmp_path / mnist.TEST_LABELS
    bad.write_bytes(bytes(data))
    with pytest.raises(ValidationError):
        mnist.read_idx(bad)


def test_missing_file_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        mnist.read_idx(tmp_path / "nope.gz")


# ------------------------------------------------------------------------------------- verify


def test_verify_accepts_every_real_file() -> None:
    for name in mnist.MNIST_FILES:
        assert mnist.verify(REPO_MNIST / name) == REPO_MNIST / name


def test_checksum_mismatch_names_file_expected_and_actual(tmp_path: Path) -> None:
    bad = tmp_path / mnist.TEST_LABELS
    data = bytearray((REPO_MNIST / mnist.TEST_LABELS).read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(ValidationError) as info:
        mnist.verify(bad)
    expected = mnist.MNIST_FILES[mnist.TEST_LABELS]
    err = info.value
    assert str(bad) in err.message and expected in err.message
    assert err.details["expected"] == expected
    assert err.details["actual"] != expected and err.details["actual"] in err.message


def test_verify_unknown_name_needs_expected(tmp_path: Path) -> None:
    other = tmp_path / "other.bin"
    other.write_bytes(b"hello")
    with pytest.raises(ValidationError, match="not an MNIST file"):
        mnist.verify(other)
    sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert mnist.verify(other, expected=sha.upper()) == other


def test_verify_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        mnist.verify(tmp_path / mnist.TEST_LABELS)


# ---------------------------------------------------------------------------------- discovery


def _fake_dir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in mnist.MNIST_FILES:
        (folder / name).write_bytes(b"")
    return folder


def test_find_prefers_explicit_then_env(tmp_path: Path) -> None:
    a, b = _fake_dir(tmp_path / "a"), _fake_dir(tmp_path / "b")
    env = {mnist.MNIST_DIR_ENV: str(b), "TRAINYARD_HOME": str(tmp_path / "home")}
    assert mnist.find_mnist_dir(a, env=env) == a
    assert mnist.find_mnist_dir(env=env) == b


def test_find_uses_source_checkout_when_nothing_is_named(tmp_path: Path) -> None:
    assert mnist.find_mnist_dir(env={"TRAINYARD_HOME": str(tmp_path)}) == REPO_MNIST


@pytest.mark.parametrize("how", ["argument", "env"])
def test_named_folder_without_files_is_an_error_not_a_fallback(tmp_path: Path, how: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / mnist.TEST_LABELS).write_bytes(b"")
    env = {"TRAINYARD_HOME": str(tmp_path)}
    with pytest.raises(NotFoundError) as info:
        if how == "argument":
            mnist.find_mnist_dir(empty, env=env)
        else:
            mnist.find_mnist_dir(env={**env, mnist.MNIST_DIR_ENV: str(empty)})
    assert str(empty) in info.value.message
    assert mnist.TEST_LABELS not in info.value.details["missing"]
    assert len(info.value.details["missing"]) == 3


def test_candidate_order_and_user_cache(tmp_path: Path) -> None:
    env = {mnist.MNIST_DIR_ENV: str(tmp_path / "e"), "TRAINYARD_HOME": str(tmp_path / "h")}
    found = mnist.candidate_dirs(tmp_path / "x", env=env)
    assert [s for s, _ in found] == [
        "argument",
        mnist.MNIST_DIR_ENV,
        "source checkout",
        "user cache",
    ]
    assert found[-1][1] == tmp_path / "h" / "datasets" / "mnist"
    assert mnist.user_cache_dir(env={}) == Path.home() / ".trainyard" / "datasets" / "mnist"


# -------------------------------------------------------------------------------------- fetch


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """``serve(folder)`` → (base URL, list of request paths); servers stop at teardown."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(folder: Path) -> tuple[str, list[str]]:
        seen: list[str] = []
        handler = type("H", (_Handler,), {"requests": seen})
        httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
        )
        threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/mnist/", seen

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def _mirror(root: Path, *, corrupt: bool = False) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for name in mnist.MNIST_FILES:
        data = (REPO_MNIST / name).read_bytes()
        (folder / name).write_bytes(data[:-1] + bytes([data[-1] ^ 1]) if corrupt else data)
    return root


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def test_fetch_downloads_and_verifies_all_four(tmp_path: Path, serve: Serve) -> None:
    url, seen = serve(_mirror(tmp_path / "srv"))
    dest = tmp_path / "dest"
    paths = mnist.fetch(dest, mirrors=[url])
    assert sorted(p.name for p in paths) == sorted(mnist.MNIST_FILES)
    assert sorted(p.name for p in dest.iterdir()) == sorted(mnist.MNIST_FILES)  # no .part left
    for p in paths:
        mnist.verify(p)
    assert len(seen) == 4
    # A second fetch keeps the verified files and asks the mirror for nothing.
    mnist.fetch(dest, mirrors=[url])
    assert len(seen) == 4


def test_fetch_skips_a_corrupted_mirror_and_uses_the_next(tmp_path: Path, serve: Serve) -> None:
    bad_url, bad_seen = serve(_mirror(tmp_path / "bad", corrupt=True))
    good_url, _ = serve(_mirror(tmp_path / "good"))
    dest = tmp_path / "dest"
    paths = mnist.fetch(dest, mirrors=[_closed_port_url(), bad_url, good_url], files=SMALL)
    assert [p.name for p in paths] == SMALL
    assert len(bad_seen) == 2
    for p in paths:
        assert p.read_bytes() == (REPO_MNIST / p.name).read_bytes()


def test_fetch_from_only_a_corrupted_mirror_leaves_nothing(tmp_path: Path, serve: Serve) -> None:
    bad_url, _ = serve(_mirror(tmp_path / "bad", corrupt=True))
    dest = tmp_path / "dest"
    with pytest.raises(ValidationError, match="checksum mismatch") as info:
        mnist.fetch(dest, mirrors=[bad_url], files=[mnist.TEST_LABELS])
    assert info.value.details["file"] == mnist.TEST_LABELS
    assert list(dest.iterdir()) == []


def test_fetch_replaces_a_corrupt_local_file(tmp_path: Path, serve: Serve) -> None:
    url, seen = serve(_mirror(tmp_path / "srv"))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / mnist.TEST_LABELS).write_bytes(b"garbage")
    mnist.fetch(dest, mirrors=[url], files=[mnist.TEST_LABELS])
    mnist.verify(dest / mnist.TEST_LABELS)
    assert seen == ["/mnist/" + mnist.TEST_LABELS]


def test_fetch_unreachable_and_404_mirrors_raise_not_found(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "empty").mkdir()
    url_404, _ = serve(tmp_path / "empty")
    closed = _closed_port_url()
    with pytest.raises(NotFoundError) as info:
        mnist.fetch(tmp_path / "dest", mirrors=[closed, url_404], files=[mnist.TEST_LABELS])
    failures = info.value.details["failures"]
    assert len(failures) == 2
    assert "HTTP 404" in failures[1] and closed in failures[0]


def test_fetch_rejects_unknown_names_and_no_mirrors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="Not MNIST files"):
        mnist.fetch(tmp_path, mirrors=["http://127.0.0.1:1/"], files=["evil.gz"])
    with pytest.raises(ValidationError, match="at least one mirror"):
        mnist.fetch(tmp_path, mirrors=[])


def test_default_mirrors_are_the_public_ones() -> None:
    assert mnist.DEFAULT_MIRRORS == (
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )


# ------------------------------------------------------------------------------------ loading


def test_load_mnist_shapes_dtypes_and_scaling(real: dict[str, Any]) -> None:
    (x_train, y_train), (x_test, y_test) = mnist.load_mnist(REPO_MNIST)
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32 and y_test.dtype == np.int32
    assert float(x_train.min()) == 0.0 and float(x_train.max()) == 1.0
    raw = real[mnist.TEST_IMAGES].reshape(10000, 784)
    assert np.array_equal(x_test, raw.astype(np.float32) / np.float32(255.0))
    assert np.array_equal(y_test, real[mnist.TEST_LABELS])


@pytest.mark.parametrize(("ndim", "shape"), [(2, (28, 28)), (3, (1, 28, 28))])
def test_load_split_ndim_and_raw(ndim: int, shape: tuple[int, ...]) -> None:
    x, y = mnist.load_split("test", REPO_MNIST, ndim=ndim, scale=False)
    assert x.shape == (10000, *shape) and x.dtype == np.uint8 and y.dtype == np.int32


def test_load_rejects_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="ndim"):
        mnist.load_mnist(REPO_MNIST, ndim=4)
    with pytest.raises(ValidationError, match="split"):
        mnist.load_split("valid", REPO_MNIST)


def test_load_refuses_a_tampered_copy(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(REPO_MNIST, folder)
    data = bytearray((folder / mnist.TEST_LABELS).read_bytes())
    data[-1] ^= 1
    (folder / mnist.TEST_LABELS).write_bytes(bytes(data))
    with pytest.raises(ValidationError, match="Checksum mismatch"):
        mnist.load_split("test", folder)


def test_write_chainer_npz_layout(tmp_path: Path, real: dict[str, Any]) -> None:
    paths = mnist.write_chainer_npz(REPO_MNIST, tmp_path)
    base = tmp_path / "pfnet" / "chainer" / "mnist"
    assert paths == [base / "train.npz", base / "test.npz"]
    assert sorted(p.name for p in base.iterdir()) == ["test.npz", "train.npz"]
    with np.load(base / "test.npz") as npz:
        assert sorted(npz.files) == ["x", "y"]
        assert npz["x"].dtype == np.uint8 and npz["x"].shape == (10000, 784)
        assert npz["y"].dtype == np.uint8 and npz["y"].shape == (10000,)
        assert np.array_equal(npz["y"], real[mnist.TEST_LABELS])
    with np.load(base / "train.npz") as npz:
        assert npz["x"].shape == (60000, 784)
        assert np.array_equal(npz["x"][:5].reshape(5, 28, 28), real[mnist.TRAIN_IMAGES][:5])
    # Kept unless overwrite=True.
    stamp = (base / "test.npz").stat().st_mtime_ns
    mnist.write_chainer_npz(REPO_MNIST, tmp_path)
    assert (base / "test.npz").stat().st_mtime_ns == stamp
