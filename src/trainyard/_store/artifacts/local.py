"""``LocalArtifactStore``: the :class:`ArtifactStore` on a local (or shared POSIX) folder.

Writes are staged in a ``.tmp-*`` file in the destination's own folder, fsynced, then published
with ``os.replace`` (or ``os.link`` when the caller must not overwrite), so a file is either the old
version or the complete new one, never a torn mix. ``.tmp-*`` names are reserved and never listed.
Every name goes through :func:`~trainyard._store.artifacts.paths.safe_join`.

Example::

    from trainyard._store.artifacts import LocalArtifactStore
    store = LocalArtifactStore("/data/ws/artifacts")
    store.write_bytes("runs/r1/outputs/model.npz", b"...")
    store.link("runs/r1/outputs/model.npz", "models/mnist/1/model.npz")  # a hard link, no copy
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from trainyard._store.artifacts.paths import safe_join, safe_relpath
from trainyard.exceptions import (
    AlreadyExistsError,
    ArtifactNotFound,
    PathSafetyError,
    StoreError,
    ValidationError,
)

__all__ = ["TMP_PREFIX", "LocalArtifactStore"]

#: Prefix of in-progress files; reserved, never listed.
TMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20
_T = TypeVar("_T")
# A concurrent delete may prune a folder between our makedirs and our create; that many retries.
_CREATE_ATTEMPTS = 8
# errnos meaning "this file system cannot hard-link here": fall back to a copy.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EOPNOTSUPP}


def _tmp_name() -> str:
    return f"{TMP_PREFIX}{secrets.token_hex(8)}"


def _copy(src: BinaryIO, dst: BinaryIO) -> int:
    """Copy ``src`` to ``dst`` in fixed chunks; never more than one chunk in memory."""
    total = 0
    while True:
        chunk = src.read(_CHUNK)
        if chunk is None:
            raise ValidationError(
                "The stream is non-blocking and has no data ready; pass a blocking stream."
            )
        if not chunk:
            return total
        if isinstance(chunk, str):
            raise ValidationError("The stream returned str; open it in binary mode ('rb').")
        dst.write(chunk)
        total += len(chunk)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; some file systems refuse fsync on folders, which is fine.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalArtifactStore:
    """An :class:`~trainyard._store.artifacts.base.ArtifactStore` on the folder ``root``.

    ``root`` is created if missing. ``fsync=False`` skips the fsyncs (faster, still atomic against
    crashes of the process, but not against power loss); use it only for throwaway stores.

    Example::

        store = LocalArtifactStore(tmp_path / "artifacts")
        store.write_bytes("outputs/a.txt", b"hi")
        store.list()            # ['outputs/a.txt']
        store.uri("outputs/a.txt")  # 'file:///.../artifacts/outputs/a.txt'
    """

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        try:
            Path(root).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"Cannot create the artifact folder {str(root)!r}: {err}.", path=str(root)
            ) from err
        self._root = Path(os.path.realpath(root))
        self._fsync = fsync

    @property
    def root(self) -> Path:
        """The store's folder, symlinks resolved."""
        return self._root

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self._root)!r})"

    # -- paths -------------------------------------------------------------------------------

    def _path(self, path: str) -> Path:
        rel = safe_relpath(path)
        for seg in rel.split("/"):
            if seg.startswith(TMP_PREFIX):
                raise PathSafetyError(
                    f"Unsafe path {path!r}: names starting with {TMP_PREFIX!r} are reserved for "
                    "writes in progress.",
                    path=path,
                    reason="reserved name",
                )
        return safe_join(self._root, rel)

    def _prefix_path(self, prefix: str) -> tuple[str, Path]:
        if prefix in ("", "."):
            return "", self._root
        rel = safe_relpath(prefix)
        return rel, self._path(rel)

    def _regular_file(self, path: str) -> Path:
        target = self._path(path)
        try:
            st = os.stat(target)
        except (FileNotFoundError, NotADirectoryError):
            raise self._not_found(path) from None
        except OSError as err:
            raise self._store_error("read", path, err) from err
        if not stat.S_ISREG(st.st_mode):
            raise self._not_found(path)
        return target

    @staticmethod
    def _not_found(path: str) -> ArtifactNotFound:
        return ArtifactNotFound(f"No artifact {path!r} in the store.", path=path)

    @staticmethod
    def _store_error(action: str, path: str, err: OSError) -> StoreError:
        return StoreError(
            f"Could not {action} artifact {path!r}: {err.strerror or err}.",
            path=path,
            errno=err.errno,
        )

    # -- writing -----------------------------------------------------------------------------

    def _in_folder(self, path: str, folder: Path, make: Callable[[Path], _T]) -> _T:
        """Create ``folder`` (and parents), then ``make(folder / <fresh temp name>)``."""
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                os.makedirs(folder, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise AlreadyExistsError(
                    f"Cannot write artifact {path!r}: part of its folder path is a file.", path=path
                ) from None
            try:
                return make(folder / _tmp_name())
            except FileNotFoundError:
                # A concurrent delete pruned the (empty) folder after makedirs: create it again.
                if attempt == _CREATE_ATTEMPTS - 1 or os.path.isdir(folder):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _open_exclusive(tmp: Path) -> tuple[int, Path]:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp

    def _commit(self, path: str, tmp: Path, target: Path, overwrite: bool) -> None:
        if target.is_dir() and not target.is_symlink():
            raise AlreadyExistsError(
                f"Cannot write artifact {path!r}: a folder of that name exists.", path=path
            )
        if overwrite:
            os.replace(tmp, target)
            return
        try:
            # link() fails if the target exists, atomically: of two racing writers one wins.
            os.link(tmp, target)
        except FileExistsError:
            raise AlreadyExistsError(
                f"Artifact {path!r} already exists; pass overwrite=True to replace it.", path=path
            ) from None
        except OSError as err:
            if err.errno not in _NO_LINK:
                raise
            if os.path.lexists(target):
                raise AlreadyExistsError(
                    f"Artifact {path!r} already exists; pass overwrite=True to replace it.",
                    path=path,
                ) from None
            os.replace(tmp, target)
            return
        os.unlink(tmp)

    def _publish(self, path: str, fill: Callable[[BinaryIO], int], overwrite: bool) -> int:
        target = self._path(path)
        tmp: Path | None = None
        try:
            if not overwrite and os.path.lexists(target):
                raise AlreadyExistsError(
                    f"Artifact {path!r} already exists; pass overwrite=True to replace it.",
                    path=path,
                )
            fd, tmp = self._in_folder(path, target.parent, self._open_exclusive)
            with os.fdopen(fd, "wb") as f:
                written = fill(f)
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            self._commit(path, tmp, target, overwrite)
            tmp = None
        except OSError as err:
            if isinstance(err, IsADirectoryError):
                raise AlreadyExistsError(
                    f"Cannot write artifact {path!r}: a folder of that name exists.", path=path
                ) from None
            raise self._store_error("write", path, err) from err
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        if self._fsync:
            _fsync_dir(target.parent)
        return written

    def write_stream(self, path: str, stream: BinaryIO, *, overwrite: bool = True) -> int:
        """Copy ``stream`` to ``path`` in 1 MiB chunks, atomically; return the bytes written.

        Example::

            with open("model.npz", "rb") as f:
                store.write_stream("outputs/model.npz", f)
        """
        return self._publish(path, lambda out: _copy(stream, out), overwrite)

    def write_file(self, path: str, local_path: str | Path, *, overwrite: bool = True) -> int:
        """Upload the local file ``local_path`` to ``path``; return the bytes written.

        Example::

            store.write_file("outputs/model.npz", "./outputs/model.npz")
        """
        try:
            src = open(local_path, "rb")  # noqa: SIM115 - closed below, after the publish
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ValidationError(
                f"Cannot upload {str(local_path)!r}: no such local file.",
                local_path=str(local_path),
            ) from None
        except OSError as err:
            raise ValidationError(
                f"Cannot read {str(local_path)!r}: {err.strerror or err}.",
                local_path=str(local_path),
            ) from err
        with src:
            return self.write_stream(path, src, overwrite=overwrite)

    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = True) -> int:
        """Write ``data`` to ``path`` atomically; return ``len(data)``.

        Example::

            store.write_bytes("logs/driver.txt", b"hello\\n")
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValidationError(
                f"write_bytes needs bytes, not {type(data).__name__}; encode text first.", path=path
            )
        view = memoryview(data).cast("B")

        def fill(out: BinaryIO) -> int:
            out.write(view)
            return view.nbytes

        return self._publish(path, fill, overwrite)

    # -- reading -----------------------------------------------------------------------------

    def open(self, path: str) -> BinaryIO:
        """Open the file for binary reading; the caller closes it.

        Example::

            with store.open("outputs/model.npz") as f:
                header = f.read(16)
        """
        target = self._path(path)
        try:
            # O_NONBLOCK so that a FIFO planted in the folder cannot hang us; no effect on files.
            fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._not_found(path) from None
        except OSError as err:
            raise self._store_error("open", path, err) from err
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise self._not_found(path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    def read_bytes(self, path: str) -> bytes:
        """Return the whole file.

        Example::

            store.read_bytes("logs/driver.txt")   # b'hello\\n'
        """
        with self.open(path) as f:
            try:
                return f.read()
            except OSError as err:
                raise self._store_error("read", path, err) from err

    def exists(self, path: str) -> bool:
        """Whether a file (not a folder) exists at ``path``.

        Example::

            store.exists("outputs/model.npz")     # True
        """
        return os.path.isfile(self._path(path))

    def size(self, path: str) -> int:
        """Size of the file in bytes.

        Example::

            store.size("logs/driver.txt")         # 6
        """
        return os.stat(self._regular_file(path)).st_size

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Sorted paths of the files under the folder ``prefix``, or ``[prefix]`` if it is a file.

        Symlinked folders are not descended into; symlinked files are listed only when they point
        inside the store. Temp files and names the store would refuse are skipped.

        Example::

            store.list("outputs")                 # ['outputs/a', 'outputs/b/c']
        """
        rel, base = self._prefix_path(prefix)
        if rel and os.path.isfile(base):
            return [rel]
        out: builtins.list[str] = []
        for name in self._walk(base, rel):
            try:
                safe_relpath(name)
            except PathSafetyError:
                continue
            out.append(name)
        out.sort()
        return out

    def _walk(self, folder: Path, rel: str) -> Iterator[str]:
        try:
            entries = builtins.list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as err:
            raise self._store_error("list", rel or ".", err) from err
        root = str(self._root) + os.sep
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX):
                continue
            child = f"{rel}/{entry.name}" if rel else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    yield from self._walk(Path(entry.path), child)
                elif entry.is_file(follow_symlinks=False):
                    yield child
                elif entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    if real.startswith(root) and os.path.isfile(real):
                        yield child
            except OSError:
                continue  # vanished while listing (a concurrent delete)

    def download(self, path: str, dest: str | Path) -> Path:
        """Stream the file to ``dest`` (atomically); into ``dest/<name>`` if ``dest`` is a folder.

        Example::

            store.download("outputs/model.npz", "./model.npz")   # Path('model.npz')
        """
        with self.open(path) as src:
            target = Path(dest)
            if target.is_dir():
                target = target / safe_relpath(path).rsplit("/", 1)[-1]
            tmp: Path | None = None
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.parent / _tmp_name()
                with open(tmp, "xb") as out:
                    _copy(src, out)
                    out.flush()
                    if self._fsync:
                        os.fsync(out.fileno())
                os.replace(tmp, target)
                tmp = None
            except OSError as err:
                raise ValidationError(
                    f"Cannot download artifact {path!r} to {str(target)!r}: {err.strerror or err}.",
                    path=path,
                    dest=str(target),
                ) from err
            finally:
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
        return target

    # -- deleting ----------------------------------------------------------------------------

    def _prune(self, folder: Path) -> None:
        """Remove now-empty folders from ``folder`` up to (not including) the root."""
        while folder != self._root and self._root in folder.parents:
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = folder.parent

    def delete(self, path: str) -> None:
        """Delete one file (a symlink is removed, not its target).

        Example::

            store.delete("outputs/tmp.bin")
        """
        target = self._path(path)
        if not os.path.isfile(target):
            raise self._not_found(path)
        try:
            os.unlink(target)
        except FileNotFoundError:
            raise self._not_found(path) from None
        except OSError as err:
            raise self._store_error("delete", path, err) from err
        self._prune(target.parent)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every file :meth:`list` returns for ``prefix``; return how many were deleted.

        Example::

            store.delete_prefix("runs/r1")        # 12
        """
        rel, base = self._prefix_path(prefix)
        deleted = 0
        for name in self.list(rel):
            try:
                os.unlink(self._path(name))
                deleted += 1
            except FileNotFoundError:
                continue  # deleted concurrently
            except OSError as err:
                raise self._store_error("delete", name, err) from err
        if base.is_dir() and not base.is_symlink():
            for folder, _dirs, _files in os.walk(base, topdown=False):
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
        self._prune(base if base.is_dir() else base.parent)
        return deleted

    def remove_stale_temp_files(self, older_than_s: float = 24 * 3600) -> int:
        """Remove ``.tmp-*`` files left by writers that died, older than ``older_than_s`` seconds.

        Not part of the :class:`ArtifactStore` protocol; a maintenance task for the local folder.

        Example::

            store.remove_stale_temp_files(older_than_s=3600)   # 2
        """
        cutoff = time.time() - older_than_s
        removed = 0
        for folder, dirs, files in os.walk(self._root):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
            for name in files:
                if not name.startswith(TMP_PREFIX):
                    continue
                full = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    if os.lstat(full).st_mtime < cutoff:
                        os.unlink(full)
                        removed += 1
        return removed

    # -- linking and addressing --------------------------------------------------------------

    def link(self, src: str, dst: str) -> None:
        """Make ``dst`` a hard link to ``src`` (a copy across devices), replacing ``dst`` atomically.

        Example::

            store.link("runs/r1/outputs/model.npz", "models/mnist/1/model.npz")
        """
        source = self._regular_file(src)
        target = self._path(dst)
        if source == target:
            return

        def hard_link(tmp: Path) -> Path:
            os.link(source, tmp)
            return tmp

        tmp: Path | None = None
        try:
            try:
                tmp = self._in_folder(dst, target.parent, hard_link)
            except FileNotFoundError:
                raise self._not_found(src) from None  # the source went away meanwhile
            except OSError as err:
                if err.errno not in _NO_LINK:
                    raise
                with open(source, "rb") as f:  # another device, or no hard links here: copy
                    self.write_stream(dst, f)
                return
            self._commit(dst, tmp, target, overwrite=True)
            tmp = None
        except OSError as err:
            raise self._store_error("link", dst, err) from err
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        if self._fsync:
            _fsync_dir(target.parent)

    def adopt(self, path: str, staged: Path, *, overwrite: bool = True) -> int:
        """Publish the finished file ``staged`` (outside the store: a resumable upload's part) as
        ``path``, atomically, by hard link where the file system allows (else a copy); ``staged``
        is removed. Returns its size.

        Example::

            store.adopt("runs/r1/outputs/big.bin", Path("/srv/ty/team/uploads/ab12.part"))
        """
        target = self._path(path)
        if not overwrite and os.path.lexists(target):
            raise AlreadyExistsError(
                f"Artifact {path!r} already exists; pass overwrite=True to replace it.", path=path
            )
        size = os.stat(staged).st_size

        def hard_link(tmp: Path) -> Path:
            os.link(staged, tmp)
            return tmp

        tmp: Path | None = None
        try:
            try:
                tmp = self._in_folder(path, target.parent, hard_link)
            except OSError as err:
                if err.errno not in _NO_LINK:
                    raise
                with open(staged, "rb") as f:
                    self.write_stream(path, f, overwrite=overwrite)
            else:
                self._commit(path, tmp, target, overwrite)
                tmp = None
            os.unlink(staged)
        except OSError as err:
            raise self._store_error("write", path, err) from err
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        if self._fsync:
            _fsync_dir(target.parent)
        return size

    def local_file(self, path: str) -> Path | None:
        return self._regular_file(path)

    def uri(self, path: str) -> str:
        """``file://`` URI of the file (it need not exist).

        Example::

            store.uri("outputs/model.npz")        # 'file:///data/artifacts/outputs/model.npz'
        """
        return self._path(path).as_uri()
