"""What a running server holds: the store, the accounts, each workspace's artifact folder, and the
facts it looks up to authorise a call (which workspace a run or an experiment belongs to, cached:
they never change).

Example::

    state = ServerState.open(config)
    state.workspace_of_run("mnist_1714000000_1a2b3c4d")
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainyard._store.artifacts import LocalArtifactStore
from trainyard._store.entities import RunInfo
from trainyard._store.sql.accounts import SqlAccounts
from trainyard._store.sql.store import SqlTrackingStore
from trainyard.exceptions import NotFoundError, ValidationError, WorkspaceNotFound
from trainyard.server.config import ServerConfig


class _Lru:
    """A small thread-safe LRU map (immutable facts only)."""

    def __init__(self, size: int = 65536) -> None:
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            return None

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


@dataclass
class ServerState:
    """The server's open resources (one per process; uvicorn workers each open their own)."""

    config: ServerConfig
    store: SqlTrackingStore
    accounts: SqlAccounts
    _artifacts: dict[str, LocalArtifactStore] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _runs: _Lru = field(default_factory=_Lru)
    _experiments: _Lru = field(default_factory=_Lru)
    _workspaces: _Lru = field(default_factory=_Lru)

    @classmethod
    def open(cls, config: ServerConfig) -> ServerState:
        from trainyard._context import normalize_store_url

        store = SqlTrackingStore(normalize_store_url(config.store_url))
        config.artifacts.mkdir(parents=True, exist_ok=True)
        return cls(config=config, store=store, accounts=SqlAccounts(store.engine))

    # -- artifacts ----------------------------------------------------------------------------
    def artifacts(self, workspace_name: str) -> LocalArtifactStore:
        """The artifact store of workspace ``workspace_name`` (``WorkspaceNotFound`` if none)."""
        with self._lock:
            found = self._artifacts.get(workspace_name)
        if found is not None:
            return found
        info = self.store.get_workspace(workspace_name)
        folder = self.workspace_folder(info.name) / "artifacts"
        store = LocalArtifactStore(folder)
        with self._lock:
            self._artifacts.setdefault(workspace_name, store)
            return self._artifacts[workspace_name]

    def workspace_folder(self, name: str) -> Path:
        """The server-side folder of a workspace (artifacts, snapshots, run files)."""
        if not name or "/" in name or name.startswith("."):
            raise ValidationError(f"Invalid workspace name {name!r}.")
        return self.config.artifacts / name

    # -- lookups for authorisation ---------------------------------------------------------------
    def workspace_id(self, name: str) -> str:
        cached = self._workspaces.get(name)
        if cached is None:
            cached = self.store.get_workspace(name).id
            self._workspaces.put(name, cached)
        return str(cached)

    def workspace_of_experiment(self, experiment_id: int) -> str:
        cached = self._experiments.get(experiment_id)
        if cached is None:
            cached = self.store.get_experiment_by_id(experiment_id).workspace_id
            self._experiments.put(experiment_id, cached)
        return str(cached)

    def run_facts(self, run_id: str) -> tuple[str, str | None]:
        """``(workspace id, parent run id)`` of a run (``RunNotFound`` if none)."""
        cached = self._runs.get(run_id)
        if cached is None:
            info = self.store.get_run(run_id)
            cached = (info.workspace_id, info.parent_run_id)
            self._runs.put(run_id, cached)
        return cached  # type: ignore[no-any-return]

    def note_run(self, info: RunInfo) -> None:
        """Remember the facts of a run just created (saves a read on its first write)."""
        self._runs.put(info.run_id, (info.workspace_id, info.parent_run_id))

    def is_in_subtree(self, run_id: str, root: str) -> bool:
        """Whether ``run_id`` is ``root`` or one of its descendants."""
        seen = 0
        current: str | None = run_id
        while current is not None and seen < 64:
            if current == root:
                return True
            try:
                _, current = self.run_facts(current)
            except NotFoundError:
                return False
            seen += 1
        return False


__all__ = ["ServerState", "WorkspaceNotFound"]
