"""The REST implementation of the bytes seam: an :class:`ArtifactStore` over HTTP.

Files of one workspace live under ``/api/v1/workspaces/<workspace>/artifacts/<path>``: ``PUT``
streams a body in (the server stages it and publishes it atomically; ``?overwrite=0`` refuses an
existing file), ``GET`` streams it out (``Range`` for a part: :meth:`open` returns a seekable reader
that asks for what it reads), ``HEAD`` answers ``exists``/``size``, ``DELETE`` removes a file;
``GET …/artifacts-list?prefix=`` lists files, ``POST …/artifacts-delete-prefix`` removes a folder
and ``POST …/artifacts-link`` links one. Paths go through the same choke point as the local store before they leave.

Example::

    store = RestArtifactStore(Transport("http://127.0.0.1:8765", token), "team")
    store.write_bytes("runs/r1/outputs/a.txt", b"hi")
"""

from __future__ import annotations

import builtins
import io
import json
import os
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import quote

from trainyard._store.artifacts.paths import safe_relpath
from trainyard._store.rest import paging
from trainyard._store.rest.protocol import API_PREFIX
from trainyard._store.rest.transport import Transport, quote_path
from trainyard.exceptions import ArtifactNotFound, NotFoundError, UploadConflict, ValidationError

#: Files at least this large go up as resumable uploads: a dropped connection costs only the part
#: in flight, not the whole file.
RESUMABLE_BYTES = 8 << 20


