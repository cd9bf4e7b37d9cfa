"""The supervisor's end of the relay: :class:`StoreRelay` serves its stores to the run's processes.

One listening socket on loopback, one daemon thread per connected process (the script, each rank,
a data-loader worker that logs). Every connection first passes the HMAC challenge of
``multiprocessing.connection`` with the run's secret, in its own thread, so a client that connects
and says nothing holds up no one. Messages are JSON (see :mod:`.wire`: nothing is
unpickled); trainyard's errors go back as their wire form and are raised again as the same class,
anything else (a database driver's error) as a :class:`~trainyard.exceptions.StoreError` naming it.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Mapping
from multiprocessing.connection import (
    Connection,
    Listener,
    answer_challenge,
    deliver_challenge,
)
from typing import Any

from trainyard._store.artifacts import ArtifactStore
from trainyard._store.base import TrackingStore
from trainyard._store.relay.wire import (
    RELAY_ADDRESS_VAR,
    RELAY_KEY_VAR,
    dumps_error,
    dumps_result,
    loads_request,
)


class StoreRelay:
    """Serves ``store`` and ``artifacts`` on ``127.0.0.1:<free port>`` until :meth:`close`.

    ``describe`` is what a client's ``describe`` call answers (the workspace's name, id, …).

    Example::

        with StoreRelay(ctx.store, ctx.artifacts, describe={"name": ctx.name}) as relay:
            subprocess.run([python, "train.py"], env={**os.environ, **relay.env})
    """

    def __init__(
        self,
        store: TrackingStore,
        artifacts: ArtifactStore,
        *,
        describe: Mapping[str, Any],
        host: str = "127.0.0.1",
    ) -> None:
        self._targets: dict[str, object] = {"store": store, "artifacts": artifacts, "relay": self}
        self._describe = dict(describe)
        self._key = secrets.token_bytes(32)
        self._listener = Listener((host, 0), family="AF_INET", backlog=64)
        address = self._listener.address
        self._address: tuple[str, int] = (str(address[0]), int(address[1]))
        self._closed = threading.Event()
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, name="store-relay", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """Where the relay listens."""
        return self._address

    @property
    def env(self) -> dict[str, str]:
        """The variables that let a process on this machine reach the relay."""
        host, port = self._address
        return {RELAY_ADDRESS_VAR: f"{host}:{port}", RELAY_KEY_VAR: self._key.hex()}

    def describe(self) -> dict[str, Any]:
        """The relay call a client makes first: what it needs to open its workspace context."""
        return dict(self._describe)

    def close(self) -> None:
        """Stop listening and drop every connection (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        # accept() does not wake when its socket closes under it: wake it with a connection.
        with contextlib.suppress(OSError):
            from multiprocessing.connection import Client

            Client(self._address, family="AF_INET").close()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.close()
            self._connections.clear()

    def __enter__(self) -> StoreRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving --------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn = self._listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                continue
            if self._closed.is_set():
                conn.close()
                return
            with self._lock:
                self._connections.add(conn)
            threading.Thread(
                target=self._serve, args=(conn,), name="store-relay-conn", daemon=True
            ).start()

    def _serve(self, conn: Connection) -> None:
        try:
            deliver_challenge(conn, self._key)
            answer_challenge(conn, self._key)
            while not self._closed.is_set():
                conn.send_bytes(self._answer(conn.recv_bytes()))
        except Exception:  # the client went away, failed the challenge or sent junk
            pass
        finally:
            with self._lock:
                self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _answer(self, raw: bytes) -> bytes:
        try:
            target, method, args = loads_request(raw)
            obj = self._targets[target]
            return dumps_result(getattr(obj, method)(**args))
        except Exception as err:  # every failure goes back to the caller
            return dumps_error(err)
