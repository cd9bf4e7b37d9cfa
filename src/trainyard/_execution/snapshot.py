"""Run snapshots: content-addressed copies of a ``source_directory`` (v1 §4.11).

Two steps. :func:`scan_source` walks the folder, applies the ignore files and the size and file-count
limits, and returns a :class:`SnapshotPlan` (nothing is copied yet, so a limit error comes before
anything is stored). :meth:`SnapshotStore.take` then stores the planned files::

    root/objects/<sha256[:2]>/<sha256>      one file per distinct content, written once
    root/manifests/<snapshot_id>.json       {"id", "created", "files": {relpath: {"sha256", "size",
                                             "mode"}}, "total_bytes", "file_count"}

The snapshot id is the SHA-256 of the canonical JSON of ``files``, so the same tree always gets the
same id and re-taking it writes nothing new. Every relative path read from a manifest goes through
:func:`~trainyard._store.artifacts.paths.safe_relpath` / ``safe_join``.

Example::

    from trainyard.settings import load_settings
    s = load_settings()
    plan = scan_source(Path("chainer-mnist"), max_bytes=s.snapshot_max_bytes,
                       max_files=None if s.snapshot_no_file_limit else s.snapshot_max_files)
    store = SnapshotStore(Path("~/.trainyard/ws/snapshots").expanduser())
    info = store.take(plan)            # SnapshotInfo(id='3f…', file_count=3, …, new_bytes=…)
    store.restore(info.id, Path("/tmp/run1/wd"))
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from trainyard._execution._ignore import PlannedFile, SnapshotPlan, scan_source
from trainyard._store.artifacts.paths import safe_join, safe_relpath
from trainyard.exceptions import ArtifactNotFound, SnapshotException

__all__ = [
    "GcResult",
    "PlannedFile",
    "SnapshotInfo",
    "SnapshotPlan",
    "SnapshotStore",
    "scan_source",
]

_CHUNK = 1024 * 1024
_ID_RE = re.compile(r"^[0-9a-f]{64}$")
# Zip timestamps are fixed so the same snapshot always gives the same archive bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


# --------------------------------------------------------------------------------------------------
# Storing


@dataclass(frozen=True)
class SnapshotInfo:
    """What :meth:`SnapshotStore.take` stored: ``new_bytes`` is what was not in the store before.

    Example::

        info = store.take(plan)
        run.add_properties({"ContentSnapshotId": info.id})
    """

    id: str
    file_count: int
    total_bytes: int
    new_bytes: int


@dataclass(frozen=True)
class GcResult:
    """What :meth:`SnapshotStore.gc` removed.

    Example::

        result = store.gc(keep_ids=ids_still_used_by_runs)
        print(len(result.deleted_manifests), result.deleted_objects, result.freed_bytes)
    """

    deleted_manifests: tuple[str, ...]
    deleted_objects: int
    freed_bytes: int


def _not_found(snapshot_id: str) -> ArtifactNotFound:
    if not isinstance(snapshot_id, str) or not _ID_RE.match(snapshot_id):
        return ArtifactNotFound(
            f"{snapshot_id!r} is not a snapshot id (64 lowercase hex characters).",
            snapshot_id=str(snapshot_id),
        )
    return ArtifactNotFound(f"No snapshot with id {snapshot_id!r}.", snapshot_id=snapshot_id)


def _copy_hashing(src: BinaryIO, dst: BinaryIO | None) -> tuple[str, int]:
    """Stream ``src`` (into ``dst`` if given) in chunks; returns (sha256 hex, size)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        if dst is not None:
            dst.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _entry_mode(entry: dict[str, Any]) -> int:
    return 0o755 if int(entry.get("mode", 0o644)) & 0o111 else 0o644


