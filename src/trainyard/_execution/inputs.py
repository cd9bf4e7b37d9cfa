"""One place that turns a run definition's inputs into what the process gets: dataset files
materialised in the working folder, and the argv with their placeholders replaced.

A single run's supervisor, a sweep child's supervisor (its definition is the template's with the
sampled arguments added) and a service's deployer all come here, so a dataset given as
``dataset.as_mount()`` resolves identically wherever it is used.

A definition's ``datasets`` maps each placeholder token (``$TRAINYARD_DATASET_<hash>``) to
``{"mode": "mount" | "download", "files": [{"key", "rel"}, …], "path_on_compute": …}``; ``key`` is
the file's path in the artifact store, ``rel`` its path below the dataset's folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard._store.artifacts import safe_join
from trainyard.exceptions import AlreadyExistsError

if TYPE_CHECKING:
    from trainyard._store.artifacts import ArtifactStore


def _ignores_file_modes() -> bool:
    """Whether this process may write files whose mode forbids it (root)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def materialize_files(
    artifacts: ArtifactStore,
    files: Sequence[Mapping[str, str]],
    target: Path,
    mode: str,
    overwrite: bool = True,
) -> list[Path]:
    """Put dataset files under ``target``: copies (``download``), or read-only hard links to the
    stored bytes where the store keeps them on this machine (``mount``)."""
    target.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for f in files:
        dest = safe_join(target, f["rel"])
        if dest.exists():
            if not overwrite:
                raise AlreadyExistsError(f"{dest} already exists; pass overwrite=True.")
            dest.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        local = artifacts.local_file(f["key"]) if mode == "mount" else None
        if local is not None:
            # A hard link shares the stored bytes; the 0o444 mode is what keeps a script from
            # writing through it into the datastore. Root ignores file modes, so root gets copies.
            try:
                if _ignores_file_modes():
                    raise OSError("copy instead")
                os.link(local, dest)
            except OSError:
                shutil.copyfile(local, dest)
            os.chmod(dest, 0o444)
        else:
            artifacts.download(f["key"], dest)
            if mode == "mount":
                os.chmod(dest, 0o444)
        out.append(dest)
    return out


def materialize_datasets(
    artifacts: ArtifactStore, definition: Mapping[str, Any], workdir: Path
) -> dict[str, str]:
    """Materialise every dataset input of ``definition`` below ``workdir``; token → folder path."""
    out: dict[str, str] = {}
    for token, spec in (definition.get("datasets") or {}).items():
        rel = spec.get("path_on_compute") or f"datasets/{token.lstrip('$')[-16:]}"
        folder = workdir / rel
        materialize_files(artifacts, spec["files"], folder, spec.get("mode", "mount"))
        out[token] = str(folder)
    return out


def substitute(values: Sequence[Any], paths: Mapping[str, str]) -> list[str]:
    """``values`` as strings, each dataset token replaced by its folder."""
    return [paths.get(str(v), str(v)) for v in values]


def build_argv(
    artifacts: ArtifactStore, python: str, definition: Mapping[str, Any], workdir: Path
) -> list[str]:
    """The script's argv: ``python -u script args…`` or the configured command, with dataset
    tokens replaced by the folders their files were materialised in."""
    paths = materialize_datasets(artifacts, definition, workdir)
    command = definition.get("command")
    if command:
        if isinstance(command, str):
            for token, path in paths.items():
                command = command.replace(token, path)
            return ["/bin/sh", "-c", command]
        return substitute(command, paths)
    args = substitute(definition.get("arguments", []), paths)
    return [python, "-u", str(definition["script"]), *args]
