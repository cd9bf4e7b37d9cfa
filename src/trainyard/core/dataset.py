"""File datasets (v1: ``Dataset.File.from_files``) and their run-time placeholders.

``dataset.as_mount()`` / ``as_download()`` go into ``ScriptRunConfig(arguments=[…])`` (or an
estimator's ``script_params``). In the argument list they become a token; before the script starts,
the supervisor materialises the files in the run's working folder (``as_download``: copies;
``as_mount``: read-only links to the stored bytes) and replaces the token with that folder's path.

Example::

    ds = ws.get_default_datastore()
    mnist = Dataset.File.from_files(path=(ds, "mnist/"))
    src = ScriptRunConfig(".", "train.py", arguments=["--data-folder", mnist.as_mount()])
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard._execution.inputs import materialize_files
from trainyard._store.artifacts import safe_relpath
from trainyard.core.datastore import DataReference, Datastore
from trainyard.exceptions import UserErrorException

if TYPE_CHECKING:
    from trainyard._store.artifacts import ArtifactStore

TOKEN_PREFIX = "TRAINYARD_DATASET_"


class _Placeholder:
    """An argument that becomes a local folder path inside the run."""

    def __init__(self, dataset: FileDataset, mode: str, path_on_compute: str | None) -> None:
        self.dataset = dataset
        self.mode = mode
        self.path_on_compute = safe_relpath(path_on_compute) if path_on_compute else None

    def spec(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "files": self.dataset.files(),
            "path_on_compute": self.path_on_compute,
        }

    def token(self) -> str:
        digest = hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:16]
        return f"${TOKEN_PREFIX}{digest}"

    def _to_run_argument(self, context: Any = None) -> str:
        if isinstance(context, dict):
            context.setdefault("datasets", {})[self.token()] = self.spec()
        return self.token()


class FileDataset:
    """A set of files from datastores (or local paths)."""

    def __init__(self, paths: Sequence[tuple[Datastore, str]] | None = None) -> None:
        self._files: list[dict[str, str]] = []
        self._artifacts: ArtifactStore | None = None
        for datastore, pattern in paths or []:
            self._artifacts = datastore.workspace.context.artifacts
            self._files.extend(_resolve(datastore, pattern))

    def files(self) -> list[dict[str, str]]:
        """The files: ``{"key": <path in the artifact store>, "rel": <path in the dataset>}``."""
        return [dict(f) for f in self._files]

    def to_path(self) -> list[str]:
        """The files' relative paths (v1: paths as seen by a mount)."""
        return [f["rel"] for f in self._files]

    def as_mount(self, path_on_compute: str | None = None) -> _Placeholder:
        return _Placeholder(self, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> _Placeholder:
        return _Placeholder(self, "download", path_on_compute)

    def download(
        self,
        target_path: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        ignore_not_found: bool = False,
    ) -> list[str]:
        """Copy the files into ``target_path`` (default: a new temp folder); returns their paths."""
        target = (
            Path(target_path)
            if target_path is not None
            else Path(tempfile.mkdtemp(prefix="dataset-"))
        )
        if self._artifacts is None:
            return []
        found = materialize_files(
            self._artifacts, self._files, target, "download", overwrite=overwrite
        )
        return [str(p) for p in found]

    def __len__(self) -> int:
        return len(self._files)

    def __repr__(self) -> str:
        return f"FileDataset({len(self._files)} files)"


def _resolve(datastore: Datastore, pattern: str) -> list[dict[str, str]]:
    store = datastore.workspace.context.artifacts
    base = f"datastores/{datastore.name}/"
    pat = pattern.strip("/")
    has_glob = any(ch in pat for ch in "*?[")
    prefix = pat.split("*")[0].split("?")[0].split("[")[0].rsplit("/", 1)[0] if has_glob else pat
    keys = store.list(base + prefix if prefix else base.rstrip("/"))
    out = []
    strip = (
        prefix.rsplit("/", 1)[0] + "/"
        if has_glob and "/" in prefix
        else (pat + "/" if not has_glob else "")
    )
    for key in keys:
        rel = key[len(base) :]
        if has_glob and not fnmatch.fnmatch(rel, pat) and not fnmatch.fnmatch(rel, pat + "/*"):
            continue
        if not has_glob and not (rel == pat or rel.startswith(pat + "/")):
            continue
        local_rel = rel[len(strip) :] if strip and rel.startswith(strip) else rel.rsplit("/", 1)[-1]
        out.append({"key": key, "rel": local_rel})
    return out


class _FileFactory:
    """``Dataset.File``."""

    @staticmethod
    def from_files(
        path: Any, validate: bool = True, partition_format: str | None = None, is_file: bool = False
    ) -> FileDataset:
        """Files from ``(datastore, 'relative/glob')`` tuples, ``DataReference``s or a list of them."""
        items = path if isinstance(path, list) else [path]
        pairs: list[tuple[Datastore, str]] = []
        for item in items:
            if isinstance(item, DataReference):
                pairs.append((item.datastore, item.path_on_datastore or "**"))
            elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Datastore):
                pairs.append((item[0], str(item[1])))
            else:
                raise UserErrorException(
                    f"Dataset.File.from_files: cannot use {item!r}; give (datastore, 'path/glob') tuples "
                    "or datastore.path(...) references."
                )
        ds = FileDataset(pairs)
        if validate and not ds._files:
            raise UserErrorException(f"Dataset.File.from_files matched no files for {path!r}.")
        return ds


class Dataset:
    """v1's ``Dataset`` entry point: ``Dataset.File.from_files(...)``."""

    File = _FileFactory
