"""The supervisor's end of the relay: :class:`StoreRelay` serves its stores to the run's processes.

One listening socket on loopback, one daemon thread per connected process (the script, each rank,
a data-loader worker that logs). Every connection first passes the HMAC challenge of
``multiprocessing.connection`` with the run's secret, in its own thread, so a client that connects
and says nothing holds up no one. Exceptions go back to the caller as they were raised when they are
trainyard's or Python's own; anything else (a database driver's error, which the script could not
even unpickle without the driver) goes back as a :class:`~trainyard.exceptions.StoreError` naming it.
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
    ARTIFACT_METHODS,
    RELAY_ADDRESS_VAR,
    RELAY_KEY_VAR,
    RELAY_METHODS,
    STORE_METHODS,
)
from trainyard.exceptions import StoreError


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
        self._targets: dict[str, tuple[object, frozenset[str]]] = {
            "store": (store, STORE_METHODS),
            "artifacts": (artifacts, ARTIFACT_METHODS),
            "relay": (self, RELAY_METHODS),
        }
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
                request = conn.recv()
                conn.send(self._answer(request))
        except Exception:  # the client went away, failed the challenge or sent junk
            pass
        finally:
            with self._lock:
                self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _answer(self, request: object) -> tuple[bool, Any]:
        try:
            target, method, args, kwargs = _unpack(request)
            obj, allowed = self._targets.get(target, (None, frozenset()))
            if obj is None or method not in allowed:
                raise StoreError(f"The store relay does not serve {target}.{method}().")
            return True, getattr(obj, method)(*args, **kwargs)
        except BaseException as err:  # every failure goes back to the caller
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            return False, _portable(err)


def _unpack(request: object) -> tuple[str, str, tuple[Any, ...], dict[str, Any]]:
    if (
        isinstance(request, tuple)
        and len(request) == 4
        and isinstance(request[0], str)
        and isinstance(request[1], str)
        and isinstance(request[2], tuple)
        and isinstance(request[3], dict)
    ):
        return request[0], request[1], request[2], request[3]
    raise StoreError("The store relay got a malformed request.")


def _portable(err: BaseException) -> BaseException:
    """``err`` if the script can unpickle it (trainyard's or Python's own), else a StoreError."""
    module = type(err).__module__
    if module == "builtins" or module.startswith("trainyard."):
        import pickle

        try:
            pickle.dumps(err)
        except Exception:  # fall through to the generic error
            pass
        else:
            return err
    return StoreError(f"The run's store failed: {type(err).__name__}: {err}")
