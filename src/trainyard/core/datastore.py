"""Datastores (v1: ``azureml.core.Datastore``): named folders in the workspace's artifact store.

The default datastore is ``workspaceblobstore`` (v1's name), stored under ``datastores/<name>/``.

Example::

    ds = ws.get_default_datastore()
    ds.upload(src_dir="./data/mnist", target_path="mnist", overwrite=True, show_progress=True)
    dataset = Dataset.File.from_files(path=(ds, "mnist/*.gz"))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard._store.artifacts import safe_relpath
from trainyard.exceptions import AlreadyExistsError, UserErrorException

if TYPE_CHECKING:
    from trainyard.core.workspace import Workspace

DEFAULT_DATASTORE = "workspaceblobstore"


class DataReference:
    """A path on a datastore (``datastore.path("mnist")``)."""

    def __init__(
        self, datastore: Datastore, path_on_datastore: str | None = None, mode: str = "mount"
    ) -> None:
        self.datastore = datastore
        self.path_on_datastore = safe_relpath(path_on_datastore) if path_on_datastore else ""
        self.mode = mode

    def as_mount(self) -> DataReference:
        return DataReference(self.datastore, self.path_on_datastore, "mount")

    def as_download(
        self, path_on_compute: str | None = None, overwrite: bool = False
    ) -> DataReference:
        return DataReference(self.datastore, self.path_on_datastore, "download")

    def _to_run_argument(self, context: Any = None) -> str:
        from trainyard.core.dataset import FileDataset

        dataset = FileDataset([(self.datastore, self.path_on_datastore or "**")])
        placeholder = dataset.as_mount() if self.mode == "mount" else dataset.as_download()
        return placeholder._to_run_argument(context)

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.datastore.name}_{self.path_on_datastore}"

    def __repr__(self) -> str:
        return f"DataReference(datastore={self.datastore.name!r}, path={self.path_on_datastore!r}, mode={self.mode!r})"


class Datastore:
    """A named folder of files in the workspace."""

    def __init__(self, workspace: Workspace, name: str | None = None) -> None:
        self.workspace = workspace
        self.name = name or DEFAULT_DATASTORE
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise UserErrorException(
                f"Invalid datastore name {self.name!r}: use letters, digits, '_' or '-'."
            )
        self.datastore_type = "LocalFolder"

    @staticmethod
    def get(workspace: Workspace, datastore_name: str) -> Datastore:
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace: Workspace) -> Datastore:
        return Datastore(workspace, DEFAULT_DATASTORE)

    def _key(self, path: str) -> str:
        return f"datastores/{self.name}/{safe_relpath(path)}" if path else f"datastores/{self.name}"

    def upload(
        self,
        src_dir: str | os.PathLike[str],
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Upload every file under ``src_dir`` to ``target_path`` (an existing file raises unless
        ``overwrite``)."""
        root = Path(src_dir)
        if not root.is_dir():
            raise UserErrorException(f"src_dir {str(root)!r} is not a folder.")
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        pairs = [
            (
                p,
                f"{target_path.rstrip('/')}/{p.relative_to(root).as_posix()}"
                if target_path
                else p.relative_to(root).as_posix(),
            )
            for p in files
        ]
        self._upload_pairs(pairs, overwrite, show_progress)
        return DataReference(self, target_path or "")

    def upload_files(
        self,
        files: Sequence[str | os.PathLike[str]],
        relative_root: str | None = None,
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Upload individual files, keeping their paths relative to ``relative_root``."""
        pairs = []
        for f in files:
            p = Path(f)
            if not p.is_file():
                raise UserErrorException(f"No file at {str(p)!r}.")
            if relative_root and not p.is_relative_to(relative_root):
                raise UserErrorException(
                    f"{str(p)!r} is not under relative_root {str(relative_root)!r}."
                )
            rel = p.relative_to(relative_root).as_posix() if relative_root else p.name
            pairs.append((p, f"{target_path.rstrip('/')}/{rel}" if target_path else rel))
        self._upload_pairs(pairs, overwrite, show_progress)
        return DataReference(self, target_path or "")

    def _upload_pairs(
        self, pairs: list[tuple[Path, str]], overwrite: bool, show_progress: bool
    ) -> None:
        store = self.workspace.context.artifacts
        keys = [(p, self._key(rel)) for p, rel in pairs]
        if not overwrite:
            clashes = [k for _, k in keys if store.exists(k)]
            if clashes:
                raise AlreadyExistsError(
                    f"{len(clashes)} file(s) already exist on datastore {self.name!r} (first: "
                    f"{clashes[0].split('/', 2)[-1]}); pass overwrite=True to replace them."
                )
        if show_progress and keys:
            from rich.progress import Progress

            with Progress(transient=True) as progress:
                task = progress.add_task(
                    f"Uploading to {self.name}", total=sum(p.stat().st_size for p, _ in keys)
                )
                for p, k in keys:
                    store.write_file(k, p)
                    progress.advance(task, p.stat().st_size)
            print(f"Uploaded {len(keys)} files to datastore {self.name}")
        else:
            for p, k in keys:
                store.write_file(k, p)

    def path(
        self, path: str | None = None, data_reference_name: str | None = None
    ) -> DataReference:
        """A reference to ``path`` on this datastore."""
        return DataReference(self, path)

    def list_files(self, prefix: str = "") -> list[str]:
        """Relative paths of the files under ``prefix``."""
        base = f"datastores/{self.name}/"
        return [
            k[len(base) :]
            for k in self.workspace.context.artifacts.list(self._key(prefix).rstrip("/"))
        ]

    def __repr__(self) -> str:
        return f"Datastore(name={self.name!r}, type=LocalFolder)"
