"""Resumable uploads: a large file survives a dropped connection.

The client names an upload session (``X-Trainyard-Upload-Id``: 32 random hex digits) and sends
``Content-Range: bytes START-END/TOTAL`` with the rest of the file. The server appends what it reads
to ``<workspace folder>/uploads/<id>.part`` (kept when the connection drops), and when the part holds
``TOTAL`` bytes publishes it into the artifact store atomically (a hard link, no copy). After a
drop, ``GET …/artifact-uploads/<id>`` tells the client how many bytes the server has, and it sends
only the rest. A part that starts before what the server holds has its overlap skipped (a retry
that repeats bytes is harmless); one that starts after it is refused with ``UploadConflict`` naming
the offset. One writer at a time per session (``flock``, so across workers too); a session is bound
to its path, size and caller; sessions idle for a day are removed.

Example::

    uploads = Uploads(state.workspace_folder("team") / "uploads")
    uploads.receive("ab" * 16, "runs/r1/outputs/big.bin", "alice", "bytes 0-99/100", reader, store)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from trainyard._compat.platform import lock
from trainyard._store.artifacts import LocalArtifactStore
from trainyard.exceptions import NotFoundError, UploadConflict, ValidationError

UPLOAD_HEADER = "x-trainyard-upload-id"
_ID = re.compile(r"^[0-9a-f]{32}$")
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_CHUNK = 1 << 20
_STALE_S = 24 * 3600.0
_LOCK_WAIT_S = 60.0


class Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


def parse_range(header: str | None) -> tuple[int, int, int]:
    """``(start, end exclusive, total)`` of a ``Content-Range: bytes START-END/TOTAL``."""
    match = _RANGE.match((header or "").strip())
    if not match:
        raise ValidationError("A resumable upload needs `Content-Range: bytes START-END/TOTAL`.")
    start, last, total = (int(g) for g in match.groups())
    if not start <= last < total:
        raise ValidationError(f"Content-Range {header!r} is not inside the file.")
    return start, last + 1, total


class Uploads:
    """The upload sessions of one workspace (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _paths(self, upload_id: str) -> tuple[Path, Path]:
        if not isinstance(upload_id, str) or not _ID.match(upload_id):
            raise ValidationError("An upload id is 32 lowercase hex digits.")
        return self.folder / f"{upload_id}.part", self.folder / f"{upload_id}.json"

    @contextlib.contextmanager
    def _locked(self, part: Path, create: bool) -> Iterator[BinaryIO]:
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        try:
            fd = os.open(part, flags, 0o600)
        except FileNotFoundError:
            raise NotFoundError(
                "No such upload session (finished, expired or never begun)."
            ) from None
        with os.fdopen(fd, "r+b") as fh:
            deadline = time.monotonic() + _LOCK_WAIT_S
            while True:
                if lock(fh, blocking=False):
                    break
                if time.monotonic() > deadline:
                    raise UploadConflict("Another request is writing this upload.")
                time.sleep(0.05)
            yield fh

    def session(self, upload_id: str) -> dict[str, Any]:
        """The session's path, total and owner, plus ``offset``: the bytes the server holds."""
        part, meta = self._paths(upload_id)
        try:
            info: dict[str, Any] = json.loads(meta.read_text())
        except (FileNotFoundError, ValueError):
            raise NotFoundError(
                "No such upload session (finished, expired or never begun)."
            ) from None
        with self._locked(part, create=False) as fh:
            info["offset"] = os.fstat(fh.fileno()).st_size
        return info

    def receive(
        self,
        upload_id: str,
        path: str,
        owner: str,
        content_range: str | None,
        body: Readable,
        store: LocalArtifactStore,
        *,
        overwrite: bool = True,
    ) -> dict[str, Any]:
        """Append this part; publish the file when complete. Returns ``{"path", "offset",
        "total", "complete"}``. A dropped connection raises from ``body.read`` with the bytes
        read so far kept."""
        start, end, total = parse_range(content_range)
        part, meta = self._paths(upload_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        want = {"path": path, "total": total, "owner": owner}
        if not meta.exists():
            self._prune()
            meta.write_text(json.dumps(want))
        with self._locked(part, create=True) as fh:
            have = json.loads(meta.read_text())
            if have != want:
                raise UploadConflict(
                    "This upload session belongs to another file, size or caller.",
                    offset=0,
                )
            offset = fh.seek(0, os.SEEK_END)
            if start > offset:
                raise UploadConflict(
                    f"The server holds {offset} bytes of this upload; resume from there.",
                    offset=offset,
                )
            skip, position = offset - start, start
            try:
                while position < end:
                    chunk = body.read(min(_CHUNK, end - position))
                    if not chunk:
                        break
                    position += len(chunk)
                    if skip:  # bytes a retry repeats: the server has them already
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                    if chunk:
                        fh.write(chunk)
                        offset += len(chunk)
            finally:
                fh.flush()
                os.fsync(fh.fileno())
            if body.read(1):
                raise ValidationError("The body is longer than its Content-Range says.")
            if offset < total:
                return {"path": path, "offset": offset, "total": total, "complete": False}
            written = store.adopt(path, part, overwrite=overwrite)
        meta.unlink(missing_ok=True)
        return {"path": path, "offset": written, "total": total, "complete": True}

    def _prune(self) -> None:
        cutoff = time.time() - _STALE_S
        for entry in self.folder.glob("*.*"):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
