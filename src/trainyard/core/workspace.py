"""``Workspace``: the folder (or database) that holds experiments, runs, models and environments.

The embedded default is a folder::

    <path>/workspace.json     name, store URL, v1 attributes
    <path>/trainyard.db       SQLite metadata (WAL) — unless the workspace points at PostgreSQL
    <path>/artifacts/         run files, model files
    <path>/snapshots/         content-addressed source snapshots

Example::

    from trainyard.core import Workspace
    ws = Workspace.create("demo", path="./demo-ws", exist_ok=True)
    ws.write_config()            # ./.trainyard/config.json
    ws = Workspace.from_config() # finds it again, walking up from the cwd
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard._store.base import TrackingStore
from trainyard.exceptions import (
    AlreadyExistsError,
    ConfigError,
    UserErrorException,
    WorkspaceException,
    WorkspaceNotFound,
)
from trainyard.settings import Settings, load_settings

if TYPE_CHECKING:
    from trainyard._store.artifacts import ArtifactStore
    from trainyard.core.experiment import Experiment

_META = "workspace.json"
_CONFIG_DIRS = (".trainyard", ".azureml", "aml_config", "")
_CONFIG_FILES = ("config.json", "project.json")


def normalize_store_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"Cannot read {path}: {err.strerror}.", file=str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}). "
            "Fix or delete the file, or write it again with ws.write_config().",
            file=str(path),
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object, not {type(data).__name__}.", file=str(path))
    return data


@contextlib.contextmanager
def _folder_lock(home: Path) -> Iterator[None]:
    with open(home / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class Workspace:
    """A trainyard workspace (v1: ``azureml.core.Workspace``).

    ``Workspace(subscription_id, resource_group, workspace_name)`` opens an existing workspace by
    name from the default root (``$TRAINYARD_HOME/workspaces``); pass ``path=`` to open one elsewhere.
    """

    def __init__(
        self,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        auth: Any = None,
        _location: str | None = None,
        _disable_service_check: bool = False,
        _workspace_id: str | None = None,
        sku: str = "basic",
        tags: dict[str, str] | None = None,
        _cloud: str = "AzureCloud",
        *,
        path: str | os.PathLike[str] | None = None,
        _settings: Settings | None = None,
    ) -> None:
        self._settings = _settings or load_settings()
        if workspace_name is None and path is None:
            raise UserErrorException("Workspace needs a workspace_name or a path.")
        home = Path(path) if path is not None else self._settings.home / "workspaces" / str(workspace_name)
        self._open(home.expanduser().resolve(), expected_name=workspace_name)

    # -- construction -------------------------------------------------------------------------
    def _open(self, home: Path, expected_name: str | None = None) -> None:
        if home.exists() and not home.is_dir():
            raise WorkspaceException(
                f"Workspace path {home} is a file, not a folder. Choose another path.", path=str(home)
            )
        meta_path = home / _META
        if not meta_path.exists():
            raise WorkspaceNotFound(
                f"No trainyard workspace at {home}. Create one with "
                f"Workspace.create(name, path={str(home)!r}) or `trainyard workspace create`.",
                path=str(home),
            )
        meta = _read_json(meta_path)
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{meta_path} has no workspace name.", file=str(meta_path))
        if expected_name is not None and expected_name != name:
            raise WorkspaceException(
                f"The workspace at {home} is named {name!r}, not {expected_name!r}.", path=str(home)
            )
        self._home = home
        self._meta = meta
        self.name: str = name
        self.location: str = str(meta.get("location", "local"))
        self.subscription_id: str = str(meta.get("subscription_id", "local"))
        self.resource_group: str = str(meta.get("resource_group", "local"))
        self._store_url = normalize_store_url(
            str(meta.get("tracking_uri") or f"sqlite:///{home / 'trainyard.db'}")
        )
        from trainyard._store.sql.store import SqlTrackingStore

        self._store: TrackingStore = SqlTrackingStore(
            self._store_url, busy_timeout_ms=self._settings.sqlite_busy_timeout_ms
        )
        self._id: str = self._store.ensure_workspace(name).id
        self._artifacts_cache: ArtifactStore | None = None

    @classmethod
    def _from_home(cls, home: Path, settings: Settings | None = None) -> Workspace:
        ws = cls.__new__(cls)
        ws._settings = settings or load_settings()
        ws._open(home.expanduser().resolve())
        return ws

    @classmethod
    def create(
        cls,
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        create_resource_group: bool = True,
        sku: str = "basic",
        tags: dict[str, str] | None = None,
        friendly_name: str | None = None,
        exist_ok: bool = False,
        show_output: bool = True,
        *,
        path: str | os.PathLike[str] | None = None,
        tracking_uri: str | None = None,
        **kwargs: Any,
    ) -> Workspace:
        """Create a workspace folder at ``path`` (default ``$TRAINYARD_HOME/workspaces/<name>``).

        ``tracking_uri`` puts the metadata in PostgreSQL (``postgresql://user@host/db``) instead of
        the folder's SQLite file. Safe when many processes create the same workspace at once.
        """
        from trainyard.core._names import validate_workspace_name

        validate_workspace_name(name)
        settings = load_settings()
        home = (Path(path) if path is not None else settings.home / "workspaces" / name).expanduser()
        if home.exists() and not home.is_dir():
            raise WorkspaceException(
                f"Workspace path {home} is a file, not a folder. Choose another path.", path=str(home)
            )
        home.mkdir(parents=True, exist_ok=True)
        home = home.resolve()
        with _folder_lock(home):
            meta_path = home / _META
            if meta_path.exists():
                if not exist_ok:
                    raise AlreadyExistsError(
                        f"A workspace already exists at {home}. Pass exist_ok=True to open it, or "
                        "use Workspace.get().",
                        path=str(home),
                    )
                ws = cls._from_home(home, settings)
                if ws.name != name:
                    raise WorkspaceException(
                        f"The workspace at {home} is named {ws.name!r}, not {name!r}.", path=str(home)
                    )
                return ws
            meta: dict[str, Any] = {
                "name": name,
                "location": location or "local",
                "subscription_id": subscription_id or "local",
                "resource_group": resource_group or "local",
                "created": time.time(),
                "format": 1,
            }
            if tracking_uri:
                meta["tracking_uri"] = normalize_store_url(tracking_uri)
            (home / "artifacts").mkdir(exist_ok=True)
            _atomic_write_json(meta_path, meta)
            try:
                return cls._from_home(home, settings)
            except Exception:
                meta_path.unlink(missing_ok=True)  # a store we cannot open leaves no half workspace
                raise

    @classmethod
    def get(
        cls,
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        cloud: str = "AzureCloud",
        id: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
    ) -> Workspace:
        """Open an existing workspace by name (and optionally its folder)."""
        return cls(workspace_name=name, path=path)

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str] | None = None,
        auth: Any = None,
        _logger: Any = None,
        _file_name: str | None = None,
    ) -> Workspace:
        """Find ``config.json`` and open its workspace.

        ``path`` is a config file or a folder to start from (default: the cwd). At each folder level
        it looks in ``.trainyard/``, then ``.azureml/``, then ``aml_config/``, then the folder itself,
        walking up to the filesystem root.
        """
        found = find_config(path, _file_name)
        data = _read_json(found)
        home = data.get("workspace_path")
        name = data.get("workspace_name")
        if home:
            home_path = Path(home)
            if not home_path.is_absolute():
                home_path = (found.parent / home_path).resolve()
            return cls._from_home(home_path)
        if not name:
            raise ConfigError(
                f"{found} names no workspace: it needs 'workspace_name' (and, for a workspace "
                "outside the default root, 'workspace_path').",
                file=str(found),
            )
        return cls(workspace_name=str(name))

    def write_config(self, path: str | os.PathLike[str] | None = None, file_name: str | None = None) -> Path:
        """Write ``<path or cwd>/.trainyard/<file_name or config.json>``; returns the file path."""
        folder = Path(path) if path is not None else Path.cwd()
        target_dir = folder / ".trainyard"
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / (file_name or "config.json")
        _atomic_write_json(
            target,
            {
                "subscription_id": self.subscription_id,
                "resource_group": self.resource_group,
                "workspace_name": self.name,
                "workspace_path": str(self._home),
            },
        )
        return target

    # -- attributes ---------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The workspace folder."""
        return self._home

    @property
    def tracking_uri(self) -> str:
        """The metadata store URL (password hidden in ``repr``)."""
        return self._store_url

    @property
    def _artifacts(self) -> ArtifactStore:
        if self._artifacts_cache is None:
            from trainyard._store.artifacts import LocalArtifactStore

            self._artifacts_cache = LocalArtifactStore(self._home / "artifacts")
        return self._artifacts_cache

    def get_details(self) -> dict[str, Any]:
        """v1-shaped details dict."""
        return {
            "id": self._id,
            "name": self.name,
            "location": self.location,
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "path": str(self._home),
            "trackingUri": _redact(self._store_url),
        }

    @property
    def experiments(self) -> dict[str, Experiment]:
        """name → :class:`Experiment` for every active experiment."""
        from trainyard.core.experiment import Experiment

        return {e.name: Experiment._from_info(self, e) for e in self._store.list_experiments(self._id)}

    @property
    def compute_targets(self) -> dict[str, Any]:
        """name → compute target (the default ``local`` target included)."""
        from trainyard.core.compute.target import ComputeTarget

        return ComputeTarget._all(self)

    @property
    def environments(self) -> dict[str, Any]:
        """name → latest registered :class:`~trainyard.core.environment.Environment`."""
        from trainyard.core.environment import Environment

        return dict(Environment.list(self))

    def get_default_datastore(self) -> Any:
        """The workspace's default datastore (``workspaceblobstore``)."""
        from trainyard.core.datastore import Datastore

        return Datastore.get_default(self)

    @property
    def datastores(self) -> dict[str, Any]:
        """name → datastore (the default one, plus any that hold files)."""
        from trainyard.core.datastore import DEFAULT_DATASTORE, Datastore

        names = {DEFAULT_DATASTORE}
        names.update(k.split("/")[1] for k in self._artifacts.list("datastores") if k.count("/") >= 2)
        return {n: Datastore(self, n) for n in sorted(names)}

    @property
    def models(self) -> dict[str, Any]:
        """name → latest registered model (empty until models are registered)."""
        try:
            from trainyard.core.model import Model
        except ImportError:
            return {}
        return Model._latest_by_name(self)

    @property
    def webservices(self) -> dict[str, Any]:
        """name → deployed web service (empty until services are deployed)."""
        try:
            from trainyard.core.webservice import Webservice
        except ImportError:
            return {}
        return Webservice._all(self)

    def __repr__(self) -> str:
        return f"Workspace.create(name={self.name!r}, path={str(self._home)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other._id == self._id and other._home == self._home

    def __hash__(self) -> int:
        return hash((self._id, str(self._home)))


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def find_config(path: str | os.PathLike[str] | None = None, file_name: str | None = None) -> Path:
    """The config file ``Workspace.from_config`` would use; raises ``UserErrorException``."""
    start = Path(path) if path is not None else Path.cwd()
    if start.is_file():
        return start
    names = (file_name,) if file_name else _CONFIG_FILES
    folder = start.resolve()
    searched: list[str] = []
    while True:
        for sub in _CONFIG_DIRS:
            for fname in names:
                candidate = folder / sub / fname if sub else folder / fname
                if candidate.is_file():
                    return candidate
        searched.append(str(folder))
        if folder.parent == folder:
            break
        folder = folder.parent
    raise UserErrorException(
        f"No workspace config ({', '.join(names)}) found in .trainyard/, .azureml/ or aml_config/ "
        f"of {start} or any parent folder. Run ws.write_config() in your project folder, or "
        "`trainyard workspace create NAME --path PATH`.",
        searched=searched,
    )
