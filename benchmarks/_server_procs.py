"""Server processes for ``server.py``: a real ``mlflow server`` started and stopped by PID, the
trainyard server through ``trainyard.testing.server``, resident memory of a process tree, and the
client processes (one ``multiprocessing`` spawn child per client) that log through them.

Only the standard library is imported at module level: the spawn children import this module
again, and each imports only the client it runs (trainyard's or MLflow's).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAMES = ("loss", "accuracy", "learning_rate", "grad_norm", "throughput")


# -- servers ----------------------------------------------------------------------------------
@dataclass
class MlflowServer:
    """A running ``mlflow server`` (its own session: stopped with its process group, by PID)."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    cold_start_s: float
    workers: int

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to the server's process group (the one it leads), SIGKILL after ``grace``."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def wait_http_ok(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``url`` every 20 ms until it answers 200; raise with the log's tail if the process
    exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited ({proc.returncode}):\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: no answer after {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(0.02)


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return "(no log)"


def start_mlflow_server(
    backend_uri: str,
    artifacts: Path,
    log: Path,
    *,
    workers: int | None,
    timeout: float = 180,
    python: str | None = None,
) -> MlflowServer:
    """``mlflow server`` on a free loopback port; returns once ``/health`` answers 200.
    ``python``: the interpreter whose MLflow runs it (default: this one)."""
    from trainyard.testing.server import free_port

    port = free_port()
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        python or sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if workers is not None:
        argv += ["--workers", str(workers)]
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = MlflowServer(url, proc, log, 0.0, workers or 0)
    try:
        wait_http_ok(f"{url}/health", proc, log, timeout)
    except BaseException:
        server.stop()
        raise
    server.cold_start_s = time.perf_counter() - t0
    return server


def tree_rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` and all its descendants, in MB (10^6 bytes)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_info().rss
    return total / 1e6


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` and its live descendants have used so far,
    their reaped children's included."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


class RssSampler:
    """Peak of :func:`tree_rss_mb` sampled every ``interval`` seconds while in the ``with``."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))


# -- client processes -------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientResult:
    """What one client process reports: points sent, points counted back, monotonic start/end."""

    points: int
    counted: int
    start: float
    end: float


def trainyard_client(spec: dict[str, Any], barrier: Any, out: Any) -> None:
    """A remote workspace through the server: ``start_logging``, ``run.log`` loop, ``flush``;
    the points are counted back through the server, then the run is completed."""
    from trainyard.core import Experiment, Workspace

    ws = Workspace.connect(spec["url"], spec["workspace"], token=spec["token"])
    run = Experiment(ws, spec["experiment"]).start_logging()
    points = int(spec["points"])
    log = run.log
    barrier.wait()
    t0 = time.perf_counter()
    for i, name in zip(range(points), itertools.cycle(NAMES), strict=False):
        log(name, i * 0.5)
    run.flush()
    t1 = time.perf_counter()
    metrics = run.get_metrics()
    counted = sum(len(v) if isinstance(v, list) else 1 for v in metrics.values())
    run.complete()
    out.put(ClientResult(points, counted, t0, t1).__dict__)


def mlflow_client(spec: dict[str, Any], barrier: Any, out: Any) -> None:
    """``MlflowClient.log_batch`` of ``batch`` metrics per call against the MLflow server (the
    ``Metric`` objects are built inside the timing, as a training loop would)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=spec["url"])
    run_id = client.create_run(spec["experiment_id"]).info.run_id
    points, batch, k = int(spec["points"]), int(spec["batch"]), len(NAMES)
    barrier.wait()
    t0 = time.perf_counter()
    for start in range(0, points, batch):
        now = int(time.time() * 1000)
        metrics = [
            Metric(NAMES[j % k], j * 0.5, now, j // k)
            for j in range(start, min(start + batch, points))
        ]
        client.log_batch(run_id, metrics=metrics)
    t1 = time.perf_counter()
    counted = sum(len(client.get_metric_history(run_id, name)) for name in NAMES)
    client.set_terminated(run_id)
    out.put(ClientResult(points, counted, t0, t1).__dict__)


@dataclass(frozen=True)
class LoadResult:
    """``n`` clients started together: every client's result and the aggregate rate."""

    clients: list[ClientResult]

    @property
    def points(self) -> int:
        return sum(c.points for c in self.clients)

    @property
    def counted(self) -> int:
        return sum(c.counted for c in self.clients)

    @property
    def wall_s(self) -> float:
        return max(c.end for c in self.clients) - min(c.start for c in self.clients)

    @property
    def rate(self) -> float:
        return self.points / self.wall_s


def run_clients(
    target: Callable[[dict[str, Any], Any, Any], None],
    spec: dict[str, Any],
    n: int,
    timeout: float = 900,
) -> LoadResult:
    """Start ``n`` spawn processes running ``target(spec, barrier, queue)``; they connect, then
    start logging together when all are ready. Times are ``perf_counter`` (CLOCK_MONOTONIC,
    comparable across processes on Linux)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(spec, barrier, out), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    results: list[ClientResult] = []
    deadline = time.monotonic() + timeout
    try:
        while len(results) < n:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a client process failed (exit {dead[0].exitcode})")
            with contextlib.suppress(Exception):
                results.append(ClientResult(**out.get(timeout=0.5)))
            if time.monotonic() > deadline:
                raise RuntimeError(f"clients did not finish within {timeout:.0f} s")
    finally:
        # After a failure the others may wait at the barrier forever: do not wait for them.
        grace = 30 if len(results) == n else 0
        for p in procs:
            p.join(timeout=grace)
            if p.is_alive():
                p.kill()
                p.join()
    return LoadResult(results)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
