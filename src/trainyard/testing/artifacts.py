"""Conformance suite that every :class:`~trainyard._store.artifacts.base.ArtifactStore` must pass.

Use it from pytest by subclassing :class:`ArtifactStoreConformance` and providing a ``store``
fixture that returns a fresh, empty store (as Optuna's ``pytest_storages`` does)::

    import pytest
    from trainyard._store.artifacts import LocalArtifactStore
    from trainyard.testing.artifacts import ArtifactStoreConformance

    class TestLocalConformance(ArtifactStoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            return LocalArtifactStore(tmp_path / "store")

or without pytest's collection, from a script or another test::

    run_artifact_store_conformance(lambda: LocalArtifactStore(tempfile.mkdtemp()))

Test methods take ``store`` and optionally ``tmp_path`` (a scratch folder outside the store).
"""

from __future__ import annotations

import inspect
import io
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from trainyard._store.artifacts.base import ArtifactStore
from trainyard.exceptions import (
    AlreadyExistsError,
    ArtifactNotFound,
    PathSafetyError,
    ValidationError,
)

__all__ = ["UNSAFE_SAMPLE", "ArtifactStoreConformance", "run_artifact_store_conformance"]

#: A few unsafe names every method must refuse (the full corpus is in the path-safety tests).
UNSAFE_SAMPLE = ("../x", "a/../../x", "/etc/passwd", "a\\b", "C:/x", "%2e%2e/x", "a#b", "", "\x00")

_MIB = 1 << 20


class _Boom(Exception):
    """Raised by a stream that fails part-way through."""


class _FailingStream(io.RawIOBase):
    """Yields ``good`` bytes, then raises :class:`_Boom`."""

    def __init__(self, good: int) -> None:
        self._left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise _Boom("stream broke")
        n = min(len(buffer), self._left)
        buffer[:n] = b"x" * n
        self._left -= n
        return n


