"""The ``ArtifactStore`` seam: where a workspace keeps bytes (run outputs, logs, models, snapshots).

Everything above this seam (runs, the model registry, the server) talks only to this protocol, so a
local folder and, later, object storage are interchangeable. Every implementation must pass the
shipped conformance suite, :class:`trainyard.testing.artifacts.ArtifactStoreConformance`.

Example::

    from trainyard._store.artifacts import ArtifactStore, LocalArtifactStore
    store: ArtifactStore = LocalArtifactStore("/data/artifacts")
    store.write_bytes("runs/r1/outputs/model.npz", b"...")
    store.list("runs/r1/outputs")         # ['runs/r1/outputs/model.npz']
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = ["ArtifactStore"]


@runtime_checkable
class ArtifactStore(Protocol):
    """A flat namespace of files addressed by relative POSIX paths.

    **Paths.** Every ``path`` and ``prefix`` is a name from outside and goes through
    :func:`trainyard._store.artifacts.paths.safe_relpath`: ``./a//b/`` means ``a/b``; ``..``,
    absolute paths, backslashes, drive letters, ``#``, ``;``, control characters and their
    percent-encoded forms raise :class:`~trainyard.exceptions.PathSafetyError`. Paths name *files*;
    a "folder" is only a prefix of file paths (``exists``, ``open``, ``size`` and ``delete`` act on
    files, never on folders). Implementations may reserve names for their own bookkeeping (the local
    store reserves segments starting with ``.tmp-``) and raise ``PathSafetyError`` for them.

    **Thread and process safety.** Every method may be called at the same time from several threads
    and several processes (on one machine or, for shared back ends, several) on the same store.
    Concurrent writers of one path never interleave: a reader sees one writer's complete bytes.

    **Atomicity.** A write is all or nothing: bytes are staged out of sight and published in one
    step, so an interrupted write (exception, ``kill -9``, power loss once it returned) is never
    visible as a complete file, and an older version of the file stays intact until the new one is
    whole. Writes always *replace* a file, never modify it in place, so a stream already open on
    the old version, or a :meth:`link` made from it, keeps the old bytes.

    **Memory.** Streams are copied in chunks; no method holds a whole file in memory except
    :meth:`write_bytes` and :meth:`read_bytes`, which are given or return one.

    **Errors.** Only ``trainyard.exceptions`` classes escape:

    - :class:`~trainyard.exceptions.PathSafetyError`: an unsafe name (every method).
    - :class:`~trainyard.exceptions.ArtifactNotFound`: reading, sizing, deleting, downloading or
      linking from a file that does not exist.
    - :class:`~trainyard.exceptions.AlreadyExistsError`: ``overwrite=False`` and the file exists, or
      the name is taken by a folder (or a parent name by a file).
    - :class:`~trainyard.exceptions.ValidationError`: a bad argument (a text stream, a missing
      local file to upload).
    - :class:`~trainyard.exceptions.StoreError`: the back end failed (disk full, permissions,
      network); a retry may help. Every write is idempotent, so retrying is safe.
    """

    def write_stream(self, path: str, stream: BinaryIO, *, overwrite: bool = True) -> int:
        """Copy a binary ``stream`` to ``path`` in chunks, atomically; return the bytes written.

        Raises ``AlreadyExistsError`` if the file exists and ``overwrite`` is false (checked and
        published atomically: of two racing non-overwriting writers, exactly one wins).

        Example::

            with open("model.npz", "rb") as f:
                store.write_stream("outputs/model.npz", f)
        """
        ...

    def write_file(self, path: str, local_path: str | Path, *, overwrite: bool = True) -> int:
        """Upload the local file ``local_path`` to ``path``; return the bytes written.

        Example::

            store.write_file("outputs/model.npz", "./outputs/model.npz")
        """
        ...

    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = True) -> int:
        """Write ``data`` to ``path`` atomically; return ``len(data)``.

        Example::

            store.write_bytes("logs/driver.txt", b"hello\\n")
        """
        ...

    def open(self, path: str) -> BinaryIO:
        """Open the file for binary reading; the caller closes it. Raises ``ArtifactNotFound``.

        Example::

            with store.open("outputs/model.npz") as f:
                header = f.read(16)
        """
        ...

    def read_bytes(self, path: str) -> bytes:
        """Return the whole file. Raises ``ArtifactNotFound``.

        Example::

            store.read_bytes("logs/driver.txt")   # b'hello\\n'
        """
        ...

    def exists(self, path: str) -> bool:
        """Whether a *file* exists at ``path`` (a folder prefix is not a file).

        Example::

            store.exists("outputs/model.npz")     # True
        """
        ...

    def size(self, path: str) -> int:
        """Size of the file in bytes. Raises ``ArtifactNotFound``.

        Example::

            store.size("logs/driver.txt")         # 6
        """
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Sorted relative POSIX paths of every file under the folder ``prefix`` (all when empty).

        ``prefix`` is a folder prefix, not a string prefix: ``list("outputs")`` returns
        ``outputs/a`` and ``outputs/b/c`` but not ``outputs2/x``. If ``prefix`` is a file's exact
        path, that file is returned. Files being written are not listed. A missing prefix gives
        ``[]``.

        Example::

            store.list("outputs")                 # ['outputs/a', 'outputs/b/c']
        """
        ...

    def delete(self, path: str) -> None:
        """Delete one file. Raises ``ArtifactNotFound`` if there is none.

        Example::

            store.delete("outputs/tmp.bin")
        """
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every file :meth:`list` would return for ``prefix``; return how many.

        An empty prefix means the whole store. Files written while it runs may survive.

        Example::

            store.delete_prefix("runs/r1")        # 12
        """
        ...

    def download(self, path: str, dest: str | Path) -> Path:
        """Stream the file to the local path ``dest``; return where it landed.

        The destination is written atomically too (temporary file beside it, then rename); missing
        parent folders are created. If ``dest`` is an existing folder the file lands inside it
        under its base name. Raises ``ArtifactNotFound``.

        Example::

            store.download("outputs/model.npz", "./model.npz")
        """
        ...

    def link(self, src: str, dst: str) -> None:
        """Make ``dst`` refer to the same bytes as ``src`` without copying them where possible.

        A file already at ``dst`` is replaced atomically. Later writes to either path replace that
        path only, so the other keeps its bytes (the model registry relies on this to store files
        once). Raises ``ArtifactNotFound`` if ``src`` is not a file.

        Example::

            store.link("runs/r1/outputs/model.npz", "models/mnist/1/model.npz")
        """
        ...

    def local_file(self, path: str) -> Path | None:
        """The file's path on this machine when the store keeps its bytes here (so a reader may
        hard-link it instead of copying), else ``None``. Raises ``ArtifactNotFound``.

        Example::

            store.local_file("datastores/main/mnist/t10k-images.gz")   # Path(...) or None
        """
        ...

    def uri(self, path: str) -> str:
        """A URI for the file (it need not exist yet), e.g. ``file:///data/artifacts/a/b``.

        Example::

            store.uri("outputs/model.npz")        # 'file:///data/artifacts/outputs/model.npz'
        """
        ...
