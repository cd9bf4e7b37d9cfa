"""Logging that survives the server: a REST store whose run records go through a local spool.

:class:`SpoolingRestStore` is the :class:`~trainyard._store.rest.tracking.RestTrackingStore` a remote
workspace uses. The records a run writes about itself (:data:`~trainyard._store.rest.spool.SPOOLED`:
metric chunks, tags, properties, status changes) are appended to this process's spool file first
and shipped in order by a background :class:`Sender`; metric chunks carry a client key the server
stores once, so a retry never doubles a point. ``log`` therefore never waits on the network, and a
server that is down for minutes loses nothing: the run goes on, records arrive when it is back.

Every other call first lets the spool drain (so a read sees the caller's own writes, and a status
change lands after the points logged before it), except while the server is unreachable. A status
change waits for the server's answer; while unreachable it returns the run as this process last saw
it with the new status, and the change is delivered later. At exit the process waits up to
``TRAINYARD_SPOOL_EXIT_SECONDS`` for the spool to drain, then leaves it for ``trainyard sync``.

Example::

    store = SpoolingRestStore(url, transport=transport, folder=home / "spool" / "client")
    store.log_metric_chunks(run_id, chunks)   # appended and fsynced; shipped in the background
    store.wait_drained(30)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from trainyard._lifecycle import TERMINAL, RunStatus
from trainyard._store.entities import RunInfo
from trainyard._store.rest.codec import decode, encode
from trainyard._store.rest.protocol import OPERATIONS
from trainyard._store.rest.spool import KEEP, SPOOLED, Spool, ship_spool, sync_spools
from trainyard._store.rest.tracking import RestTrackingStore
from trainyard._store.rest.transport import Transport
from trainyard.exceptions import InvalidStatusTransition, StoreError, TrainyardError

log = logging.getLogger("trainyard.spool")

#: A spool file is replaced by a fresh one once fully shipped and larger than this.
ROTATE_BYTES = 64 * 1024 * 1024
#: Calls that never wait for the spool (liveness must not queue behind a backlog).
_NO_DRAIN = frozenset({"heartbeat", "get_workspace", "ensure_workspace"})
#: While the server is unreachable, a caller waits this long for its record before going on.
_OFFLINE_WAIT_S = 1.0
_MAX_BACKOFF_S = 5.0
_SEND_RETRY_S = 3.0

_LIVE: weakref.WeakSet[SpoolingRestStore] = weakref.WeakSet()


class Sender:
    """Ships one spool in order from a daemon thread, backing off while the server is away."""

    def __init__(self, spool: Spool, store: SpoolingRestStore) -> None:
        self.spool = spool
        self._store = weakref.ref(store)
        self.reachable = True
        #: Answers (``update_run_status``) and refusals by sequence number, for their waiters.
        self.results: dict[int, Any] = {}
        self.refused: dict[int, TrainyardError] = {}
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="trainyard-spool", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        backoff = 0.05
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            store = self._store()
            if store is None:
                return
            while not self.spool.done():
                try:
                    ship_spool(self.spool, store.send_now, self._on_refused, self._on_sent)
                except KEEP as err:
                    if self.reachable:
                        log.warning(
                            "trainyard: the server is unreachable (%s); records are kept in %s "
                            "and sent when it is back.",
                            err,
                            self.spool.path,
                        )
                    self.reachable = False
                    with self._cond:
                        self._cond.notify_all()
                    time.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
                    continue
                except Exception:  # never let the thread die: the records stay spooled
                    log.exception("trainyard: the spool sender failed; retrying")
                    time.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
                    continue
                if not self.reachable:
                    log.warning("trainyard: the server is back; spooled records were sent.")
                self.reachable = True
                backoff = 0.05
            del store

    def _on_sent(self, seq: int, result: Any) -> None:
        with self._cond:
            if result is not None:
                self.results[seq] = result
            self._cond.notify_all()

    def _on_refused(self, seq: int, op: str, err: TrainyardError) -> None:
        self.refused[seq] = err
        log.warning("trainyard: the server refused a %s record: %s", op, err)

    def wait(self, seq: int, timeout: float) -> bool:
        """Wait until record ``seq`` is acknowledged; ``False`` after ``timeout``, or after
        :data:`_OFFLINE_WAIT_S` while the server is unreachable."""
        self.nudge()
        start = time.monotonic()
        with self._cond:
            while self.spool.acked < seq:
                waited = time.monotonic() - start
                if waited >= timeout or (not self.reachable and waited >= _OFFLINE_WAIT_S):
                    return False
                self._cond.wait(0.05)
        return True


class SpoolingRestStore(RestTrackingStore):
    """A :class:`RestTrackingStore` whose run records go through a spool (module docstring)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        transport: Transport | None = None,
        folder: Path,
        answer_timeout: float = 120.0,
    ) -> None:
        super().__init__(url, token, transport=transport)
        self.folder = folder
        self.answer_timeout = answer_timeout
        self._lock = threading.Lock()
        self._spool: Spool | None = None
        self._sender: Sender | None = None
        self._known: dict[str, RunInfo] = {}
        # The sender retries by itself (with backoff): its own calls give up fast, so an outage
        # is noticed in seconds and waiting callers go on.
        self._send_transport = self.transport.with_retry(_SEND_RETRY_S)
        _LIVE.add(self)

    # -- the spool ------------------------------------------------------------------------------
    def _sender_for_write(self) -> Sender:
        with self._lock:
            spool = self._spool
            if spool is not None and spool.done() and spool.size() > ROTATE_BYTES:
                spool.remove()
                self._spool = self._sender = None
            if self._sender is None:
                self._spool = Spool.create(self.folder)
                self._sender = Sender(self._spool, self)
            return self._sender

    @property
    def spool_path(self) -> Path | None:
        """This process's current spool file (``None`` before the first record)."""
        return self._spool.path if self._spool is not None else None

    def pending_records(self) -> int:
        """How many records are spooled but not yet acknowledged by the server."""
        s = self._spool
        return 0 if s is None else s.last_seq - s.acked

    def discard_spool(self) -> None:
        """Delete this process's spool file once the server has every record in it."""
        with self._lock:
            spool = self._spool
            if spool is not None and spool.done():
                spool.remove()
                self._spool = self._sender = None

    def wait_drained(self, timeout: float) -> bool:
        """Wait until everything spooled so far is on the server; ``False`` after ``timeout``
        (or soon, while the server is unreachable)."""
        sender, spool = self._sender, self._spool
        if sender is None or spool is None:
            return True
        return sender.wait(spool.last_seq, timeout)

    def wait_drained_strict(self, timeout: float) -> bool:
        """Like :meth:`wait_drained`, but keeps waiting through an outage until ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if self.wait_drained(max(0.0, deadline - time.monotonic())):
                return True
            if time.monotonic() >= deadline:
                return False

    def sync_sibling(
        self,
        name: str,
        *,
        timeout: float,
        on_refused: Callable[[int, str, TrainyardError], None] | None = None,
    ) -> tuple[int, int]:
        """Ship the spools other processes left in the sibling spool folder ``name`` (a run's
        script's, for its supervisor); returns ``(files, records)`` (see ``sync_spools``)."""
        return sync_spools(
            self.folder.parent / name, self.send_now, timeout=timeout, on_refused=on_refused
        )

    # -- calls ----------------------------------------------------------------------------------
    def send_now(self, name: str, payload: dict[str, Any]) -> Any:
        """Send one encoded call to the server now (the sender's path); decodes the answer."""
        op = OPERATIONS[name]
        try:
            answer = self._send_transport.call_json(
                "POST", op.path, payload, idempotent=op.idempotent
            )
        except InvalidStatusTransition:
            if name != "update_run_status":
                raise
            # Sent again after an answer was lost: the run already has this status.
            info = self.get_run_direct(str(payload["run_id"]))
            if info.status != payload.get("status"):
                raise
            return info
        result = answer.get("result") if isinstance(answer, dict) else None
        value = decode(op.result, result)
        if isinstance(value, RunInfo):
            self._known[value.run_id] = value
        return value

    def get_run_direct(self, run_id: str) -> RunInfo:
        info: RunInfo = RestTrackingStore._call(self, "get_run", {"run_id": run_id})
        return info

    def _call(self, name: str, args: Mapping[str, Any]) -> Any:
        if name in SPOOLED:
            return self._spooled(name, args)
        if name not in _NO_DRAIN:
            self.wait_drained(self.answer_timeout)
        result = super()._call(name, args)
        if isinstance(result, RunInfo):
            self._known[result.run_id] = result
        return result

    def _spooled(self, name: str, args: Mapping[str, Any]) -> Any:
        sender = self._sender_for_write()
        payload = {k: encode(v) for k, v in args.items()}
        assert self._spool is not None
        seq = self._spool.append(name, payload)
        sender.nudge()
        if name != "update_run_status":
            return None
        if sender.wait(seq, self.answer_timeout):
            err = sender.refused.pop(seq, None)
            if err is not None:
                raise err
            result = sender.results.pop(seq, None)
            if isinstance(result, RunInfo):
                return result
        return self._assumed(str(args["run_id"]), args)

    def _assumed(self, run_id: str, args: Mapping[str, Any]) -> RunInfo:
        """The run as this process last saw it, with the status change it spooled."""
        known = self._known.get(run_id)
        if known is None:
            raise StoreError(
                f"The server is unreachable; the status change of run {run_id} is kept in "
                f"{self.spool_path} and will be sent when it is back (or run `trainyard sync`)."
            )
        status = str(args["status"])
        only_from = args.get("only_from")
        if only_from and known.status not in only_from:
            return known
        now = time.time()
        terminal = status in {s.value for s in TERMINAL}
        info = dataclasses.replace(
            known,
            status=status,
            start_time=known.start_time or (now if status == RunStatus.RUNNING.value else None),
            end_time=now if terminal else known.end_time,
            error=dict(args["error"]) if args.get("error") else known.error,
        )
        self._known[run_id] = info
        return info


def drain_all(timeout: float) -> list[Path]:
    """Wait up to ``timeout`` in all for every spooling store of this process to drain; returns
    the spool files left with records the server does not have yet (and says so on stderr)."""
    deadline = time.monotonic() + timeout
    left: list[Path] = []
    for store in list(_LIVE):
        with contextlib.suppress(Exception):
            if store.wait_drained_strict(max(0.0, deadline - time.monotonic())):
                store.discard_spool()  # everything is on the server: nothing to leave behind
                continue
        path = store.spool_path
        if path is not None and store.pending_records():
            left.append(path)
            print(
                f"trainyard: the server did not take {store.pending_records()} record(s) before "
                f"exit; they are kept in {path}. Run `trainyard sync` when the server is back.",
                file=sys.stderr,
            )
    return left
