"""The workspace context: what every layer below the public API needs, opened once.

A :class:`WorkspaceContext` is a small frozen record — the workspace's folder, id and name, its
tracking store, artifact store and settings — that the public ``Workspace`` holds and hands down to
the supervisor, the HyperDrive controller, the deployer, the backends, the reaper and the run files.
Internals take a context, never a ``Workspace``, so nothing below the public API reads a public
object's private fields, and the detached processes open the workspace once without rebuilding the
public facade.

Example::

    ctx = open_context(Path("./my-ws"))
    ctx.store.get_run(run_id)
    ctx.artifacts.list(f"runs/{run_id}")
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard.exceptions import ConfigError, WorkspaceException, WorkspaceNotFound
from trainyard.settings import Settings, load_settings

if TYPE_CHECKING:
    from trainyard._store.artifacts import ArtifactStore
    from trainyard._store.base import TrackingStore

#: The workspace folder's metadata file.
META_FILE = "workspace.json"
#: The embedded SQLite database of a folder workspace.
DB_FILE = "trainyard.db"


@dataclass(frozen=True)
class WorkspaceContext:
    """One open workspace, as the internals see it.

    ``home`` is the workspace folder (run files, snapshots, services and slots live under it);
    ``store`` and ``artifacts`` are the metadata and bytes seams; ``settings`` were read once when
    the context was opened. ``meta`` holds the v1 attributes of ``workspace.json``.
    """

    home: Path
    name: str
    workspace_id: str
    store: TrackingStore
    artifacts: ArtifactStore
    settings: Settings
    store_url: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: The team server this workspace lives on (``None``: an embedded workspace). Then ``store``
    #: and ``artifacts`` talk to it over HTTP, runs execute on its compute, and ``home`` is only a
    #: local folder for caches (or, on the server machine, the workspace's run files).
    server: str | None = None

    @property
    def remote(self) -> bool:
        """Whether the workspace lives on a team server."""
        return self.server is not None

    @property
    def snapshots_dir(self) -> Path:
        """Content-addressed source snapshots."""
        return self.home / "snapshots"

    @property
    def runs_dir(self) -> Path:
        """Per-run execution folders (live logs, working copies)."""
        return self.home / "runs"

    @property
    def redacted_store_url(self) -> str:
        """The store URL with any password hidden (for logs and details)."""
        return redact_url(self.store_url)


def normalize_store_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url
    except ImportError:  # a run's script, whose environment has no SQLAlchemy
        return _PASSWORD_IN_URL.sub(r"\1***@", url)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return _PASSWORD_IN_URL.sub(r"\1***@", url)


_PASSWORD_IN_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)[^@]*@")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``ConfigError`` naming the file when it is unreadable."""
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
        raise ConfigError(
            f"{path} must hold a JSON object, not {type(data).__name__}.", file=str(path)
        )
    return data