class SnapshotStore:
    """Content-addressed snapshot storage in a local folder (layout in the module docstring).

    Safe for several processes at once: objects and manifests are written to a temp file and
    renamed into place, and an object that already exists is never rewritten. :meth:`gc` only
    removes entries older than its grace period, so it does not race a concurrent :meth:`take`.

    Example::

        store = SnapshotStore(workspace_dir / "snapshots")
        info = store.take(scan_source(src, max_bytes=300 * 1024 * 1024, max_files=2000))
        zip_path = store.restore_zip(info.id, Path("."))
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._manifests = self.root / "manifests"
        self._tmp = self.root / "tmp"

    # ---- paths -----------------------------------------------------------------------------

    def _object_path(self, sha256: str) -> Path:
        if not _ID_RE.match(sha256):
            raise SnapshotException(
                f"Damaged snapshot manifest: {sha256!r} is not a SHA-256 digest."
            )
        return self._objects / sha256[:2] / sha256

    def _manifest_path(self, snapshot_id: str) -> Path:
        if not isinstance(snapshot_id, str) or not _ID_RE.match(snapshot_id):
            raise _not_found(snapshot_id)
        return self._manifests / f"{snapshot_id}.json"

    def _temp_file(self) -> tuple[int, Path]:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="part-")
        return fd, Path(name)

    def _publish(self, tmp: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)

    # ---- take --------------------------------------------------------------------------------

    def _open_source(self, f: PlannedFile) -> BinaryIO:
        try:
            # O_NOFOLLOW: the plan holds real paths, so a link here means the tree changed under us.
            fd = os.open(f.source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            return os.fdopen(fd, "rb")
        except OSError as err:
            raise SnapshotException(
                f"Cannot read {f.relpath!r} ({f.source}) for the snapshot: {err.strerror or err}. "
                "Fix its permissions, or add it to .trainyardignore in the source directory.",
                path=f.relpath,
            ) from None

    def _store_file(self, f: PlannedFile) -> tuple[str, int, int]:
        """Store one file; returns (sha256, size, bytes newly written)."""
        with self._open_source(f) as src:
            digest, size = _copy_hashing(src, None)
        obj = self._object_path(digest)
        if obj.exists():
            # Refresh the mtime so a concurrent gc's grace period protects it until our manifest lands.
            with contextlib.suppress(OSError):
                os.utime(obj)
            return digest, size, 0
        fd, tmp = self._temp_file()
        try:
            with os.fdopen(fd, "wb") as dst, self._open_source(f) as src:
                # Hash what is actually copied: if the file changed since the first pass, the object
                # must still be named after its content.
                digest, size = _copy_hashing(src, dst)
            obj = self._object_path(digest)
            if obj.exists():
                tmp.unlink()
                return digest, size, 0
            os.chmod(tmp, 0o644)
            self._publish(tmp, obj)
            return digest, size, size
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def take(self, plan: SnapshotPlan) -> SnapshotInfo:
        """Store the planned files and their manifest; return the snapshot's id and sizes.

        Files are hashed while streaming (never held whole in memory); each distinct content is
        stored once, so re-taking an unchanged tree writes no objects (``new_bytes == 0``) and gives
        the same id. Raises :class:`~trainyard.exceptions.SnapshotException` naming a file that can
        no longer be read.

        Example::

            first = store.take(plan)
            again = store.take(scan_source(src, max_bytes=..., max_files=...))
            assert again.id == first.id and again.new_bytes == 0
        """
        entries: dict[str, dict[str, Any]] = {}
        new_bytes = 0
        for f in plan.files:
            rel = safe_relpath(f.relpath)
            try:
                digest, size, written = self._store_file(f)
            except OSError as err:
                if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise SnapshotException(
                    f"No space left on the device holding the workspace's snapshots ({self.root}) "
                    f"while storing {rel!r} ({f.size:,} bytes): free some space (`trainyard env "
                    "prune`, old runs' files) or exclude large files with .trainyardignore, then "
                    "submit again. Nothing was recorded.",
                    path=rel,
                ) from err
            new_bytes += written
            entries[rel] = {
                "sha256": digest,
                "size": size,
                "mode": 0o755 if f.mode & 0o111 else 0o644,
            }
        canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        snapshot_id = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        total = sum(e["size"] for e in entries.values())
        final = self._manifest_path(snapshot_id)
        if final.exists():
            with contextlib.suppress(OSError):
                os.utime(final)
        else:
            manifest = {
                "id": snapshot_id,
                "created": datetime.now(UTC).isoformat(),
                "files": entries,
                "total_bytes": total,
                "file_count": len(entries),
            }
            fd, tmp = self._temp_file()
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(manifest, out, sort_keys=True, indent=1, ensure_ascii=False)
                os.chmod(tmp, 0o644)
                self._publish(tmp, final)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
        return SnapshotInfo(snapshot_id, len(entries), total, new_bytes)

    # ---- receiving (a team server) --------------------------------------------------------------

    def missing_objects(self, digests: Iterable[str]) -> list[str]:
        """The digests among ``digests`` whose content is not stored yet."""
        return [d for d in dict.fromkeys(digests) if not self._object_path(d).exists()]

    def put_object(self, digest: str, stream: BinaryIO) -> int:
        """Store one object sent by a client; ``SnapshotException`` if its bytes do not hash to
        ``digest`` (nothing is stored then). Returns the bytes written (0 if it was there)."""
        obj = self._object_path(digest)
        if obj.exists():
            return 0
        fd, tmp = self._temp_file()
        try:
            with os.fdopen(fd, "wb") as dst:
                actual, size = _copy_hashing(stream, dst)
            if actual != digest:
                raise SnapshotException(
                    f"The uploaded object's content hashes to {actual}, not {digest}: it was "
                    "damaged on the way. Submit again."
                )
            os.chmod(tmp, 0o644)
            self._publish(tmp, obj)
            return size
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def put_manifest(self, manifest: dict[str, Any]) -> str:
        """Store a manifest sent by a client after checking its id and that every object it names
        is stored; returns the snapshot id."""
        files = manifest.get("files")
        if not isinstance(files, dict):
            raise SnapshotException("A snapshot manifest needs its 'files'.")
        entries: dict[str, dict[str, Any]] = {}
        for rel, entry in files.items():
            if not isinstance(entry, dict):
                raise SnapshotException(f"Damaged snapshot manifest entry for {rel!r}.")
            digest, size, mode = entry.get("sha256"), entry.get("size"), entry.get("mode", 0o644)
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise SnapshotException(f"Damaged snapshot manifest entry for {rel!r}.")
            if not self._object_path(str(digest)).exists():
                raise SnapshotException(
                    f"The snapshot names content {digest} that was never uploaded ({rel!r})."
                )
            entries[safe_relpath(str(rel))] = {
                "sha256": digest,
                "size": size,
                "mode": 0o755 if int(mode) & 0o111 else 0o644,
            }
        canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        snapshot_id = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        if manifest.get("id") != snapshot_id:
            raise SnapshotException("The snapshot id does not match its files; submit again.")
        final = self._manifest_path(snapshot_id)
        if not final.exists():
            record = {
                "id": snapshot_id,
                "created": datetime.now(UTC).isoformat(),
                "files": entries,
                "total_bytes": sum(e["size"] for e in entries.values()),
                "file_count": len(entries),
            }
            fd, tmp = self._temp_file()
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(record, out, sort_keys=True, indent=1, ensure_ascii=False)
            os.chmod(tmp, 0o644)
            self._publish(tmp, final)
        return snapshot_id

    # ---- read ----------------------------------------------------------------------------------

    def exists(self, snapshot_id: str) -> bool:
        """Whether a snapshot with this id is stored (a malformed id is simply absent).

        Example::

            store.exists(run.properties["ContentSnapshotId"])
        """
        if not isinstance(snapshot_id, str) or not _ID_RE.match(snapshot_id):
            return False
        return self._manifest_path(snapshot_id).is_file()

    def ids(self) -> list[str]:
        """Every stored snapshot id, sorted.

        Example::

            for snapshot_id in store.ids(): print(snapshot_id)
        """
        if not self._manifests.is_dir():
            return []
        return sorted(p.stem for p in self._manifests.glob("*.json") if _ID_RE.match(p.stem))

    def manifest(self, snapshot_id: str) -> dict[str, Any]:
        """The manifest of a snapshot (see the module docstring for its keys).

        Raises :class:`~trainyard.exceptions.ArtifactNotFound` for an unknown or malformed id, and
        :class:`~trainyard.exceptions.SnapshotException` if the stored manifest is damaged.

        Example::

            sorted(store.manifest(snapshot_id)["files"])  # ['chainer_mnist.py', 'datautils.py']
        """
        path = self._manifest_path(snapshot_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise _not_found(snapshot_id) from None
        try:
            data = json.loads(text)
            files = data["files"]
            if not isinstance(files, dict) or data.get("id") != snapshot_id:
                raise ValueError("bad structure")
        except (ValueError, KeyError, TypeError) as err:
            raise SnapshotException(
                f"The manifest of snapshot {snapshot_id} is damaged ({err}); take a new snapshot.",
                snapshot_id=snapshot_id,
            ) from None
        return dict(data)

    def _members(self, snapshot_id: str) -> Iterator[tuple[str, Path, int]]:
        """(safe relpath, object path, mode) for each file of the snapshot, sorted by path."""
        files: dict[str, dict[str, Any]] = self.manifest(snapshot_id)["files"]
        for name in sorted(files):
            entry = files[name]
            rel = safe_relpath(name)
            obj = self._object_path(str(entry.get("sha256")))
            try:
                size = obj.stat().st_size
            except FileNotFoundError:
                raise ArtifactNotFound(
                    f"Snapshot {snapshot_id} is incomplete: the content of {rel!r} is missing from "
                    f"the store ({obj}). Take a new snapshot.",
                    snapshot_id=snapshot_id,
                    path=rel,
                ) from None
            if size != entry.get("size"):
                raise SnapshotException(
                    f"Snapshot {snapshot_id} is damaged: the stored content of {rel!r} has "
                    f"{size} bytes, the manifest says {entry.get('size')}.",
                    snapshot_id=snapshot_id,
                    path=rel,
                )
            yield rel, obj, _entry_mode(entry)

    def open_file(self, snapshot_id: str, path: str) -> tuple[BinaryIO, int]:
        """One file of a snapshot, open for reading, and its size; ``ArtifactNotFound`` when the
        snapshot has no such file (``path`` goes through the one path-safety check)."""
        rel = safe_relpath(path)
        entry = self.manifest(snapshot_id)["files"].get(rel)
        try:
            if not isinstance(entry, dict):
                raise FileNotFoundError(rel)
            fh = self._object_path(str(entry.get("sha256"))).open("rb")
        except FileNotFoundError:
            raise ArtifactNotFound(
                f"Snapshot {snapshot_id} has no file {rel!r}; see the run's snapshot list.",
                snapshot_id=snapshot_id,
                path=rel,
            ) from None
        size = os.fstat(fh.fileno()).st_size
        if size != entry.get("size"):
            fh.close()
            raise SnapshotException(
                f"Snapshot {snapshot_id} is damaged: the stored content of {rel!r} has {size} "
                f"bytes, the manifest says {entry.get('size')}.",
                snapshot_id=snapshot_id,
                path=rel,
            )
        return fh, size

    # ---- restore -------------------------------------------------------------------------------

    def restore(self, snapshot_id: str, dest: Path) -> Path:
        """Materialise the snapshot as a folder at ``dest`` (missing or empty); returns ``dest``.

        Files are copied (not linked) so the run cannot alter the store; the executable bit is
        restored. The tree is built in a temporary sibling folder and renamed into place, so
        ``dest`` never holds a partial tree. Raises :class:`~trainyard.exceptions.ArtifactNotFound`
        for an unknown id and :class:`~trainyard.exceptions.SnapshotException` if ``dest`` is a
        file or a non-empty folder.

        Example::

            wd = store.restore(run.properties["ContentSnapshotId"], run_dir / "wd")
        """
        dest = Path(dest)
        members = list(self._members(snapshot_id))  # validates everything before touching dest
        if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
            raise SnapshotException(
                f"Cannot restore snapshot {snapshot_id} into {str(dest)!r}: it exists and is "
                "not an empty folder. Choose a new folder.",
                snapshot_id=snapshot_id,
                dest=str(dest),
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.restore-", dir=dest.parent))
        try:
            for rel, obj, mode in members:
                target = safe_join(staging, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(obj, target)
                os.chmod(target, mode)
            os.chmod(staging, 0o755)
            os.replace(staging, dest)  # POSIX rename also replaces an empty folder
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return dest

    def restore_zip(self, snapshot_id: str, path: Path) -> Path:
        """Write the snapshot as a zip and return its path (v1's ``restore_snapshot``).

        ``path`` is the zip file to write, or an existing folder to write ``<snapshot_id>.zip``
        into. Members are the snapshot's relative paths with their unix modes and a fixed
        timestamp, so the same snapshot always gives the same bytes. The zip appears atomically.

        Example::

            store.restore_zip(snapshot_id, Path("."))   # Path('./3f….zip')
        """
        target = Path(path)
        if target.is_dir():
            target = target / f"{snapshot_id}.zip"
        members = list(self._members(snapshot_id))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
                for rel, obj, mode in members:
                    info = zipfile.ZipInfo(rel, date_time=_ZIP_DATE)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = (stat.S_IFREG | mode) << 16
                    with obj.open("rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return target

    # ---- delete / gc -----------------------------------------------------------------------------

    def delete(self, snapshot_id: str, *, missing_ok: bool = False) -> None:
        """Delete a snapshot's manifest; its objects go at the next :meth:`gc`.

        Raises :class:`~trainyard.exceptions.ArtifactNotFound` for an unknown id unless
        ``missing_ok`` (for idempotent retries).

        Example::

            store.delete(snapshot_id)
            store.gc()
        """
        try:
            self._manifest_path(snapshot_id).unlink()
        except FileNotFoundError:
            if not missing_ok:
                raise _not_found(snapshot_id) from None
        except ArtifactNotFound:
            if not missing_ok:
                raise

    def gc(
        self, keep_ids: Iterable[str] | None = None, *, grace_seconds: float = 3600.0
    ) -> GcResult:
        """Delete unreferenced objects (and, given ``keep_ids``, the manifests not in it).

        With ``keep_ids=None`` every stored manifest is kept and only objects no manifest refers to
        are deleted. With ``keep_ids``, manifests whose id is not listed are deleted first. Anything
        younger than ``grace_seconds`` (by mtime) is left alone, as are leftover temp files, so a
        :meth:`take` running at the same time is never broken. A damaged kept manifest stops the
        collection with :class:`~trainyard.exceptions.SnapshotException` (deleting by guesswork
        could destroy live snapshots).

        Example::

            store.gc(keep_ids={r.properties["ContentSnapshotId"] for r in runs})
        """
        cutoff = time.time() - grace_seconds
        keep = None if keep_ids is None else set(keep_ids)

        def old(path: Path) -> bool:
            try:
                return path.stat().st_mtime <= cutoff
            except FileNotFoundError:
                return False

        deleted: list[str] = []
        live: set[str] = set()
        for snapshot_id in self.ids():
            path = self._manifest_path(snapshot_id)
            if keep is not None and snapshot_id not in keep and old(path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    deleted.append(snapshot_id)
                continue
            try:
                files = self.manifest(snapshot_id)["files"]
            except ArtifactNotFound:
                continue  # deleted concurrently
            live.update(str(e.get("sha256")) for e in files.values())
        removed = 0
        freed = 0
        if self._objects.is_dir():
            for shard in self._objects.iterdir():
                if not shard.is_dir():
                    continue
                for obj in shard.iterdir():
                    if obj.name in live or not old(obj):
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        size = obj.stat().st_size
                        obj.unlink()
                        removed += 1
                        freed += size
        if self._tmp.is_dir():
            for tmp in self._tmp.iterdir():
                if old(tmp):
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
        return GcResult(tuple(deleted), removed, freed)
