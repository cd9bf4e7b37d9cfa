"""Taking a snapshot into a team server's workspace: only the contents it lacks travel.

The files of a :class:`~trainyard._execution.snapshot.SnapshotPlan` are hashed locally (streamed),
the server is asked which of the SHA-256 objects it already has, the missing ones are uploaded (the
server checks each one's hash), then the manifest, whose id the server checks too. The result is the
same :class:`~trainyard._execution.snapshot.SnapshotInfo` (same id for the same tree) as a local
take.

Example::

    info = upload_snapshot(transport, "team", plan)
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from trainyard._execution.snapshot import SnapshotInfo, SnapshotPlan
from trainyard._store.artifacts.paths import safe_relpath
from trainyard._store.rest.protocol import API_PREFIX
from trainyard._store.rest.transport import Transport
from trainyard.exceptions import SnapshotException

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext

_CHUNK = 1 << 20


def _hash(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as err:
        raise SnapshotException(
            f"Cannot read {path} for the snapshot: {err.strerror or err}.", path=path
        ) from None
    return digest.hexdigest(), size


def manifest_of(plan: SnapshotPlan) -> tuple[dict[str, Any], dict[str, str]]:
    """The manifest a take of ``plan`` would store, and sha256 → a local path with that content."""
    entries: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for f in plan.files:
        digest, size = _hash(str(f.source))
        entries[safe_relpath(f.relpath)] = {
            "sha256": digest,
            "size": size,
            "mode": 0o755 if f.mode & 0o111 else 0o644,
        }
        sources.setdefault(digest, str(f.source))
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    snapshot_id = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    manifest = {
        "id": snapshot_id,
        "created": datetime.now(UTC).isoformat(),
        "files": entries,
        "total_bytes": sum(e["size"] for e in entries.values()),
        "file_count": len(entries),
    }
    return manifest, sources


def upload_snapshot(transport: Transport, workspace: str, plan: SnapshotPlan) -> SnapshotInfo:
    """Store ``plan`` as a snapshot of ``workspace`` on the server; returns its info."""
    manifest, sources = manifest_of(plan)
    base = f"{API_PREFIX}/workspaces/{quote(workspace, safe='')}/snapshots"
    missing = transport.call_json("POST", f"{base}/missing", {"objects": sorted(sources)})[
        "missing"
    ]
    new_bytes = 0
    for digest in missing:
        path = sources[digest]
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            transport.request(
                "PUT",
                f"{base}/objects/{digest}",
                fh,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            ).read()
        new_bytes += size
    transport.call_json("PUT", f"{base}/manifests/{manifest['id']}", manifest)
    return SnapshotInfo(
        manifest["id"], int(manifest["file_count"]), int(manifest["total_bytes"]), new_bytes
    )


def take_snapshot(ctx: WorkspaceContext, plan: SnapshotPlan) -> SnapshotInfo:
    """Store ``plan`` in the workspace: the local snapshot store, or the team server's."""
    from trainyard._execution.snapshot import SnapshotStore

    if ctx.server is None:
        return SnapshotStore(ctx.snapshots_dir).take(plan)
    transport = getattr(ctx.store, "transport", None)
    if not isinstance(transport, Transport):
        raise SnapshotException("A server workspace's store must be the REST store.")
    return upload_snapshot(transport, ctx.name, plan)
