"""The script's end of the relay: a connection and the two stores that call through it.

:class:`RelayConnection` is safe to share between threads (one request at a time) and across
``fork`` (a forked child opens its own connection on first use). A supervisor that no longer
answers is a :class:`~trainyard.exceptions.StoreError` that says so.
"""

from __future__ import annotations

import inspect
import io
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any, BinaryIO, cast

from trainyard._store.artifacts import ArtifactStore, LocalArtifactStore
from trainyard._store.base import TrackingStore
from trainyard._store.relay.wire import (
    RELAY_ADDRESS_VAR,
    RELAY_KEY_VAR,
    STORE_METHODS,
    arg_types,
    dumps_request,
    loads_answer,
    parse_address,
    parse_key,
)
from trainyard.exceptions import StoreError


class RelayConnection:
    """Calls on a :class:`~trainyard._store.relay.server.StoreRelay` at ``address``."""

    def __init__(self, address: tuple[str, int], key: bytes) -> None:
        self._address = address
        self._key = key
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._pid = os.getpid()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RelayConnection | None:
        """The relay a supervisor named in ``env``, or ``None`` when it named none."""
        address = env.get(RELAY_ADDRESS_VAR)
        key = env.get(RELAY_KEY_VAR)
        if not address or not key:
            return None
        return cls(parse_address(address), parse_key(key))

    def call(self, target: str, method: str, **args: Any) -> Any:
        """``target.method(**args)`` in the supervisor; its error is raised here as its class."""
        _, result_type = arg_types(target, method)
        request = dumps_request(target, method, args)
        if self._pid != os.getpid():
            # A forked child: a lock another thread held at the fork is never released here, and
            # the parent's socket is the parent's.
            self._lock = threading.Lock()
            self._conn = None
            self._pid = os.getpid()
        with self._lock:
            conn = self._connected()
            try:
                conn.send_bytes(request)
                raw = conn.recv_bytes()
            except (EOFError, OSError) as err:
                self._drop()
                raise StoreError(
                    f"The run's supervisor stopped answering ({type(err).__name__}) during "
                    f"{method}(): the run has ended or its supervisor was killed. Check the run's "
                    "status and system_logs/supervisor.txt."
                ) from None
        return loads_answer(raw, result_type)

    def close(self) -> None:
        """Close this process's connection (the relay keeps serving others)."""
        with self._lock:
            self._drop()

    def _connected(self) -> Connection:
        if self._conn is not None:
            return self._conn
        try:
            self._conn = Client(self._address, family="AF_INET", authkey=self._key)
        except (OSError, EOFError, AuthenticationError) as err:
            host, port = self._address
            raise StoreError(
                f"Cannot reach the run's supervisor at {host}:{port} ({err}): the run has ended "
                "or its supervisor was killed. Check the run's status and "
                "system_logs/supervisor.txt."
            ) from None
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        self._conn = None


class _RelayTrackingStore(TrackingStore):
    """Every :class:`TrackingStore` call made in the supervisor (methods added below)."""

    def __init__(self, conn: RelayConnection) -> None:
        self._conn = conn

    def close(self) -> None:
        """Close the connection; the supervisor's store stays open."""
        self._conn.close()


def _forwarder(name: str) -> Callable[..., Any]:
    signature = inspect.signature(getattr(TrackingStore, name))

    def call(self: _RelayTrackingStore, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        named = dict(bound.arguments)
        named.pop("self")
        return self._conn.call("store", name, **named)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(TrackingStore, name).__doc__
    return call


for _name in sorted(STORE_METHODS):
    setattr(_RelayTrackingStore, _name, _forwarder(_name))
_RelayTrackingStore.__abstractmethods__ = frozenset()


class RelayArtifactStore:
    """The supervisor's :class:`ArtifactStore`, called through the relay (streams as bytes)."""

    def __init__(self, conn: RelayConnection) -> None:
        self._conn = conn

    def write_stream(self, path: str, stream: BinaryIO, *, overwrite: bool = True) -> int:
        """Read ``stream`` to its end and write it to ``path``."""
        return self.write_bytes(path, stream.read(), overwrite=overwrite)

    def write_file(self, path: str, local_path: str | Path, *, overwrite: bool = True) -> int:
        """Upload the local file (the supervisor reads it: same machine)."""
        local = str(Path(local_path).resolve())
        return int(
            self._conn.call(
                "artifacts", "write_file", path=path, local_path=local, overwrite=overwrite
            )
        )

    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = True) -> int:
        """Write ``data`` to ``path``."""
        return int(
            self._conn.call(
                "artifacts", "write_bytes", path=path, data=bytes(data), overwrite=overwrite
            )
        )

    def open(self, path: str) -> BinaryIO:
        """The whole file, as an in-memory stream."""
        return io.BytesIO(self.read_bytes(path))

    def read_bytes(self, path: str) -> bytes:
        """The whole file."""
        return bytes(self._conn.call("artifacts", "read_bytes", path=path))

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        return bool(self._conn.call("artifacts", "exists", path=path))

    def size(self, path: str) -> int:
        """The file's size in bytes."""
        return int(self._conn.call("artifacts", "size", path=path))

    def list(self, prefix: str = "") -> list[str]:
        """Files under ``prefix``."""
        return list(self._conn.call("artifacts", "list", prefix=prefix))

    def delete(self, path: str) -> None:
        """Delete one file."""
        self._conn.call("artifacts", "delete", path=path)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every file under ``prefix``; return how many."""
        return int(self._conn.call("artifacts", "delete_prefix", prefix=prefix))

    def download(self, path: str, dest: str | Path) -> Path:
        """Copy the file to ``dest`` (the supervisor writes it: same machine)."""
        target = str(Path(dest).resolve())
        return Path(self._conn.call("artifacts", "download", path=path, dest=target))

    def link(self, src: str, dst: str) -> None:
        """Make ``dst`` name the same bytes as ``src``."""
        self._conn.call("artifacts", "link", src=src, dst=dst)

    def local_file(self, path: str) -> Path | None:
        """The file's local path when the store keeps it on this machine."""
        found = self._conn.call("artifacts", "local_file", path=path)
        return None if found is None else Path(found)

    def uri(self, path: str) -> str:
        """The file's URI."""
        return str(self._conn.call("artifacts", "uri", path=path))


@dataclass(frozen=True)
class RelayStores:
    """What a script opens through the relay: its stores and the workspace's description."""

    store: TrackingStore
    artifacts: ArtifactStore
    describe: dict[str, Any]


def relay_stores(conn: RelayConnection) -> RelayStores:
    """The stores behind ``conn``: tracking always relayed; artifacts read and written directly
    when the supervisor keeps them in a local folder (no second copy of every byte)."""
    describe = dict(conn.call("relay", "describe"))
    store = cast("type[Any]", _RelayTrackingStore)(conn)
    root = describe.get("artifacts_root")
    artifacts: ArtifactStore = (
        LocalArtifactStore(root) if isinstance(root, str) and root else RelayArtifactStore(conn)
    )
    return RelayStores(store=store, artifacts=artifacts, describe=describe)
