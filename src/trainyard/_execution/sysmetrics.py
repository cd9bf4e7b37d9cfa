"""System metrics of a running script, sampled by its supervisor at a low, fixed cost.

While the script runs, a :class:`SystemSampler` thread in the supervisor reads, every
``TRAINYARD_SYSTEM_METRICS_SECONDS`` (5 s; 0 turns it off), the processes of the script's session
(every rank of a distributed run, and what they started): CPU use (per cent of one core, summed),
resident memory, bytes read from and written to storage, plus the machine's network bytes and, where
NVML finds NVIDIA GPUs, their utilisation and memory. One JSON line per sample goes to the run's
``system_logs/system_metrics.jsonl`` (uploaded with the other system logs), never into the run's own
metrics, so ``run.get_metrics()`` stays what the script logged. The studio charts them beside the
run's metrics (:func:`read_samples` turns the lines back into series).

A sample costs one walk of the session's processes (a few ``/proc`` reads each): about a
millisecond for a handful of processes, every five seconds.

Example::

    sampler = SystemSampler(paths.system_metrics, session=pgid, interval=5.0)
    sampler.start()
    ...
    sampler.stop()
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: The run file the samples are written to (one JSON object per line).
SYSTEM_METRICS_LOG = "system_logs/system_metrics.jsonl"

#: What a sample holds, in chart order: field → (label, unit).
FIELDS: dict[str, tuple[str, str]] = {
    "cpu_percent": ("CPU", "% of one core"),
    "rss_mb": ("Memory (RSS)", "MiB"),
    "disk_read_mb": ("Disk read", "MiB"),
    "disk_write_mb": ("Disk written", "MiB"),
    "net_sent_mb": ("Network sent (machine)", "MiB"),
    "net_recv_mb": ("Network received (machine)", "MiB"),
    "gpu_percent": ("GPU utilisation", "%"),
    "gpu_memory_mb": ("GPU memory", "MiB"),
}
_MB = 1024.0 * 1024.0


class _Gpus:
    """NVML's view of the machine's GPUs, or nothing when NVML (``nvidia-ml-py``) or a GPU is
    missing: the sampler then leaves the GPU fields out."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        try:
            import pynvml  # type: ignore[import-not-found,unused-ignore]

            pynvml.nvmlInit()
            count = int(pynvml.nvmlDeviceGetCount())
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._nvml = pynvml
        except Exception:  # no library, no driver, no device: no GPU fields
            self._handles = []

    def sample(self) -> dict[str, float]:
        if not self._handles:
            return {}
        util = 0.0
        used = 0.0
        try:
            for handle in self._handles:
                util += float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                used += float(self._nvml.nvmlDeviceGetMemoryInfo(handle).used)
        except Exception:
            return {}
        return {"gpu_percent": util / len(self._handles), "gpu_memory_mb": used / _MB}

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()


class SystemSampler:
    """Samples the processes of session ``session`` into ``path`` every ``interval`` seconds.

    ``members`` lists a session's live processes (default:
    :func:`trainyard._compat.platform.session_members`). CPU per cent is the CPU time the session's
    processes used since the previous sample over the wall time between them; disk bytes are what
    the live processes have read and written so far, summed; network bytes are the machine's since
    the sampler started (no portable per-process figure exists).
    """

    def __init__(
        self,
        path: Path,
        session: int,
        interval: float,
        members: Callable[[int], Iterable[int]] | None = None,
    ) -> None:
        self.path = path
        self.session = session
        self.interval = interval
        self._members = members
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu: dict[int, float] = {}
        self._last: float | None = None
        self._net0: tuple[float, float] | None = None
        self._gpus: _Gpus | None = None

    def start(self) -> None:
        """Take a first sample at once, then one every ``interval`` seconds on a daemon thread."""
        if self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="trainyard-sysmetrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (the last sample is already on disk)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._gpus is not None:
            self._gpus.close()

    def _loop(self) -> None:
        self._gpus = _Gpus()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8", buffering=1) as out:
            while True:
                # A failing sample (a process gone mid-read, /proc away) is skipped, never fatal;
                # so is one with no live process (before the job starts, after it ended): its
                # zeros would read as a job using no memory.
                with contextlib.suppress(Exception):
                    sample = self.sample()
                    if sample["processes"] > 0:
                        out.write(json.dumps(sample, separators=(",", ":")) + "\n")
                if self._stop.wait(self.interval):
                    return

    def sample(self) -> dict[str, float]:
        """One sample now (the first has no ``cpu_percent``: CPU use needs two readings)."""
        import psutil

        members = self._members or _session_members
        now = time.monotonic()
        cpu_total = 0.0
        cpu_seen: dict[int, float] = {}
        rss = 0.0
        read = 0.0
        written = 0.0
        alive = 0
        for pid in members(self.session):
            try:
                proc = psutil.Process(pid)
                with proc.oneshot():
                    times = proc.cpu_times()
                    used = float(times.user + times.system)
                    rss += float(proc.memory_info().rss)
                    with contextlib.suppress(psutil.AccessDenied, AttributeError):
                        io = proc.io_counters()
                        read += float(io.read_bytes)
                        written += float(io.write_bytes)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            alive += 1
            cpu_seen[pid] = used
            # A process new since the last sample counts from zero: its whole CPU time is recent.
            cpu_total += used - self._cpu.get(pid, 0.0 if self._last is not None else used)
        elapsed = None if self._last is None else now - self._last
        self._cpu, self._last = cpu_seen, now
        sample: dict[str, float] = {"t": round(time.time(), 3)}
        if elapsed is not None and elapsed > 0:
            sample["cpu_percent"] = round(max(0.0, cpu_total) / elapsed * 100.0, 2)
        sample["rss_mb"] = round(rss / _MB, 3)
        sample["disk_read_mb"] = round(read / _MB, 3)
        sample["disk_write_mb"] = round(written / _MB, 3)
        with contextlib.suppress(Exception):
            net = psutil.net_io_counters()
            if net is not None:
                if self._net0 is None:
                    self._net0 = (float(net.bytes_sent), float(net.bytes_recv))
                sample["net_sent_mb"] = round((net.bytes_sent - self._net0[0]) / _MB, 3)
                sample["net_recv_mb"] = round((net.bytes_recv - self._net0[1]) / _MB, 3)
        if self._gpus is not None:
            sample.update({k: round(v, 3) for k, v in self._gpus.sample().items()})
        sample["processes"] = float(alive)
        return sample


def _session_members(sid: int) -> list[int]:
    from trainyard._compat.platform import session_members

    return session_members(sid)


def read_samples(data: bytes) -> dict[str, tuple[list[float], list[float]]]:
    """The samples of a ``system_metrics.jsonl`` as ``field → (times, values)`` (fields of
    :data:`FIELDS` only; a torn or foreign line is skipped)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for line in data.splitlines():
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        if not isinstance(sample, dict):
            continue
        t = sample.get("t")
        if not isinstance(t, int | float) or isinstance(t, bool):
            continue
        for name in FIELDS:
            value = sample.get(name)
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                xs, ys = out.setdefault(name, ([], []))
                xs.append(float(t))
                ys.append(float(value))
    return out


__all__ = ["FIELDS", "SYSTEM_METRICS_LOG", "SystemSampler", "read_samples"]
