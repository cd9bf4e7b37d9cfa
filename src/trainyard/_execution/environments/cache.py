"""The environment cache on disk: entries, their marker file, the per-hash lock, sizes.

Layout of the cache directory (``settings.env_cache_dir``, ``~/.trainyard/envs`` by default)::

    <cache>/<hash[:16]>/                 a complete environment (relocatable uv venv)
        bin/python                       the interpreter runs use
        trainyard-env.json               marker: spec, resolved versions, build time (written last)
        trainyard-runtime/trainyard  ->  the building side's trainyard package (symlink)
        lib/python3.X/site-packages/_trainyard_runtime.pth   adds ../../../trainyard-runtime
        .trainyard/                      requirements.txt, build-constraints.txt, build.log
    <cache>/<hash[:16]>.lock             flock: one build per hash across processes
    <cache>/<hash[:16]>.tmp-<random>/    a build in progress (renamed into place when complete)
    <cache>/<hash[:16]>.trash-<random>/  an entry being deleted

An entry is complete exactly when its folder exists with its marker: builds happen in a temporary
folder renamed atomically, so a reader never sees half an environment.

Example::

    from trainyard._execution.environments.cache import read_hit
    hit = read_hit(cache / digest[:16], digest)   # BuiltEnvironment or None
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from trainyard._compat.platform import FileLock as FileLock

from .spec import EnvSpec

#: Name of the file that marks a complete environment.
MARKER = "trainyard-env.json"
#: Where the runtime symlink lives inside an environment.
RUNTIME_DIR = "trainyard-runtime"
#: Build inputs and the build log inside an environment.
META_DIR = ".trainyard"


@dataclass(frozen=True)
class BuiltEnvironment:
    """A ready environment: run ``python``; ``resolved`` maps distribution → installed version.

    ``cached`` is ``True`` when nothing was built by this call; ``seconds`` is what the call took.
    """

    python: Path
    prefix: Path
    spec_hash: str
    resolved: dict[str, str] = field(hash=False)
    cached: bool
    seconds: float


@dataclass(frozen=True)
class CachedEnvironment:
    """One entry of the cache, as ``trainyard env list|show`` prints it."""

    spec_hash: str
    prefix: Path
    python: Path
    python_version: str
    spec: EnvSpec
    resolved: dict[str, str] = field(hash=False)
    created_at: datetime
    last_used_at: datetime
    build_seconds: float
    notices: tuple[str, ...] = ()


def read_hit(final: Path, digest: str, start: float | None = None) -> BuiltEnvironment | None:
    """The complete environment at ``final`` for ``digest``, or ``None`` (missing, another hash,
    or broken). Touches the marker: its mtime is the last use, for prune."""
    began = time.monotonic() if start is None else start
    marker = final / MARKER
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    python = final / "bin" / "python"
    if data.get("spec_hash") != digest or not python.exists():
        return None
    if not (final / RUNTIME_DIR / "trainyard").exists():
        return None
    with contextlib.suppress(OSError):
        os.utime(marker)
    return BuiltEnvironment(
        python=python,
        prefix=final,
        spec_hash=digest,
        resolved=dict(data.get("resolved") or {}),
        cached=True,
        seconds=time.monotonic() - began,
    )


def read_entry(entry: Path) -> CachedEnvironment | None:
    """The cache entry in folder ``entry``, or ``None`` when it is not a complete one."""
    marker = entry / MARKER
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        used = datetime.fromtimestamp(marker.stat().st_mtime, UTC)
        return CachedEnvironment(
            spec_hash=str(data["spec_hash"]),
            prefix=entry,
            python=entry / "bin" / "python",
            python_version=str(data.get("python_version", "")),
            spec=EnvSpec.from_dict(data["spec"]),
            resolved=dict(data.get("resolved") or {}),
            created_at=datetime.fromisoformat(data["created_at"]),
            last_used_at=used,
            build_seconds=float(data.get("build_seconds", 0.0)),
            notices=tuple(data.get("notices") or ()),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def discard(path: Path) -> None:
    """Delete ``path``: renamed aside first, so a reader never sees it half deleted."""
    trash = path.with_name(f"{path.name}.trash-{secrets.token_hex(4)}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def clear_leftovers(cache_dir: Path) -> None:
    """Remove what crashed builds and deletions left behind (a build in progress keeps its lock,
    so its temporary folder is skipped)."""
    if not cache_dir.is_dir():
        return
    for leftover in cache_dir.iterdir():
        if ".trash-" in leftover.name:
            shutil.rmtree(leftover, ignore_errors=True)
        elif ".tmp-" in leftover.name:
            lock = FileLock(cache_dir / (leftover.name.split(".tmp-")[0] + ".lock"))
            if lock.acquire(blocking=False):
                try:
                    shutil.rmtree(leftover, ignore_errors=True)
                finally:
                    lock.release()


def parse_freeze(text: str) -> dict[str, str]:
    """``name==version`` lines → ``{name: version}`` (names lower-cased; URL installs keep the URL).

    Example::

        parse_freeze("six==1.16.0\\nfoo @ file:///x.whl\\n")   # {"six": "1.16.0", "foo": "file:///x.whl"}
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        if "==" in line:
            name, version = line.split("==", 1)
            out[name.strip().lower()] = version.strip()
        elif " @ " in line:
            name, url = line.split(" @ ", 1)
            out[name.strip().lower()] = url.strip()
    return out


def iter_sizes(prefix: Path) -> Iterator[int]:
    """Sizes of the regular files under ``prefix`` (symlinks not followed)."""
    for root, _dirs, files in os.walk(prefix):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                yield st.st_size


def size_bytes(prefix: Path) -> int:
    """Disk size of one environment (hard links into uv's cache counted in full)."""
    return sum(iter_sizes(prefix))
