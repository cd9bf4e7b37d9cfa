"""Run files (artifacts) for :class:`~trainyard.core.run.Run`: upload, list, download (v1 names)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from trainyard._store.artifacts import safe_relpath
from trainyard.exceptions import ArtifactNotFound, UserErrorException, ValidationError

if TYPE_CHECKING:
    from trainyard._store.artifacts import ArtifactStore


class RunFilesMixin:
    """Needs ``_run_id``, ``_artifact_store`` and ``_check_open``."""

    _run_id: str

    if TYPE_CHECKING:  # provided by Run and RunMetricsMixin

        @property
        def _artifact_store(self) -> ArtifactStore: ...

        def _check_open(self) -> None: ...

    def _key(self, name: str) -> str:
        return f"runs/{self._run_id}/{safe_relpath(name)}"

    def upload_file(
        self,
        name: str,
        path_or_stream: str | os.PathLike[str] | IO[bytes],
        datastore_name: str | None = None,
    ) -> dict[str, Any]:
        """Upload a local file or a binary stream as run file ``name`` (a relative POSIX path)."""
        key = self._key(name)
        if isinstance(path_or_stream, (str, os.PathLike)):
            p = Path(path_or_stream)
            if not p.is_file():
                raise UserErrorException(f"upload_file({name!r}): no file at {p}.", path=str(p))
            self._artifact_store.write_file(key, p)
        else:
            self._artifact_store.write_stream(key, path_or_stream)  # type: ignore[arg-type]
        return {"name": safe_relpath(name), "uri": self._artifact_store.uri(key)}

    def upload_files(
        self,
        names: Sequence[str],
        paths: Sequence[str | os.PathLike[str]],
        return_artifacts: bool = False,
        timeout_seconds: int | None = None,
        datastore_name: str | None = None,
    ) -> list[dict[str, Any]] | None:
        """Upload several files; ``names`` and ``paths`` pair up."""
        if len(names) != len(paths):
            raise ValidationError(
                f"upload_files: {len(names)} names but {len(paths)} paths; they must pair up."
            )
        for name in names:
            safe_relpath(name)  # reject the whole call before writing anything
        out = [self.upload_file(n, p) for n, p in zip(names, paths, strict=True)]
        return out if return_artifacts else None

    def upload_folder(
        self, name: str, path: str | os.PathLike[str], datastore_name: str | None = None
    ) -> list[str]:
        """Upload every file under local folder ``path`` as ``name/<relative path>``."""
        root = Path(path)
        if not root.is_dir():
            raise UserErrorException(
                f"upload_folder({name!r}): no folder at {root}.", path=str(root)
            )
        prefix = safe_relpath(name)
        uploaded: list[str] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fname in sorted(filenames):
                full = Path(dirpath) / fname
                if full.is_symlink() and not full.resolve().is_relative_to(root.resolve()):
                    continue  # never follow links out of the folder being uploaded
                rel = full.relative_to(root).as_posix()
                self.upload_file(f"{prefix}/{rel}", full)
                uploaded.append(f"{prefix}/{rel}")
        return uploaded

    def get_file_names(self) -> list[str]:
        """Every file of the run (outputs, logs, uploads), as relative POSIX paths."""
        prefix = f"runs/{self._run_id}/"
        return [p[len(prefix) :] for p in self._artifact_store.list(prefix.rstrip("/"))]

    def download_file(
        self,
        name: str,
        output_file_path: str | os.PathLike[str] | None = None,
        _validate_checksum: bool = False,
    ) -> Path:
        """Download run file ``name`` to ``output_file_path`` (a file or a folder; default cwd)."""
        key = self._key(name)
        if not self._artifact_store.exists(key):
            raise ArtifactNotFound(
                f"Run {self._run_id!r} has no file {name!r}. Its files: {self.get_file_names()[:50]}",
                run_id=self._run_id,
                name=name,
            )
        dest = Path(output_file_path) if output_file_path is not None else Path.cwd()
        if dest.is_dir():
            dest = dest / Path(safe_relpath(name)).name
        return self._artifact_store.download(key, dest)

    def download_files(
        self,
        prefix: str | None = None,
        output_directory: str | os.PathLike[str] | None = None,
        output_paths: Sequence[str] | None = None,
        batch_size: int = 100,
        append_prefix: bool = True,
        timeout_seconds: int | None = None,
    ) -> list[Path]:
        """Download every run file under ``prefix`` into ``output_directory`` (default cwd)."""
        out_dir = Path(output_directory) if output_directory is not None else Path.cwd()
        names = self.get_file_names()
        if prefix:
            p = safe_relpath(prefix)
            names = [n for n in names if n == p or n.startswith(p + "/")]
        result: list[Path] = []
        for i, name in enumerate(names):
            rel = name
            if prefix and not append_prefix:
                rel = name[len(safe_relpath(prefix)) :].lstrip("/") or Path(name).name
            if output_paths is not None:
                target = Path(output_paths[i])
            else:
                target = out_dir / safe_relpath(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            result.append(self._artifact_store.download(self._key(name), target))
        return result

    def get_all_logs(self, destination: str | os.PathLike[str] | None = None) -> list[Path]:
        """Download every log file of the run; returns the local paths."""
        dest = Path(destination) if destination is not None else Path.cwd()
        out: list[Path] = []
        for prefix in ("user_logs", "system_logs", "logs", "azureml-logs"):
            out.extend(self.download_files(prefix=prefix, output_directory=dest))
        return out
