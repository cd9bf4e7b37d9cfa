"""The hand-over of runs from the Ray backend to a target's dispatcher: a folder per target.

``<workspace>/ray/<target>/``::

    queue/<ns>-<run id>.json      runs handed over, oldest first (run id, environment, resources)
    launched/<ns>-<run id>.json   taken by the dispatcher: a Ray task holds the run's node slot
    dispatcher.json               the dispatcher's Ray job (submission id)
    alive                         touched by the running dispatcher every second

An entry holds the run's environment (a team server's run token among it), so the folder and its
files are private to the user (0700 / 0600). Taking an entry is a rename: two dispatchers never take
the same run. A run's node writes ``started`` next to its live files when it starts the run's
supervisor, and ``ray-error.txt`` when it could not: the backend and the reaper read both.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainyard._execution.runfiles import RunPaths

STARTED_FILE = "ray-started"
ERROR_FILE = "ray-error.txt"


@dataclass
class Entry:
    """One run handed to the dispatcher."""

    run_id: str
    env: dict[str, str]
    resources: dict[str, float]
    path: Path
    #: Nodes the run spans (a multi-node PyTorch job: one placement-group bundle each).
    nodes: int = 1
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class RunQueue:
    """The folder of one target's hand-over (see the module docstring)."""

    def __init__(self, home: Path, target: str) -> None:
        self.home = Path(home)
        self.root = self.home / "ray" / target
        self.queue = self.root / "queue"
        self.launched = self.root / "launched"

    def _ensure(self) -> None:
        for folder in (self.root, self.queue, self.launched):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)

    # -- the backend's side ----------------------------------------------------------------------
    def put(
        self, run_id: str, env: dict[str, str], resources: dict[str, float], nodes: int = 1
    ) -> Path:
        """Hand ``run_id`` over (atomically: the dispatcher never reads half an entry)."""
        self._ensure()
        name = f"{time.time_ns():020d}-{run_id}.json"
        tmp = self.root / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"run_id": run_id, "env": env, "resources": resources, "nodes": nodes}, fh)
        final = self.queue / name
        os.replace(tmp, final)
        return final

    def requeue_unstarted(self) -> int:
        """Move launched entries whose run never started back to the queue (their dispatcher
        died, and its Ray tasks with it); how many."""
        moved = 0
        with contextlib.suppress(FileNotFoundError):
            for path in sorted(self.launched.iterdir()):
                run_id = path.stem.split("-", 1)[-1]
                if not self.started(run_id):
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(path, self.queue / path.name)
                        moved += 1
        return moved

    def dispatcher_job(self) -> str | None:
        """The submission id of the last dispatcher started for this target."""
        try:
            return str(json.loads((self.root / "dispatcher.json").read_text())["job"])
        except (OSError, ValueError, KeyError):
            return None

    def set_dispatcher_job(self, job: str) -> None:
        self._ensure()
        tmp = self.root / ".dispatcher.json.tmp"
        tmp.write_text(json.dumps({"job": job, "at": time.time()}))
        os.replace(tmp, self.root / "dispatcher.json")

    def dispatcher_beat_age(self) -> float:
        """Seconds since the running dispatcher last touched ``alive`` (infinite if never)."""
        try:
            return time.time() - (self.root / "alive").stat().st_mtime
        except OSError:
            return float("inf")

    # -- the dispatcher's side -------------------------------------------------------------------
    def beat(self) -> None:
        self._ensure()
        (self.root / "alive").touch()

    def retire(self) -> None:
        """The dispatcher is stopping: no longer alive."""
        (self.root / "alive").unlink(missing_ok=True)

    def take(self) -> list[Entry]:
        """The queued entries, oldest first, moved to ``launched`` (skipped if another took it)."""
        entries: list[Entry] = []
        try:
            names = sorted(p.name for p in self.queue.iterdir() if p.suffix == ".json")
        except FileNotFoundError:
            return entries
        for name in names:
            dest = self.launched / name
            try:
                os.replace(self.queue / name, dest)
            except FileNotFoundError:
                continue  # another dispatcher took it
            try:
                data = json.loads(dest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                dest.unlink(missing_ok=True)
                continue
            entries.append(
                Entry(
                    run_id=str(data["run_id"]),
                    env={str(k): str(v) for k, v in data.get("env", {}).items()},
                    resources={str(k): float(v) for k, v in data.get("resources", {}).items()},
                    path=dest,
                    nodes=int(data.get("nodes") or 1),
                )
            )
        return entries

    def pending(self) -> int:
        """How many entries wait in the queue."""
        try:
            return sum(1 for p in self.queue.iterdir() if p.suffix == ".json")
        except FileNotFoundError:
            return 0

    def done(self, entry: Entry) -> None:
        entry.path.unlink(missing_ok=True)

    # -- per run ---------------------------------------------------------------------------------
    def paths(self, run_id: str) -> RunPaths:
        return RunPaths(self.home, run_id)

    def started(self, run_id: str) -> bool:
        """Whether a node started the run's supervisor."""
        return (self.paths(run_id).live / STARTED_FILE).exists()

    def cancel_requested(self, run_id: str) -> bool:
        """Whether a cancel was requested (the kill file next to the run's live files)."""
        return self.paths(run_id).cancel_file.exists()

    def error(self, run_id: str) -> str | None:
        """What the node said when it could not start the run's supervisor, if it could not."""
        try:
            return (self.paths(run_id).live / ERROR_FILE).read_text(encoding="utf-8")
        except OSError:
            return None


__all__ = ["ERROR_FILE", "STARTED_FILE", "Entry", "RunQueue"]