def _payload(size: int, seed: int = 0) -> bytes:
    block = bytes((i * 7 + seed) % 251 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


class ArtifactStoreConformance:
    """The behaviour every ``ArtifactStore`` shares; subclass it and provide a ``store`` fixture.

    Example::

        class TestMyStore(ArtifactStoreConformance):
            @pytest.fixture
            def store(self):
                return MyStore.fresh()
    """

    # -- the protocol ------------------------------------------------------------------------

    def test_is_an_artifact_store(self, store: ArtifactStore) -> None:
        assert isinstance(store, ArtifactStore)

    def test_empty_store_lists_nothing(self, store: ArtifactStore) -> None:
        assert store.list() == []
        assert store.list("outputs") == []
        assert not store.exists("outputs/model.npz")

    # -- writing and reading -----------------------------------------------------------------

    def test_write_bytes_round_trip(self, store: ArtifactStore) -> None:
        assert store.write_bytes("outputs/a.txt", b"hello") == 5
        assert store.read_bytes("outputs/a.txt") == b"hello"
        assert store.exists("outputs/a.txt")
        assert store.size("outputs/a.txt") == 5

    def test_empty_file(self, store: ArtifactStore) -> None:
        assert store.write_bytes("empty", b"") == 0
        assert store.exists("empty")
        assert store.size("empty") == 0
        assert store.read_bytes("empty") == b""
        assert store.list() == ["empty"]

    def test_write_stream_larger_than_a_chunk(self, store: ArtifactStore) -> None:
        data = _payload(3 * _MIB + 7)
        assert store.write_stream("big.bin", io.BytesIO(data)) == len(data)
        assert store.size("big.bin") == len(data)
        with store.open("big.bin") as f:
            assert f.read() == data

    def test_write_stream_from_raw_stream_with_short_reads(self, store: ArtifactStore) -> None:
        class Trickle(io.RawIOBase):
            def __init__(self) -> None:
                self.sent = 0

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                n = min(len(buffer), 1000, 10_000 - self.sent)
                buffer[:n] = b"t" * n
                self.sent += n
                return n

        assert store.write_stream("trickle", Trickle()) == 10_000  # type: ignore[arg-type]
        assert store.read_bytes("trickle") == b"t" * 10_000

    def test_write_file(self, store: ArtifactStore, tmp_path: Path) -> None:
        local = tmp_path / "model.npz"
        local.write_bytes(b"weights" * 1000)
        assert store.write_file("outputs/model.npz", local) == 7000
        assert store.write_file("outputs/model2.npz", str(local)) == 7000
        assert store.read_bytes("outputs/model.npz") == b"weights" * 1000

    def test_write_file_missing_local_file(self, store: ArtifactStore, tmp_path: Path) -> None:
        with pytest.raises(ValidationError):
            store.write_file("x", tmp_path / "nope")
        assert store.list() == []

    def test_overwrite_replaces_by_default(self, store: ArtifactStore) -> None:
        store.write_bytes("a", b"old")
        store.write_bytes("a", b"newer")
        assert store.read_bytes("a") == b"newer"
        assert store.size("a") == 5
        assert store.list() == ["a"]

    def test_overwrite_false_refuses_and_keeps_old_bytes(self, store: ArtifactStore) -> None:
        assert store.write_bytes("a", b"old", overwrite=False) == 3
        with pytest.raises(AlreadyExistsError):
            store.write_bytes("a", b"new", overwrite=False)
        with pytest.raises(AlreadyExistsError):
            store.write_stream("a", io.BytesIO(b"new"), overwrite=False)
        assert store.read_bytes("a") == b"old"
        assert store.list() == ["a"]

    def test_text_stream_is_refused(self, store: ArtifactStore) -> None:
        with pytest.raises(ValidationError):
            store.write_stream("a.txt", io.StringIO("text"))  # type: ignore[arg-type]
        assert not store.exists("a.txt")
        assert store.list() == []

    def test_write_bytes_refuses_str(self, store: ArtifactStore) -> None:
        with pytest.raises(ValidationError):
            store.write_bytes("a.txt", "text")  # type: ignore[arg-type]
        assert store.list() == []

    def test_failed_stream_leaves_old_version(self, store: ArtifactStore) -> None:
        store.write_bytes("outputs/model.bin", b"version 1")
        with pytest.raises(_Boom):
            store.write_stream("outputs/model.bin", _FailingStream(2 * _MIB))  # type: ignore[arg-type]
        with pytest.raises(_Boom):
            store.write_stream("outputs/new.bin", _FailingStream(10))  # type: ignore[arg-type]
        assert store.read_bytes("outputs/model.bin") == b"version 1"
        assert not store.exists("outputs/new.bin")
        assert store.list() == ["outputs/model.bin"]

    def test_open_reads_in_pieces(self, store: ArtifactStore) -> None:
        store.write_bytes("a", b"0123456789")
        with store.open("a") as f:
            assert f.read(3) == b"012"
            assert f.read() == b"3456789"

    def test_missing_file_raises_not_found(self, store: ArtifactStore, tmp_path: Path) -> None:
        store.write_bytes("outputs/present", b"x")
        for call in (
            lambda: store.open("outputs/missing"),
            lambda: store.read_bytes("outputs/missing"),
            lambda: store.size("outputs/missing"),
            lambda: store.delete("outputs/missing"),
            lambda: store.download("outputs/missing", tmp_path / "d"),
            lambda: store.link("outputs/missing", "elsewhere"),
        ):
            with pytest.raises(ArtifactNotFound):
                call()
        assert not (tmp_path / "d").exists()
        assert store.list() == ["outputs/present"]

    def test_a_folder_prefix_is_not_a_file(self, store: ArtifactStore) -> None:
        store.write_bytes("outputs/a", b"x")
        assert not store.exists("outputs")
        with pytest.raises(ArtifactNotFound):
            store.read_bytes("outputs")
        with pytest.raises(ArtifactNotFound):
            store.size("outputs")
        with pytest.raises(ArtifactNotFound):
            store.delete("outputs")
        assert store.list() == ["outputs/a"]

    # -- names -------------------------------------------------------------------------------

    def test_names_are_normalised(self, store: ArtifactStore) -> None:
        store.write_bytes("./outputs//sub/./f.txt", b"x")
        assert store.list() == ["outputs/sub/f.txt"]
        assert store.read_bytes("outputs/sub/f.txt") == b"x"
        assert store.exists("outputs/sub//f.txt")

    @pytest.mark.parametrize(
        "name", ["données/modèle.npz", "my file (1).txt", "日本語/ファイル.bin", "a~b", "x/~"]
    )
    def test_unicode_and_spaces(self, store: ArtifactStore, name: str) -> None:
        store.write_bytes(name, name.encode())
        assert store.list() == [name]
        assert store.read_bytes(name) == name.encode()

    @pytest.mark.parametrize("bad", UNSAFE_SAMPLE)
    def test_every_method_refuses_unsafe_names(
        self, store: ArtifactStore, tmp_path: Path, bad: str
    ) -> None:
        store.write_bytes("ok", b"ok")
        calls: list[Callable[[], object]] = [
            lambda: store.write_bytes(bad, b"x"),
            lambda: store.write_stream(bad, io.BytesIO(b"x")),
            lambda: store.open(bad),
            lambda: store.read_bytes(bad),
            lambda: store.exists(bad),
            lambda: store.size(bad),
            lambda: store.delete(bad),
            lambda: store.download(bad, tmp_path / "out"),
            lambda: store.link("ok", bad),
            lambda: store.link(bad, "copy"),
            lambda: store.uri(bad),
        ]
        if bad:  # "" means "everything" for the prefix methods
            calls += [lambda: store.list(bad), lambda: store.delete_prefix(bad)]
        for call in calls:
            with pytest.raises(PathSafetyError):
                call()
        assert store.list() == ["ok"]
        assert not (tmp_path / "out").exists()

    # -- listing -----------------------------------------------------------------------------

    def test_list_is_a_folder_prefix(self, store: ArtifactStore) -> None:
        for name in ("outputs/b/c", "outputs/a", "outputs2/x", "outputsx", "logs/driver.txt"):
            store.write_bytes(name, b".")
        assert store.list("outputs") == ["outputs/a", "outputs/b/c"]
        assert store.list("outputs/") == ["outputs/a", "outputs/b/c"]
        assert store.list("./outputs") == ["outputs/a", "outputs/b/c"]
        assert store.list("outputs/b") == ["outputs/b/c"]
        assert store.list("output") == []
        assert store.list("missing/deeper") == []
        assert store.list() == [
            "logs/driver.txt",
            "outputs/a",
            "outputs/b/c",
            "outputs2/x",
            "outputsx",
        ]

    def test_list_exact_file(self, store: ArtifactStore) -> None:
        store.write_bytes("outputs/model.npz", b".")
        store.write_bytes("outputs/model.npz.bak", b".")
        assert store.list("outputs/model.npz") == ["outputs/model.npz"]

    def test_list_is_sorted(self, store: ArtifactStore) -> None:
        names = [f"d{i % 3}/f{i:03d}" for i in range(30)]
        for name in reversed(names):
            store.write_bytes(name, b".")
        assert store.list() == sorted(names)

    # -- deleting ----------------------------------------------------------------------------

    def test_delete(self, store: ArtifactStore) -> None:
        store.write_bytes("outputs/a", b".")
        store.write_bytes("outputs/b", b".")
        store.delete("outputs/a")
        assert not store.exists("outputs/a")
        assert store.list() == ["outputs/b"]
        with pytest.raises(ArtifactNotFound):
            store.delete("outputs/a")

    def test_delete_prefix(self, store: ArtifactStore) -> None:
        for name in ("runs/r1/a", "runs/r1/b/c", "runs/r10/x", "runs/r2/y"):
            store.write_bytes(name, b".")
        assert store.delete_prefix("runs/r1") == 2
        assert store.list() == ["runs/r10/x", "runs/r2/y"]
        assert store.delete_prefix("runs/r1") == 0
        assert store.delete_prefix("runs/r2/y") == 1
        store.write_bytes("runs/r1/a", b"again")  # the prefix is usable again
        assert store.list("runs") == ["runs/r1/a", "runs/r10/x"]
        assert store.delete_prefix("") == 2
        assert store.list() == []

    # -- downloading -------------------------------------------------------------------------

    def test_download(self, store: ArtifactStore, tmp_path: Path) -> None:
        data = _payload(2 * _MIB + 3, seed=1)
        store.write_bytes("outputs/model.npz", data)
        dest = store.download("outputs/model.npz", tmp_path / "deep" / "er" / "m.npz")
        assert dest == tmp_path / "deep" / "er" / "m.npz"
        assert dest.read_bytes() == data
        assert sorted(p.name for p in dest.parent.iterdir()) == ["m.npz"]  # no temp left

    def test_download_into_folder_and_over_a_file(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        store.write_bytes("outputs/model.npz", b"new")
        (tmp_path / "model.npz").write_bytes(b"old local copy")
        dest = store.download("outputs/model.npz", tmp_path)
        assert dest == tmp_path / "model.npz"
        assert dest.read_bytes() == b"new"
        dest2 = store.download("outputs/model.npz", str(tmp_path / "m2"))
        assert Path(dest2).read_bytes() == b"new"

    # -- linking -----------------------------------------------------------------------------

    def test_link_shares_bytes_and_survives_changes_to_source(self, store: ArtifactStore) -> None:
        store.write_bytes("runs/r1/outputs/model.npz", b"v1")
        store.link("runs/r1/outputs/model.npz", "models/m/1/model.npz")
        assert store.read_bytes("models/m/1/model.npz") == b"v1"
        store.write_bytes("runs/r1/outputs/model.npz", b"v2 longer")
        assert store.read_bytes("models/m/1/model.npz") == b"v1"
        store.delete("runs/r1/outputs/model.npz")
        assert store.read_bytes("models/m/1/model.npz") == b"v1"
        assert store.list() == ["models/m/1/model.npz"]

    def test_link_replaces_destination(self, store: ArtifactStore) -> None:
        store.write_bytes("a", b"A")
        store.write_bytes("b", b"B")
        store.link("a", "b")
        assert store.read_bytes("b") == b"A"
        store.link("a", "a")  # linking a file to itself changes nothing
        assert store.read_bytes("a") == b"A"
        assert store.list() == ["a", "b"]

    def test_uri(self, store: ArtifactStore) -> None:
        store.write_bytes("outputs/a.txt", b".")
        uri = store.uri("outputs/a.txt")
        assert isinstance(uri, str)
        assert "://" in uri
        assert uri.endswith("outputs/a.txt")
        assert store.uri("outputs/not-yet.txt").endswith("outputs/not-yet.txt")

    # -- concurrency -------------------------------------------------------------------------

    def test_concurrent_writers_never_interleave(self, store: ArtifactStore) -> None:
        versions = [_payload(256 * 1024, seed=i) for i in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in pool.map(lambda d: store.write_bytes("shared.bin", d), versions * 3):
                pass
        assert store.read_bytes("shared.bin") in versions
        assert store.list() == ["shared.bin"]

    def test_readers_see_whole_versions_while_writers_replace(self, store: ArtifactStore) -> None:
        versions = [bytes([i]) * (512 * 1024) for i in range(4)]
        store.write_bytes("f", versions[0])
        stop = threading.Event()
        torn: list[str] = []

        def reader() -> None:
            while not stop.is_set():
                data = store.read_bytes("f")
                if data not in versions:
                    torn.append(f"{len(data)} bytes, {len(set(data))} distinct values")

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for round_ in range(20):
                store.write_bytes("f", versions[round_ % len(versions)])
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert torn == []

    def test_racing_creators_exactly_one_wins(self, store: ArtifactStore) -> None:
        barrier = threading.Barrier(6)

        def create(i: int) -> bool:
            barrier.wait()
            try:
                store.write_bytes("once", str(i).encode(), overwrite=False)
                return True
            except AlreadyExistsError:
                return False

        with ThreadPoolExecutor(max_workers=6) as pool:
            wins = list(pool.map(create, range(6)))
        assert wins.count(True) == 1
        assert store.read_bytes("once") == str(wins.index(True)).encode()


def _conformance_tests() -> Iterator[tuple[str, Callable[..., None], list[dict[str, Any]]]]:
    """(name, function, parameter sets) for every test in :class:`ArtifactStoreConformance`."""
    for name, func in inspect.getmembers(ArtifactStoreConformance, inspect.isfunction):
        if not name.startswith("test_"):
            continue
        param_sets: list[dict[str, Any]] = [{}]
        for mark in getattr(func, "pytestmark", []):
            if mark.name == "parametrize":
                argname, values = mark.args[0], mark.args[1]
                param_sets = [{**p, argname: v} for p in param_sets for v in values]
        yield name, func, param_sets


def run_artifact_store_conformance(store_factory: Callable[[], ArtifactStore]) -> int:
    """Run the whole suite without pytest's collection; return how many cases passed.

    ``store_factory`` must return a fresh, empty store on every call. The first failure is raised
    (an ``AssertionError`` or the store's own error), naming the failing case.

    Example::

        n = run_artifact_store_conformance(lambda: LocalArtifactStore(tempfile.mkdtemp()))
    """
    suite = ArtifactStoreConformance()
    passed = 0
    for name, func, param_sets in _conformance_tests():
        wants_tmp = "tmp_path" in inspect.signature(func).parameters
        for params in param_sets:
            with tempfile.TemporaryDirectory(prefix="trainyard-conformance-") as scratch:
                kwargs: dict[str, Any] = dict(params)
                if wants_tmp:
                    kwargs["tmp_path"] = Path(scratch)
                try:
                    func(suite, store_factory(), **kwargs)
                except BaseException as err:
                    err.add_note(f"ArtifactStore conformance case {name}{params or ''} failed")
                    raise
            passed += 1
    return passed