def atomic_write_json(path: Path, data: Mapping[str, Any], mode: int = 0o644) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(dict(data), fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def open_context(
    home: Path,
    settings: Settings | None = None,
    *,
    expected_name: str | None = None,
    creating: bool = False,
    spool_name: str = "client",
) -> WorkspaceContext:
    """Open the workspace folder ``home``; raises ``WorkspaceNotFound`` / ``ConfigError``.

    ``spool_name``: for a folder that names a team server, the spool folder this process's records
    go through (a submitted run's script uses its run id, so its supervisor ships its leftovers).

    A folder workspace whose SQLite database is missing or empty is refused (it would silently open
    as an empty workspace) unless ``creating`` (``Workspace.create`` makes the database).
    """
    settings = settings or load_settings()
    home = home.expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise WorkspaceException(
            f"Workspace path {home} is a file, not a folder. Choose another path.", path=str(home)
        )
    meta_path = home / META_FILE
    if not meta_path.exists():
        raise WorkspaceNotFound(
            f"No trainyard workspace at {home}. Create one with "
            f"Workspace.create(name, path={str(home)!r}) or `trainyard workspace create`.",
            path=str(home),
        )
    meta = read_json(meta_path)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{meta_path} has no workspace name.", file=str(meta_path))
    if expected_name is not None and expected_name != name:
        raise WorkspaceException(
            f"The workspace at {home} is named {name!r}, not {expected_name!r}.", path=str(home)
        )
    if not creating:
        relayed = _relay_context(home, settings)
        if relayed is not None:
            return relayed
    server = meta.get("server")
    if isinstance(server, str) and server:
        return open_remote_context(
            server, name, settings=settings, home=home, meta=meta, spool_name=spool_name
        )
    uri = meta.get("tracking_uri")
    if not uri:
        _check_embedded_db(home / DB_FILE, creating)
    store_url = normalize_store_url(str(uri or f"sqlite:///{home / DB_FILE}"))
    from trainyard._store.artifacts import LocalArtifactStore
    from trainyard._store.sql.store import SqlTrackingStore

    store = SqlTrackingStore(store_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    workspace_id = store.ensure_workspace(name).id
    return WorkspaceContext(
        home=home,
        name=name,
        workspace_id=workspace_id,
        store=store,
        artifacts=LocalArtifactStore(home / "artifacts"),
        settings=settings,
        store_url=store_url,
        meta=dict(meta),
    )


def open_remote_context(
    server: str,
    name: str,
    *,
    token: str | None = None,
    settings: Settings | None = None,
    home: Path | None = None,
    meta: Mapping[str, Any] | None = None,
    spool_name: str = "client",
) -> WorkspaceContext:
    """Open workspace ``name`` on the team server ``server``.

    The token is ``token``, else ``$TRAINYARD_TOKEN``, else the one ``trainyard login`` saved;
    ``home`` is a local folder for caches (default: one per server and workspace under
    ``$TRAINYARD_HOME/remote``). The run records this process writes go through a spool under
    ``home/spool/<spool_name>`` (see :mod:`trainyard._store.rest.spooling`). Raises
    ``AuthenticationError`` / ``PermissionDenied`` / ``WorkspaceNotFound`` as the server answers,
    ``ServerUnreachable`` if it cannot be reached.
    """
    import hashlib

    from trainyard._store.rest.artifacts import RestArtifactStore
    from trainyard._store.rest.credentials import token_for
    from trainyard._store.rest.spooling import SpoolingRestStore
    from trainyard._store.rest.transport import Transport

    settings = settings or load_settings()
    url = server.rstrip("/")
    secret = token or token_for(url)
    transport = Transport(url, secret, retry_seconds=settings.server_retry_seconds)
    if home is None:
        digest = hashlib.sha256(f"{url}\0{name}".encode()).hexdigest()[:16]
        home = settings.home / "remote" / digest
    home.mkdir(parents=True, exist_ok=True)
    if not (home / META_FILE).exists():
        # The local folder of a remote workspace names its server: a process started here (a
        # local service's deployer, `trainyard sync`) opens the same workspace from the folder.
        atomic_write_json(home / META_FILE, {"name": name, "server": url, "format": 1})
    if not _SPOOL_NAME.fullmatch(spool_name):
        spool_name = "client"
    store = SpoolingRestStore(url, transport=transport, folder=home / "spool" / spool_name)
    info = store.get_workspace(name)
    _drain_at_exit(settings.spool_exit_seconds)
    return WorkspaceContext(
        home=home,
        name=info.name,
        workspace_id=info.id,
        store=store,
        artifacts=RestArtifactStore(transport, info.name),
        settings=settings,
        store_url=url,
        meta=dict(meta or {"name": info.name}),
        server=url,
    )


_SPOOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_exit_hook: list[float] = []


def _drain_at_exit(seconds: float) -> None:
    """At exit, flush metric buffers, then wait for the spools to reach the server (once)."""
    if _exit_hook:
        return
    _exit_hook.append(seconds)
    import atexit

    def _flush_then_drain() -> None:
        from trainyard._store.rest.spooling import drain_all
        from trainyard._tracking.buffer import flush_all

        flush_all()
        drain_all(_exit_hook[0])

    atexit.register(_flush_then_drain)


def relay_description(ctx: WorkspaceContext) -> dict[str, Any]:
    """What a run's store relay tells its script about ``ctx`` (no password: the redacted URL)."""
    from trainyard._store.artifacts import LocalArtifactStore

    local = ctx.artifacts if isinstance(ctx.artifacts, LocalArtifactStore) else None
    return {
        "name": ctx.name,
        "workspace_id": ctx.workspace_id,
        "store_url": ctx.redacted_store_url,
        "meta": dict(ctx.meta),
        "server": ctx.server,
        "artifacts_root": str(local.root) if local is not None else None,
    }


def _relay_context(home: Path, settings: Settings) -> WorkspaceContext | None:
    """Inside a submitted run, the workspace it runs in, opened through its supervisor's relay
    (see :mod:`trainyard._store.relay`): no database driver in the script's environment."""
    from trainyard._store.relay import RelayConnection, relay_stores

    env = os.environ
    ws_path = env.get("TRAINYARD_WORKSPACE_PATH")
    conn = RelayConnection.from_env(env)
    if conn is None or not ws_path or Path(ws_path).expanduser().resolve() != home:
        return None
    opened = relay_stores(conn)
    d = opened.describe
    server = d.get("server")
    return WorkspaceContext(
        home=home,
        name=str(d["name"]),
        workspace_id=str(d["workspace_id"]),
        store=opened.store,
        artifacts=opened.artifacts,
        settings=settings,
        store_url=str(d["store_url"]),
        meta=dict(d.get("meta") or {}),
        server=str(server) if server else None,
    )


def _check_embedded_db(db: Path, creating: bool) -> None:
    if creating:
        return
    try:
        size = db.stat().st_size
    except FileNotFoundError:
        raise WorkspaceException(
            f"The workspace database {db} is missing: the folder has a workspace.json but no "
            "trainyard.db. Restore the file from a backup, or move the folder away and create the "
            "workspace again; trainyard will not create an empty database over an existing "
            "workspace.",
            path=str(db),
        ) from None
    if size == 0:
        raise WorkspaceException(
            f"The workspace database {db} is empty (0 bytes), so its runs and models are gone or "
            "were never written. Restore it from a backup, or move the folder away and create the "
            "workspace again.",
            path=str(db),
        )
