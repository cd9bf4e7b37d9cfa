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
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard._compat.platform import FileLock
from trainyard._context import (
    DB_FILE,
    META_FILE,
    WorkspaceContext,
    atomic_write_json,
    normalize_store_url,
    open_context,
    read_json,
    redact_url,
)
from trainyard.exceptions import (
    AlreadyExistsError,
    ConfigError,
    UserErrorException,
    WorkspaceException,
    WorkspaceNotFound,
)
from trainyard.settings import Settings, load_settings

if TYPE_CHECKING:
    from trainyard.core.experiment import Experiment

_CONFIG_DIRS = (".trainyard", ".azureml", "aml_config", "")
_CONFIG_FILES = ("config.json", "project.json")


@contextlib.contextmanager
def _folder_lock(home: Path) -> Iterator[None]:
    with FileLock(home / ".lock"):
        yield


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
        home = (
            Path(path)
            if path is not None
            else self._settings.home / "workspaces" / str(workspace_name)
        )
        self._open(home.expanduser().resolve(), expected_name=workspace_name)

    # -- construction -------------------------------------------------------------------------
    def _open(self, home: Path, expected_name: str | None = None, creating: bool = False) -> None:
        self._attach(
            open_context(home, self._settings, expected_name=expected_name, creating=creating)
        )

    def _attach(self, ctx: WorkspaceContext) -> None:
        self._ctx = ctx
        self._settings = ctx.settings
        meta = ctx.meta
        self.name: str = ctx.name
        self.location: str = str(meta.get("location", "local"))
        self.subscription_id: str = str(meta.get("subscription_id", "local"))
        self.resource_group: str = str(meta.get("resource_group", "local"))

    @classmethod
    def _from_home(
        cls, home: Path, settings: Settings | None = None, creating: bool = False
    ) -> Workspace:
        ws = cls.__new__(cls)
        ws._settings = settings or load_settings()
        ws._open(home.expanduser().resolve(), creating=creating)
        return ws

    @classmethod
    def from_context(cls, context: WorkspaceContext) -> Workspace:
        """The public workspace over an open :class:`~trainyard._context.WorkspaceContext` (used
        by trainyard's own detached processes, which open the context once)."""
        ws = cls.__new__(cls)
        ws._attach(context)
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
        server: str | None = None,
        token: str | None = None,
        **kwargs: Any,
    ) -> Workspace:
        """Create a workspace folder at ``path`` (default ``$TRAINYARD_HOME/workspaces/<name>``).

        ``tracking_uri`` puts the metadata in PostgreSQL (``postgresql://user@host/db``) instead of
        the folder's SQLite file. Safe when many processes create the same workspace at once.
        **Trainyard extension:** ``server`` creates it on a team server instead (a server admin's
        ``token``, else ``$TRAINYARD_TOKEN`` or the one ``trainyard login`` saved) and connects.
        """
        from trainyard.core._names import validate_workspace_name

        validate_workspace_name(name)
        if server is not None:
            return cls._create_on_server(server, name, token, exist_ok)
        settings = load_settings()
        home = (
            Path(path) if path is not None else settings.home / "workspaces" / name
        ).expanduser()
        if home.exists() and not home.is_dir():
            raise WorkspaceException(
                f"Workspace path {home} is a file, not a folder. Choose another path.",
                path=str(home),
            )
        if not home.exists():
            # A folder made for the workspace holds its database and logs: the owner's only.
            home.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                home.mkdir(mode=0o700)
        home = home.resolve()
        with _folder_lock(home):
            meta_path = home / META_FILE
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
                        f"The workspace at {home} is named {ws.name!r}, not {name!r}.",
                        path=str(home),
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
            # A database URL with a password is a secret: only the owner reads the file then.
            secret = bool(tracking_uri) and "***" in redact_url(str(meta["tracking_uri"]))
            atomic_write_json(meta_path, meta, mode=0o600 if secret else 0o644)
            try:
                ws = cls._from_home(home, settings, creating=True)
                db = home / DB_FILE
                if db.exists():  # it holds the services' keys: the owner's only
                    os.chmod(db, 0o600)
                return ws
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
        walking up to the filesystem root. A config naming a team server
        (``{"server": "http://…", "workspace_name": "team"}``) opens that workspace on the server;
        the token comes from ``$TRAINYARD_TOKEN`` or ``trainyard login URL`` (never the config).
        """
        found = find_config(path, _file_name)
        data = read_json(found)
        home = data.get("workspace_path")
        name = data.get("workspace_name")
        server = data.get("server")
        if server:
            if not name:
                raise ConfigError(
                    f"{found} names a server but no 'workspace_name'.", file=str(found)
                )
            return cls.connect(str(server), str(name))
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

    @classmethod
    def connect(cls, server: str, workspace_name: str, *, token: str | None = None) -> Workspace:
        """**Trainyard extension:** open ``workspace_name`` on the team server ``server``.

        The token is ``token``, else ``$TRAINYARD_TOKEN``, else the one ``trainyard login`` saved.

        Example::

            ws = Workspace.connect("http://127.0.0.1:8765", "team")
            ws.write_config()            # later: Workspace.from_config()
        """
        from trainyard._context import open_remote_context

        return cls.from_context(open_remote_context(server, workspace_name, token=token))

    @classmethod
    def _create_on_server(
        cls, server: str, name: str, token: str | None, exist_ok: bool
    ) -> Workspace:
        from trainyard._store.rest.credentials import token_for
        from trainyard._store.rest.tracking import RestTrackingStore

        store = RestTrackingStore(server, token or token_for(server.rstrip("/")))
        try:
            store.get_workspace(name)
            if not exist_ok:
                raise AlreadyExistsError(
                    f"Workspace {name!r} already exists on {server}. Pass exist_ok=True to open "
                    "it, or use Workspace.connect().",
                    name=name,
                )
        except WorkspaceNotFound:
            store.ensure_workspace(name)
        finally:
            store.close()
        return cls.connect(server, name, token=token)

    def get_mlflow_tracking_uri(self) -> str:
        """A URI MLflow clients log to (v1 name): the team server's MLflow endpoint for this
        workspace (``<server>/mlflow/<name>``; the token goes in ``MLFLOW_TRACKING_TOKEN``) for a
        server workspace, ``trainyard://<folder>`` (the tracking-store plugin) for an embedded one."""
        if self._ctx.server:
            from urllib.parse import quote

            return f"{self._ctx.server}/mlflow/{quote(self._ctx.name, safe='')}"
        return f"trainyard://{self._ctx.home}"

    def write_config(
        self, path: str | os.PathLike[str] | None = None, file_name: str | None = None
    ) -> Path:
        """Write ``<path or cwd>/.trainyard/<file_name or config.json>``; returns the file path."""
        folder = Path(path) if path is not None else Path.cwd()
        target_dir = folder / ".trainyard"
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / (file_name or "config.json")
        config: dict[str, Any] = {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace_name": self.name,
        }
        if self._ctx.server:
            config["server"] = self._ctx.server  # the token stays in the user's credentials
        else:
            config["workspace_path"] = str(self._ctx.home)
        atomic_write_json(target, config)
        return target

    # -- attributes ---------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The workspace folder."""
        return self._ctx.home

    @property
    def tracking_uri(self) -> str:
        """The metadata store URL (password hidden in ``repr``)."""
        return self._ctx.store_url

    @property
    def context(self) -> WorkspaceContext:
        """The internals' view of this workspace (store, artifacts, settings): what trainyard's
        own layers below the public API are handed. Not a v1 API."""
        return self._ctx

    def get_details(self) -> dict[str, Any]:
        """v1-shaped details dict."""
        return {
            "id": self._ctx.workspace_id,
            "name": self.name,
            "location": self.location,
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "path": str(self._ctx.home),
            "trackingUri": self._ctx.redacted_store_url,
        }

    @property
    def experiments(self) -> dict[str, Experiment]:
        """name → :class:`Experiment` for every active experiment."""
        from trainyard.core.experiment import experiment_from_info

        return {
            e.name: experiment_from_info(self, e)
            for e in self._ctx.store.list_experiments(self._ctx.workspace_id)
        }

    @property
    def compute_targets(self) -> dict[str, Any]:
        """name → compute target (the default ``local`` target included)."""
        from trainyard.core.compute.target import targets_by_name

        return targets_by_name(self)

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
        names.update(
            k.split("/")[1] for k in self._ctx.artifacts.list("datastores") if k.count("/") >= 2
        )
        return {n: Datastore(self, n) for n in sorted(names)}

    @property
    def models(self) -> dict[str, Any]:
        """name → latest registered model (empty until models are registered)."""
        from trainyard.core.model import latest_models_by_name

        return latest_models_by_name(self)

    @property
    def webservices(self) -> dict[str, Any]:
        """name → deployed web service (empty until services are deployed)."""
        from trainyard.core.webservice.webservice import services_by_name

        return services_by_name(self)

    def __repr__(self) -> str:
        return f"Workspace.create(name={self.name!r}, path={str(self._ctx.home)!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Workspace)
            and other._ctx.workspace_id == self._ctx.workspace_id
            and other._ctx.home == self._ctx.home
        )

    def __hash__(self) -> int:
        return hash((self._ctx.workspace_id, str(self._ctx.home)))


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
