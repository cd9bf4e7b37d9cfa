"""MLflow's multipart artifact upload, served by the team server itself.

MLflow's client (``MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=true``, files of at least
``MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE``) asks ``…/mlflow-artifacts/mpu/create/<folder>`` for
an upload of ``num_parts`` parts and gets back, like S3's presigned URLs, one URL per part. It PUTs
every part to its URL (several at once, *without* its own credentials: the URL carries them), keeps
each answer's ``ETag``, then calls ``…/mpu/complete/<folder>`` with the parts, or
``…/mpu/abort/<folder>`` on a failure.

Here a session is a folder ``<workspace folder>/uploads/mpu/<upload id>/``: ``session.json`` (the
destination, the caller's token, the number of parts, the SHA-256 of the URLs' secret) and one file
per part received (``part-<n>``, streamed to disk, with its MD5 — the ETag — beside it). Complete
checks every listed part and its ETag, joins them in order and publishes the file atomically
(:meth:`LocalArtifactStore.adopt`): a file is there whole or not at all. Only the caller who
created a session may complete or abort it; a session idle for a day is removed.

Example::

    uploads = MultipartUploads(state.workspace_folder("team") / "uploads" / "mpu")
    upload_id, secret = uploads.create("runs/r1/model.bin", "r1", owner="tok1", num_parts=3)
    etag = uploads.receive_part(upload_id, 1, secret, reader)
    uploads.complete(upload_id, "tok1", "runs/r1/model.bin", [(1, etag), ...], store)
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from trainyard._store.artifacts import LocalArtifactStore
from trainyard.server.mlflow_common import MlflowError
from trainyard.server.uploads import Readable

#: S3's limit, which MLflow's client also assumes.
MAX_PARTS = 10_000
_ID = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1 << 20
_STALE_S = 24 * 3600.0
_SESSION = "session.json"


def _missing() -> MlflowError:
    return MlflowError(
        "RESOURCE_DOES_NOT_EXIST",
        "No such multipart upload (completed, aborted, expired or never created).",
        404,
    )


class MultipartUploads:
    """The multipart upload sessions of one workspace (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _session(self, upload_id: str) -> tuple[Path, dict[str, Any]]:
        if not isinstance(upload_id, str) or not _ID.match(upload_id):
            raise MlflowError("INVALID_PARAMETER_VALUE", "An upload_id is 32 lowercase hex digits.")
        where = self.folder / upload_id
        try:
            info: dict[str, Any] = json.loads((where / _SESSION).read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise _missing() from None
        return where, info

    def create(self, dest: str, run_id: str, owner: str, num_parts: int) -> tuple[str, str]:
        """A new session writing ``dest`` (a path in the artifact store): ``(upload id, the
        secret its part URLs carry)``."""
        if isinstance(num_parts, bool) or not isinstance(num_parts, int):
            raise MlflowError("INVALID_PARAMETER_VALUE", "num_parts must be an integer.")
        if not 1 <= num_parts <= MAX_PARTS:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"num_parts must be between 1 and {MAX_PARTS}, got {num_parts}; raise "
                "MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE for a file this large.",
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        self._prune()
        upload_id, secret = secrets.token_hex(16), secrets.token_urlsafe(32)
        where = self.folder / upload_id
        where.mkdir()
        info = {
            "dest": dest,
            "run_id": run_id,
            "owner": owner,
            "num_parts": num_parts,
            "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
            "created": time.time(),
        }
        tmp = where / f".{_SESSION}.tmp"
        tmp.write_text(json.dumps(info))
        os.replace(tmp, where / _SESSION)
        return upload_id, secret

    def receive_part(self, upload_id: str, part_number: int, secret: str, body: Readable) -> str:
        """Store one part (streamed; a part sent again replaces the earlier one). Returns its
        ETag (the MD5 of its bytes, quoted as S3 does). A wrong secret is ``PERMISSION_DENIED``."""
        where, info = self._session(upload_id)
        digest = hashlib.sha256((secret or "").encode()).hexdigest()
        if not hmac.compare_digest(digest, str(info.get("secret_sha256", ""))):
            raise MlflowError(
                "PERMISSION_DENIED", "This part URL's signature does not match its upload.", 403
            )
        if not 1 <= part_number <= int(info["num_parts"]):
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"Part {part_number} is outside this upload's 1..{info['num_parts']}.",
            )
        md5 = hashlib.md5(usedforsecurity=False)
        tmp = where / f".part-{part_number}.{secrets.token_hex(4)}"
        try:
            with open(tmp, "wb") as out:
                while chunk := body.read(_CHUNK):
                    md5.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            etag = f'"{md5.hexdigest()}"'
            (where / f"part-{part_number}.etag").write_text(etag)
            os.replace(tmp, where / f"part-{part_number}")
        except FileNotFoundError:  # completed or aborted while this part was in flight
            raise _missing() from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return etag

    def _owned(self, upload_id: str, owner: str, dest: str) -> Path:
        where, info = self._session(upload_id)
        if info.get("owner") != owner:
            raise MlflowError(
                "PERMISSION_DENIED", "This multipart upload belongs to another caller.", 403
            )
        if info.get("dest") != dest:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"This multipart upload writes {info.get('dest')!r}, not {dest!r}; call "
                "complete/abort with the same folder and file as create.",
            )
        return where

    @staticmethod
    def _claim(where: Path) -> Path:
        claimed = where.with_name(f".{where.name}.{secrets.token_hex(4)}")
        try:  # one complete or abort wins; the other finds no session
            os.rename(where, claimed)
        except FileNotFoundError:
            raise _missing() from None
        return claimed

    def complete(
        self,
        upload_id: str,
        owner: str,
        dest: str,
        parts: list[tuple[int, str]],
        store: LocalArtifactStore,
    ) -> int:
        """Join ``parts`` (``(part number, ETag)``, in order) and publish them as ``dest``.
        Returns the file's size. A missing part or a wrong ETag leaves the session as it was,
        so the client can send the part again and complete once more."""
        where = self._owned(upload_id, owner, dest)
        if not parts:
            raise MlflowError("INVALID_PARAMETER_VALUE", "complete needs at least one part.")
        numbers = [n for n, _ in parts]
        if numbers != sorted(set(numbers)):
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                "List each part once, in ascending part_number order.",
            )
        for number, etag in parts:
            try:
                have = (where / f"part-{number}.etag").read_text()
            except FileNotFoundError:
                if not (where / _SESSION).exists():  # another complete or abort claimed it
                    raise _missing() from None
                raise MlflowError(
                    "INVALID_PARAMETER_VALUE",
                    f"Part {number} of upload {upload_id} was never received; upload it again.",
                ) from None
            if etag.strip('"') != have.strip('"'):
                raise MlflowError(
                    "INVALID_PARAMETER_VALUE",
                    f"Part {number}'s ETag {etag!r} is not the received part's {have!r}.",
                )
        claimed = self._claim(where)
        try:
            joined = claimed / "joined"
            with open(joined, "wb") as out:
                for number, _ in parts:
                    with open(claimed / f"part-{number}", "rb") as part:
                        shutil.copyfileobj(part, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
            return store.adopt(dest, joined)
        finally:
            shutil.rmtree(claimed, ignore_errors=True)

    def abort(self, upload_id: str, owner: str, dest: str) -> None:
        """Drop the session and every part received."""
        claimed = self._claim(self._owned(upload_id, owner, dest))
        shutil.rmtree(claimed, ignore_errors=True)

    def _prune(self) -> None:
        cutoff = time.time() - _STALE_S
        for entry in self.folder.iterdir():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry)


__all__ = ["MAX_PARTS", "MultipartUploads"]
