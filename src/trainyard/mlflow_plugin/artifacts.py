"""MLflow artifact repository for ``trainyard-artifacts:`` URIs: a run's files, through ``Run``.

``mlflow.log_artifact(s)``, ``log_dict``, ``log_figure``, ``log_image``, model files, listing and
downloads all become ``run.upload_file`` / ``run.get_file_names`` / ``run.download_file``, so every
path goes through trainyard's path-safety choke point and every write is atomic.

``trainyard-artifacts:/_registry/<name>/<version>/…`` (the registry store's download URI) are a
registered model version's files instead: listed and downloaded, never written.
"""

from __future__ import annotations

import os
import posixpath
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from mlflow.entities import FileInfo
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from trainyard.core import Model, Run, Workspace
from trainyard.exceptions import NotFoundError
from trainyard.mlflow_plugin._errors import not_found, translated, unsupported
from trainyard.mlflow_plugin._uri import REGISTRY_SEGMENT, ArtifactLocation, parse_artifact_uri

_WORKSPACES: dict[Path, Workspace] = {}
_WS_LOCK = threading.Lock()


def _workspace(path: Path) -> Workspace:
    with _WS_LOCK:
        ws = _WORKSPACES.get(path)
        if ws is None:
            with translated():
                ws = Workspace(path=path)
            _WORKSPACES[path] = ws
        return ws


class _RunFiles:
    """A run's files."""

    def __init__(self, location: ArtifactLocation) -> None:
        self.location = location
        self._run_obj: Run | None = None

    @property
    def run(self) -> Run:
        if self._run_obj is None:
            ws = _workspace(self.location.workspace)
            try:
                self._run_obj = Run.get(ws, self.location.run_id)
            except NotFoundError:
                raise not_found(f"Run '{self.location.run_id}' not found") from None
        return self._run_obj

    def names(self) -> list[str]:
        return self.run.get_file_names()

    def upload(self, name: str, local_file: str | Path) -> None:
        self.run.upload_file(name, str(local_file))

    def download(self, name: str, local_path: str) -> None:
        self.run.download_file(name, local_path)

    def what(self) -> str:
        return f"Run '{self.location.run_id}'"


class _VersionFiles:
    """A registered model version's files (``_registry/<name>/<version>`` in the URI's path):
    its ``ModelInfo.files``, relative to the version's folder; read-only."""

    def __init__(self, location: ArtifactLocation) -> None:
        head, _, rest = location.path.partition("/")
        version, _, sub = rest.partition("/")
        if not head or not version.isdigit():
            raise not_found(
                f"Artifact URI {location.uri()!r} is not {REGISTRY_SEGMENT}/<name>/<version>/…"
            )
        self.location = ArtifactLocation(location.workspace, location.run_id, f"{head}/{version}")
        self.sub = sub
        self.ws = _workspace(location.workspace)
        with translated():
            self.info = Model(self.ws, urllib.parse.unquote(head), version=int(version)).get_info()

    def names(self) -> list[str]:
        return list(self.info.files)

    def upload(self, name: str, local_file: str | Path) -> None:
        raise unsupported(
            "Writing to a registered model version",
            "its files are read-only; log them to a run and register a new version.",
        )

    def download(self, name: str, local_path: str) -> None:
        self.ws.context.artifacts.download(f"{self.info.storage_prefix}/{name}", local_path)

    def what(self) -> str:
        return f"Model {self.info.name} version {self.info.version}"


class TrainyardArtifactRepository(ArtifactRepository):
    """Files of one run (below an optional sub-path), addressed by ``trainyard-artifacts:`` URIs;
    or of one registered model version (``_registry/<name>/<version>/…``, read-only)."""

    def __init__(self, artifact_uri: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(artifact_uri, *args, **kwargs)
        with translated():
            location = parse_artifact_uri(artifact_uri)
        self._files: _RunFiles | _VersionFiles
        if location.run_id == REGISTRY_SEGMENT:
            self._files = _VersionFiles(location)
            self._location = ArtifactLocation(location.workspace, "", self._files.sub)
        else:
            self._files = _RunFiles(location)
            self._location = location

    def _name(self, *parts: str | None) -> str:
        joined = posixpath.join(self._location.path, *(p.strip("/") for p in parts if p))
        return posixpath.normpath(joined) if joined else ""

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        """Upload one local file as ``<artifact_path>/<basename>``."""
        name = self._name(artifact_path, os.path.basename(local_file))
        with translated():
            self._files.upload(name, local_file)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        """Upload every file under ``local_dir`` keeping its layout below ``artifact_path``."""
        root = Path(local_dir)
        with translated():
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for fname in sorted(filenames):
                    full = Path(dirpath) / fname
                    rel = full.relative_to(root).as_posix()
                    self._files.upload(self._name(artifact_path, rel), full)

    def _names(self) -> list[str]:
        with translated():
            return self._files.names()

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The files and folders directly below ``path`` (sizes unknown: ``file_size`` is None)."""
        base = self._name(path)
        prefix = f"{base}/" if base else ""
        strip = f"{self._location.path}/" if self._location.path else ""
        entries: dict[str, bool] = {}
        for name in self._names():
            if not name.startswith(prefix) or name == base:
                continue
            head, sep, _ = name[len(prefix) :].partition("/")
            entries[prefix + head] = bool(sep) or entries.get(prefix + head, False)
        return [
            FileInfo(full[len(strip) :], is_dir, None) for full, is_dir in sorted(entries.items())
        ]

    def _is_directory(self, artifact_path: str) -> bool:
        base = self._name(artifact_path)
        if not base:
            return True  # the run's root
        return any(n.startswith(base + "/") for n in self._names())

    def download_artifacts(self, artifact_path: str, dst_path: str | None = None) -> str:
        """Download a file or folder; ``RESOURCE_DOES_NOT_EXIST`` if the run has neither."""
        base = self._name(artifact_path)
        if base and not any(n == base or n.startswith(base + "/") for n in self._names()):
            raise not_found(f"{self._files.what()} has no artifact {artifact_path!r}.")
        return str(super().download_artifacts(artifact_path, dst_path))

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        with translated():
            self._files.download(self._name(remote_file_path), local_path)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        """Not supported: trainyard never deletes a run's files."""
        raise unsupported("Deleting artifacts", "trainyard keeps every file of a run.")
