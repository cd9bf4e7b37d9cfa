"""The ``trainyard`` URI schemes: which workspace a tracking URI names, and where a run's files are.

Tracking (and registry) URIs, for ``MLFLOW_TRACKING_URI``:

=================================  =============================================================
``trainyard:///abs/path/to/ws``    the workspace folder ``/abs/path/to/ws`` (file-URI style)
``trainyard:/abs/path/to/ws``      the same
``trainyard:relative/path``        a workspace folder relative to the current directory
``trainyard://NAME``               workspace ``NAME`` in the default root (``$TRAINYARD_HOME``)
``trainyard:``                     the workspace of ``Workspace.from_config()`` (walks up from cwd)
=================================  =============================================================

The workspace must exist (``trainyard workspace create``); MLflow never creates one by accident.

Artifact URIs, as MLflow stores them on runs and logged models, put the run first so that MLflow can
append sub-paths, and the workspace folder in the query::

    trainyard-artifacts:/<run_id>[/<sub/path>]?workspace=<percent-encoded absolute folder>

A registered model version's files (read-only; what the registry store's download URI gives) take
the run's place with ``_registry/<model name>/<version>``.

This module imports neither MLflow nor the workspace, so it is cheap and testable anywhere.
"""

from __future__ import annotations

import posixpath
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from trainyard.exceptions import ValidationError

TRACKING_SCHEME = "trainyard"
ARTIFACT_SCHEME = "trainyard-artifacts"
#: The first segment of a registered model version's files in an artifact URI (run ids never are).
REGISTRY_SEGMENT = "_registry"


@dataclass(frozen=True)
class WorkspaceRef:
    """Where a tracking URI points: a folder, a workspace name in the default root, or discovery."""

    path: Path | None = None
    name: str | None = None

    @property
    def discover(self) -> bool:
        """True for ``trainyard:`` (use ``Workspace.from_config()``)."""
        return self.path is None and self.name is None


def parse_tracking_uri(uri: str) -> WorkspaceRef:
    """Parse a ``trainyard:`` tracking URI; raises ``ValidationError`` for anything else.

    Example::

        parse_tracking_uri("trainyard:///data/ws").path   # Path('/data/ws')
        parse_tracking_uri("trainyard://team").name       # 'team'
    """
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme.lower() != TRACKING_SCHEME:
        raise ValidationError(f"Not a trainyard tracking URI: {uri!r} (expected 'trainyard:...').")
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    if rest.startswith("//"):
        netloc, _, path = rest[2:].partition("/")
        if netloc and path:
            raise ValidationError(
                f"Tracking URI {uri!r}: give either a workspace name (trainyard://NAME) or a "
                "folder (trainyard:///abs/path), not both."
            )
        if netloc:
            return WorkspaceRef(name=urllib.parse.unquote(netloc))
        if not path:
            raise ValidationError(f"Tracking URI {uri!r} names no workspace folder.")
        return WorkspaceRef(path=Path("/" + urllib.parse.unquote(path)))
    if not rest:
        return WorkspaceRef()
    return WorkspaceRef(path=Path(urllib.parse.unquote(rest)).expanduser().absolute())


def tracking_uri_for(path: Path) -> str:
    """The canonical tracking URI of a workspace folder (``trainyard:///abs/path``)."""
    return f"{TRACKING_SCHEME}://" + urllib.parse.quote(str(path.resolve()), safe="/")


@dataclass(frozen=True)
class ArtifactLocation:
    """A parsed artifact URI: workspace folder, run id, and a run-relative path (may be empty)."""

    workspace: Path
    run_id: str
    path: str

    def uri(self) -> str:
        """Back to ``trainyard-artifacts:/<run>/<path>?workspace=...``."""
        tail = posixpath.join(self.run_id, self.path) if self.path else self.run_id
        query = urllib.parse.urlencode({"workspace": str(self.workspace)})
        return f"{ARTIFACT_SCHEME}:/{urllib.parse.quote(tail, safe='/')}?{query}"


def artifact_uri(workspace: Path, run_id: str, path: str = "") -> str:
    """The artifact URI of run ``run_id`` (or of ``path`` inside it) in ``workspace``."""
    return ArtifactLocation(workspace.resolve(), run_id, path.strip("/")).uri()


def parse_artifact_uri(uri: str) -> ArtifactLocation:
    """Parse an artifact URI made by :func:`artifact_uri` (MLflow may have appended to its path)."""
    parsed = urllib.parse.urlparse(uri, allow_fragments=False)
    if parsed.scheme != ARTIFACT_SCHEME:
        raise ValidationError(f"Not a trainyard artifact URI: {uri!r}.")
    workspace = urllib.parse.parse_qs(parsed.query).get("workspace", [""])[0]
    if not workspace or not workspace.startswith("/"):
        raise ValidationError(f"Artifact URI {uri!r} names no absolute workspace folder.")
    parts = [p for p in urllib.parse.unquote(parsed.netloc + parsed.path).split("/") if p]
    if not parts:
        raise ValidationError(f"Artifact URI {uri!r} names no run.")
    return ArtifactLocation(Path(workspace), parts[0], "/".join(parts[1:]))