class _RemoteReader(io.RawIOBase):
    """A seekable, read-only view of one remote file: each read is a ``Range`` request."""

    def __init__(self, store: RestArtifactStore, path: str, size: int) -> None:
        self._store = store
        self._path = path
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if self._pos >= self._size:
            return b""
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        data = self._store.read_range(self._path, self._pos, end)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class RestArtifactStore:
    """The artifact store of one workspace on a ``trainyard server``."""

    def __init__(self, transport: Transport, workspace: str) -> None:
        self.transport = transport
        self.workspace = workspace
        self._ws = f"{API_PREFIX}/workspaces/{quote(workspace, safe='')}"
        self._base = f"{self._ws}/artifacts"

    def _url(self, path: str, query: str = "") -> str:
        return f"{self._base}/{quote_path(safe_relpath(path))}{query}"

    # -- writes -------------------------------------------------------------------------------
    def write_stream(self, path: str, stream: BinaryIO, *, overwrite: bool = True) -> int:
        url = self._url(path, "" if overwrite else "?overwrite=0")
        if isinstance(stream, io.TextIOBase):
            raise ValidationError("The stream is text; open it in binary mode ('rb').")
        if _sendable(stream):
            return self._put(url, stream)
        # A stream that cannot be re-read (or may hand out str): stage it locally, checked as
        # the local store checks it, so a retry can send it again and a bad stream sends nothing.
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spooled:
            while True:
                chunk = stream.read(1 << 20)
                if chunk is None:
                    raise ValidationError(
                        "The stream is non-blocking and has no data ready; pass a blocking stream."
                    )
                if not chunk:
                    break
                if isinstance(chunk, str):
                    raise ValidationError("The stream returned str; open it in binary mode ('rb').")
                spooled.write(chunk)
            spooled.seek(0)
            return self._put(url, cast(BinaryIO, spooled))

    def _put(self, url: str, body: BinaryIO) -> int:
        size = _remaining(body)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if size >= RESUMABLE_BYTES:
            return self._put_resumable(url, body, size, headers)
        resp = self.transport.request("PUT", url, body, headers=headers)
        resp.read()
        return size

    def _put_resumable(self, url: str, body: BinaryIO, size: int, headers: dict[str, str]) -> int:
        """Send the file as one resumable upload: after a dropped connection (or a part the server
        refuses), ask what the server holds and send only the rest."""
        upload_id = uuid.uuid4().hex
        base = body.tell()

        def part(offset: int) -> dict[str, str]:
            body.seek(base + offset)
            return {
                "Content-Length": str(size - offset),
                "Content-Range": f"bytes {offset}-{size - 1}/{size}",
            }

        def resume() -> dict[str, str]:
            try:
                answer = self.transport.call_json("GET", f"{self._ws}/artifact-uploads/{upload_id}")
                offset = int(answer["offset"])
            except NotFoundError:
                offset = 0
            return part(min(offset, size - 1))

        hdrs = {**headers, "X-Trainyard-Upload-Id": upload_id, **part(0)}
        for attempt in range(8):
            try:
                resp = self.transport.request("PUT", url, body, headers=hdrs, resume=resume)
            except UploadConflict:
                if attempt == 7:
                    raise
                hdrs.update(resume())
                continue
            answer = json.loads(resp.read() or b"{}")
            if answer.get("complete", True):
                return size
            hdrs.update(part(int(answer["offset"])))  # the server took part: send the rest
        raise UploadConflict(f"Upload of {url} did not complete.", upload_id=upload_id)

    def write_file(self, path: str, local_path: str | Path, *, overwrite: bool = True) -> int:
        try:
            with open(local_path, "rb") as fh:
                return self.write_stream(path, fh, overwrite=overwrite)
        except (FileNotFoundError, IsADirectoryError) as err:
            raise ValidationError(f"Cannot upload {local_path}: {err.strerror}.") from None

    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = True) -> int:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValidationError(
                f"write_bytes needs bytes, not {type(data).__name__}; encode text first.", path=path
            )
        return self._put(
            self._url(path, "" if overwrite else "?overwrite=0"), io.BytesIO(bytes(data))
        )

    # -- reads --------------------------------------------------------------------------------
    def _head(self, path: str) -> int | None:
        try:
            resp = self.transport.request("HEAD", self._url(path))
        except ArtifactNotFound:
            return None
        resp.read()
        return int(resp.getheader("Content-Length") or 0)

    def read_range(self, path: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the file (used by the readers :meth:`open` returns)."""
        if end <= start:
            return b""
        headers = {"Range": f"bytes={start}-{end - 1}"}
        return self.transport.request("GET", self._url(path), headers=headers).read()

    def open(self, path: str) -> BinaryIO:
        size = self._head(path)
        if size is None:
            raise ArtifactNotFound(f"No artifact {path!r}.", path=path)
        reader = io.BufferedReader(_RemoteReader(self, safe_relpath(path), size), 1 << 20)
        return cast(BinaryIO, reader)

    def iter_bytes(self, path: str) -> Iterator[bytes]:
        """The file's bytes, streamed in chunks."""
        return self.transport.stream(self._url(path))

    def read_bytes(self, path: str) -> bytes:
        return b"".join(self.iter_bytes(path))

    def exists(self, path: str) -> bool:
        return self._head(path) is not None

    def size(self, path: str) -> int:
        size = self._head(path)
        if size is None:
            raise ArtifactNotFound(f"No artifact {path!r}.", path=path)
        return size

    def list(self, prefix: str = "") -> builtins.list[str]:
        rel = safe_relpath(prefix) if prefix not in ("", ".") else ""
        base = f"{self._ws}/artifacts-list?prefix={quote(rel, safe='/')}"

        def fetch(cursor: str | None) -> tuple[builtins.list[Any], str | None]:
            query = f"&page_cursor={quote(cursor, safe='')}" if cursor else ""
            answer = self.transport.call_json("GET", base + query) or {}
            after = answer.get(paging.NEXT)
            return list(answer.get("paths", [])), (str(after) if after else None)

        return [str(p) for p in paging.follow(fetch)]

    def download(self, path: str, dest: str | Path) -> Path:
        target = Path(dest)
        if target.is_dir():
            target = target / safe_relpath(path).rsplit("/", 1)[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in self.iter_bytes(path):
                    out.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    # -- deletes and links ----------------------------------------------------------------------
    def delete(self, path: str) -> None:
        self.transport.request("DELETE", self._url(path)).read()

    def delete_prefix(self, prefix: str) -> int:
        rel = safe_relpath(prefix) if prefix not in ("", ".") else ""
        answer = self.transport.call_json(
            "POST", f"{self._ws}/artifacts-delete-prefix", {"prefix": rel}
        )
        return int((answer or {}).get("deleted", 0))

    def link(self, src: str, dst: str) -> None:
        self.transport.call_json(
            "POST",
            f"{self._ws}/artifacts-link",
            {"src": safe_relpath(src), "dst": safe_relpath(dst)},
        )

    def local_file(self, path: str) -> Path | None:
        if not self.exists(path):
            raise ArtifactNotFound(f"No artifact {path!r}.", path=path)
        return None

    def uri(self, path: str) -> str:
        return f"{self.transport.url}{self._url(path)}"


def _sendable(stream: BinaryIO) -> bool:
    """A regular file (or an in-memory buffer) opened for binary reading: sent as it is."""
    if isinstance(stream, io.BytesIO):
        return True
    try:
        return bool(stream.seekable()) and stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


def _remaining(stream: BinaryIO) -> int:
    here = stream.tell()
    stream.seek(0, io.SEEK_END)
    end = stream.tell()
    stream.seek(here)
    return end - here
