"""The local, append-only spool a remote workspace's records go through before the network.

One spool file belongs to one process (an advisory lock says which): a JSON line per record —
``{"seq": n, "op": "log_metric_chunks", "args": {...}}``, ``args`` already in the wire codec —
written and fsynced before the call returns, and a small ``.ack`` file beside it with the last
sequence number the server acknowledged. What the owner could not ship before it died (offline,
killed) stays on disk, unlocked, and is shipped later by :func:`sync_spools` (``trainyard sync``, or
a run's supervisor for its script's leftovers). The sender and the store wrapper are in
:mod:`trainyard._store.rest.spooling`.

Example::

    spool = Spool.create(folder)
    seq = spool.append("set_tags", {"run_id": run_id, "tags": {"a": "1"}})
    for seq, op, args, end in spool.pending():
        send(op, keyed(spool.id, seq, op, args))
        spool.ack(seq, end)
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from trainyard._compat.platform import lock
from trainyard.exceptions import AuthenticationError, RateLimited, StoreError, TrainyardError

#: Store operations that go through the spool: the records a run writes about itself.
SPOOLED = frozenset(
    {"log_metric_chunks", "set_tags", "remove_tags", "add_properties", "update_run_status"}
)
SUFFIX = ".spool"
_ACK = ".ack"


def _lock(fh: IO[Any]) -> bool:
    """Take the spool's advisory lock without waiting; ``False`` if another process holds it."""
    return lock(fh, blocking=False)


class Spool:
    """One append-only spool file and its acknowledgement mark (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.id = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.name
        self._lock = threading.Lock()
        self._fh: IO[str] = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held while owned
        #: Whether this process holds the lock (a spool another live process owns is left alone).
        self.owned = _lock(self._fh)
        self._seq = self._last_seq()
        self._acked = self._read_ack()
        self._pos = 0  # every record before this offset is acknowledged

    @classmethod
    def create(cls, folder: Path) -> Spool:
        """A new spool file, owned by this process, in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder / f"{uuid.uuid4().hex}{SUFFIX}")

    # -- reading --------------------------------------------------------------------------------
    def _records(
        self, after: int, start: int = 0
    ) -> Iterator[tuple[int, str, dict[str, Any], int]]:
        """``(seq, op, args, end offset)`` of the records after ``after``, reading from ``start``."""
        with open(self.path, "rb") as fh:
            fh.seek(start)
            pos = start
            for line in fh:
                pos += len(line)
                if not line.endswith(b"\n"):
                    return  # cut short by a crash mid-write: never acknowledged to anyone
                try:
                    rec = json.loads(line)
                    seq, op, args = int(rec["seq"]), str(rec["op"]), dict(rec["args"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue
                if seq > after:
                    yield seq, op, args, pos

    def _last_seq(self) -> int:
        last = 0
        for seq, _, _, _ in self._records(0):
            last = seq
        return last

    def _read_ack(self) -> int:
        try:
            return int(self.path.with_suffix(_ACK).read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def pending(self) -> list[tuple[int, str, dict[str, Any], int]]:
        """Records the server has not acknowledged, oldest first, each with the offset where it
        ends (pass it to :meth:`ack` so the next read starts there)."""
        return list(self._records(self._acked, self._pos))

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest record."""
        return self._seq

    @property
    def acked(self) -> int:
        """The newest sequence number the server has."""
        return self._acked

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    # -- writing --------------------------------------------------------------------------------
    def append(self, op: str, args: dict[str, Any]) -> int:
        """Append one record durably (written and fsynced); returns its sequence number."""
        with self._lock:
            seq = self._seq + 1
            line = json.dumps({"seq": seq, "op": op, "args": args}, separators=(",", ":"))
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._seq = seq
            return seq

    def ack(self, seq: int, end: int | None = None) -> None:
        """Record that the server has everything up to ``seq`` (which ends at offset ``end``)."""
        tmp = self.path.with_suffix(".ack-tmp")
        tmp.write_text(str(seq))
        os.replace(tmp, self.path.with_suffix(_ACK))
        self._acked = seq
        if end is not None:
            self._pos = end

    def done(self) -> bool:
        return self._acked >= self._seq

    def remove(self) -> None:
        """Delete a fully shipped spool (and close it)."""
        for p in (self.path.with_suffix(_ACK), self.path):
            with contextlib.suppress(OSError):
                p.unlink()
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()


def keyed(spool_id: str, seq: int, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """The payload to send for a record: metric chunks get client keys unique to the record, so a
    chunk sent twice (an answer lost, a spool synced after its owner had sent part of it) is
    stored once."""
    if op != "log_metric_chunks":
        return args
    chunks = [
        {**c, "client_key": f"{spool_id}:{seq}:{i}"} if isinstance(c, dict) else c
        for i, c in enumerate(args.get("chunks") or [])
    ]
    return {**args, "chunks": chunks}


#: Errors that stop shipping a spool for now (its records stay): the server is away or busy, or
#: the credential is no longer valid (another one, through ``trainyard sync``, may send them).
#: Anything else (a user error, a record this token may not write) refuses that record alone.
KEEP = (StoreError, AuthenticationError, RateLimited)


def ship_spool(
    spool: Spool,
    send: Callable[[str, dict[str, Any]], Any],
    on_refused: Callable[[int, str, TrainyardError], None] | None = None,
    on_sent: Callable[[int, Any], None] | None = None,
) -> int:
    """Send ``spool``'s pending records in order through ``send(op, payload)``; returns how many.

    A record the server refuses for good (a user error: an immutable property changed, a run
    already finished, a run this token may not write) goes to ``on_refused`` and is skipped, so one bad record never blocks the
    rest. Raises :data:`KEEP` errors (server unreachable, token revoked) with what was not
    acknowledged still pending.
    """
    count = 0
    for seq, op, args, end in spool.pending():
        try:
            result = send(op, keyed(spool.id, seq, op, args))
        except KEEP:
            raise
        except TrainyardError as err:
            if on_refused is not None:
                on_refused(seq, op, err)
            result = None
        spool.ack(seq, end)
        count += 1
        if on_sent is not None:
            on_sent(seq, result)
    return count


def sync_spools(
    folder: Path,
    send: Callable[[str, dict[str, Any]], Any],
    *,
    timeout: float = 300.0,
    on_refused: Callable[[int, str, TrainyardError], None] | None = None,
) -> tuple[int, int]:
    """Ship every spool under ``folder`` (recursively) that no live process owns, waiting up to
    ``timeout`` for an unreachable server; returns ``(files, records)``. Fully shipped spools are
    deleted; raises the last :data:`KEEP` error if the server stays unreachable."""
    files = records = 0
    deadline = time.monotonic() + timeout
    if not folder.is_dir():
        return 0, 0
    for path in sorted(folder.rglob(f"*{SUFFIX}")):
        spool = Spool(path)
        if not spool.owned:
            spool.close()
            continue  # a live process is shipping it
        delay = 0.2
        while True:
            try:
                records += ship_spool(spool, send, on_refused)
                break
            except KEEP:
                if time.monotonic() + delay > deadline:
                    spool.close()
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        files += 1
        spool.remove()
    return files, records
