"""Artifact storage: the :class:`ArtifactStore` seam, its local-folder implementation, and the
path-safety choke point every user-supplied name goes through.

Example::

    from trainyard._store.artifacts import LocalArtifactStore, safe_relpath
    store = LocalArtifactStore("/data/ws/artifacts")
    store.write_bytes(safe_relpath("./outputs//a.txt"), b"hi")
"""

from __future__ import annotations

from trainyard._store.artifacts.base import ArtifactStore
from trainyard._store.artifacts.local import LocalArtifactStore
from trainyard._store.artifacts.paths import safe_join, safe_relpath

__all__ = ["ArtifactStore", "LocalArtifactStore", "safe_join", "safe_relpath"]
