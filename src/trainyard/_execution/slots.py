"""Per-target concurrency slots with a FIFO queue, shared by every supervisor on this machine.

A slot is an exclusive ``flock`` on ``<workspace>/compute/<target>/slot-<i>.lock``: the kernel drops it
when its holder dies (even by kill -9), so a dead supervisor never leaks capacity. Only the oldest
queued run of a target (by submission) may take a free slot, so runs start in submission order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from trainyard._compat.platform import lock, unlock


class Slot:
    """A held slot; released on :meth:`release` or when the process exits."""

    def __init__(self, fh: IO[str], index: int) -> None:
        self._fh = fh
        self.index = index

    def release(self) -> None:
        if not self._fh.closed:
            unlock(self._fh)
            self._fh.close()


def try_acquire(slot_dir: Path, capacity: int) -> Slot | None:
    """Take any free slot among ``capacity`` without blocking, or return ``None``."""
    slot_dir.mkdir(parents=True, exist_ok=True)
    for i in range(max(1, capacity)):
        fh = open(slot_dir / f"slot-{i}.lock", "a+")  # noqa: SIM115 - held until release
        if not lock(fh, blocking=False):
            fh.close()
            continue
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        return Slot(fh, i)
    return None


def slot_dir(workspace_home: Path, target: str) -> Path:
    return workspace_home / "compute" / target
