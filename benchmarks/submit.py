"""Job submission: trainyard's ``experiment.submit`` against Ray's Jobs API, in the same run.

Run it with ``scripts/bench.sh submit`` (``.venv-bench`` has Ray), or directly with
``python benchmarks/submit.py [--strict] [--quick] [--rounds N] [--launches N] [--json FILE]``.

What is measured:

* **Submit → first line.** A trivial script whose first statement prints ``time.time()``. The
  benchmark takes ``t0 = time.time()`` right before ``experiment.submit(...)`` (or Ray's
  ``submit_job``) and reports two latencies: the time the script printed (its own clock) − ``t0``,
  and the time the line was *seen* − ``t0``, reading the job's log file every 5 ms (trainyard's live
  ``user_logs/std_log.txt``; Ray's ``job-driver-<id>.log``, the file ``get_job_logs`` serves, read
  directly so that polling does not load Ray's dashboard; ``get_job_logs`` is checked to agree).
  Each repetition waits for the job to end before the next one. Medians of 20 (5 with
  ``--quick``), after warm-up jobs that are not counted.
* **Two warm environments.** trainyard's default (no ``Environment``: the submitting interpreter,
  user-managed) and an ``Environment`` with one pinned package (``six==1.16.0``), built by uv once
  before timing and reused from the cache after. On the Ray side the same jobs run with no
  ``runtime_env`` and with ``runtime_env={"pip": ["six==1.16.0"]}`` (Ray's per-URI cached virtualenv;
  skipped with a note if Ray cannot build it here).
* **Submit → terminal status**: ``Completed`` (``run.get_status()``) vs ``SUCCEEDED``
  (``get_job_status``), both polled every 10 ms.
* **Supervision overhead.** A CPU-bound pure-Python script calibrated to take 30 s (5 s with
  ``--quick``) run bare (``python burn.py``), under trainyard (submit → ``Completed``) and as a Ray
  job (submit → ``SUCCEEDED``); rounds rotate the order; medians of 3 rounds (1 with ``--quick``).
  The overhead is wall clock end to end over bare; also shown: the script's own compute time and
  the CPU time trainyard's supervisor process used.
* **Where trainyard's time goes**: medians of the gaps between the run's recorded status changes.

Ray runs on a private head started by this benchmark (``ray start --head --block`` bound to
127.0.0.1 with free ports, its own ``--temp-dir``, ``RAY_USAGE_STATS_ENABLED=0``,
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, ``RAY_AUTH_MODE=disabled``); at the end (and on failure)
exactly the processes of that head are stopped by PID — never ``ray stop``, which would end every
Ray process on the machine. The jobs of both tools alternate, so both see the same machine load.

Exit code 0 even when a target is missed (it is a report); ``--strict`` makes a miss exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

# Targets from the issues: submit → first line on a warm environment (one house, item 8: the
# environment is cached and the fork server is running; the cold start is in its own row).
MAX_FIRST_LINE_S = 0.12
MAX_OVERHEAD = 0.02

PINNED = "six==1.16.0"
MARK = "FIRST"
#: The trivial job: its first statement prints the time it started.
TRIVIAL = f"import time; print('{MARK}', repr(time.time()), flush=True)\n"
#: The CPU-bound job: prints its start, burns ``argv[1]`` loop iterations, prints its compute time.
BURN = f"""import time; print('{MARK}', repr(time.time()), flush=True)
import sys

def burn(n):
    x = 0
    for i in range(n):
        x += i * i
    return x

start = time.perf_counter()
burn(int(sys.argv[1]))
print('WORK', repr(time.perf_counter() - start), repr(time.process_time()), flush=True)
"""
LOG_POLL_S = 0.005
STATUS_POLL_S = 0.010
BURN_LOG_POLL_S = 0.050
JOB_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    launches: int = 20
    warmup: int = 2
    cpu_seconds: float = 30.0
    cpu_rounds: int = 3


QUICK = Sizes(launches=5, warmup=1, cpu_seconds=5.0, cpu_rounds=1)


@dataclass(frozen=True)
class Launch:
    """One trivial job, seconds after ``t0`` (taken right before the submit call)."""

    submit_s: float  # the submit call returned
    script_s: float  # the script's own clock at its first statement
    observed_s: float  # the first line was seen in the job's log
    done_s: float  # the terminal status was seen
    stages: dict[str, float] = field(default_factory=dict)  # trainyard only: status gaps


@dataclass(frozen=True)
class Burn:
    """One CPU-bound job: end-to-end wall seconds, the script's own compute seconds and (trainyard)
    the CPU seconds its supervisor used until the script ended."""

    wall_s: float
    work_s: float
    script_cpu_s: float = float("nan")
    supervisor_cpu_s: float = float("nan")
    supervisor_start_cpu_s: float = float("nan")  # its CPU seconds when the script had started


# -- small helpers ----------------------------------------------------------------------------
def first_line_time(text: str) -> float | None:
    """The time the script printed on its ``FIRST <time>`` line, or ``None`` when not there yet.

    Example::

        first_line_time("FIRST 1700000000.25\\n")  # 1700000000.25
    """
    for line in text.splitlines(keepends=True):
        if line.startswith(MARK + " ") and line.endswith("\n"):
            with contextlib.suppress(ValueError):
                return float(line.split()[1])
    return None


def work_time(text: str, field: int = 1) -> float | None:
    """The compute seconds a burn job reported on its ``WORK <wall seconds> <CPU seconds>`` line
    (``field=2``: the CPU seconds its process used in all)."""
    for line in text.splitlines():
        if line.startswith("WORK "):
            with contextlib.suppress(ValueError, IndexError):
                return float(line.split()[field])
    return None


def _med(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _free_port(preferred: int | None = None) -> int:
    if preferred is not None:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_range_free(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _wait_until(
    what: str, check: Callable[[], Any], timeout: float, poll: float, on_timeout: Callable[[], str]
) -> Any:
    deadline = time.time() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.time() > deadline:
            raise _common.BenchmarkError(f"timed out waiting for {what}: {on_timeout()}")
        time.sleep(poll)


# -- trainyard --------------------------------------------------------------------------------
class TrainyardSide:
    """A fresh workspace; submits jobs and watches them the way a user's code would."""

    def __init__(self, tmp: Path) -> None:
        from trainyard.core import Experiment, Workspace

        self.ws = Workspace.create("bench-submit", path=tmp / "ws", exist_ok=True)
        self.exp = Experiment(self.ws, "submit-latency")
        self.src = tmp / "src"
        self.src.mkdir(exist_ok=True)
        (self.src / "hello.py").write_text(TRIVIAL)
        (self.src / "burn.py").write_text(BURN)

    def config(self, script: str, built: bool, arguments: list[Any] | None = None) -> Any:
        """A ``ScriptRunConfig``: default environment, or one with the pinned package."""
        from trainyard.core import Environment, ScriptRunConfig
        from trainyard.core.conda_dependencies import CondaDependencies

        env = None
        if built:
            env = Environment("bench-pinned")
            env.python.conda_dependencies = CondaDependencies.create(pip_packages=[PINNED])
        return ScriptRunConfig(
            source_directory=str(self.src), script=script, arguments=arguments, environment=env
        )

    def launch(self, config: Any) -> Launch:
        """Submit ``config``; wait for its first line, then for its terminal status."""
        from trainyard._execution.runfiles import STD_LOG

        t0 = time.time()
        run: Any = self.exp.submit(config)
        t_submit = time.time()
        backend = run

        def seen() -> float | None:
            return first_line_time(backend.read_log(STD_LOG).decode("utf-8", "replace"))

        script_t = _wait_until(
            f"the first line of run {run.id}",
            seen,
            JOB_TIMEOUT_S,
            LOG_POLL_S,
            lambda: self._why(run),
        )
        t_seen = time.time()
        status = self._wait_terminal(run, STATUS_POLL_S)
        t_done = time.time()
        if status != "Completed":
            raise _common.BenchmarkError(f"run {run.id} ended {status}: {self._why(run)}")
        return Launch(
            submit_s=t_submit - t0,
            script_s=script_t - t0,
            observed_s=t_seen - t0,
            done_s=t_done - t0,
            stages=self._stages(run.id, t0, script_t, t_done),
        )

    def burn(self, iterations: int) -> Burn:
        """Submit the CPU-bound script; wall clock from before submit to ``Completed`` seen.

        While the script runs, its log is read every 50 ms (cheap, nothing else polled) and the
        supervisor's CPU time sampled; once the script printed its ``WORK`` line the status is
        polled every 10 ms.
        """
        import psutil

        from trainyard._execution.runfiles import STD_LOG

        config = self.config("burn.py", built=False, arguments=[iterations])
        t0 = time.perf_counter()
        run: Any = self.exp.submit(config)
        backend = run
        supervisor: Any = None
        cpu = first_cpu = float("nan")

        def finished() -> bool | None:
            nonlocal supervisor, cpu, first_cpu
            with contextlib.suppress(psutil.Error):
                if supervisor is None:
                    pid = run._refresh().runtime.get("script_pid")
                    if pid:
                        supervisor = psutil.Process(psutil.Process(pid).ppid())
                if supervisor is not None:
                    t = supervisor.cpu_times()
                    cpu = t.user + t.system
                    if first_cpu != first_cpu:  # NaN: the first sample, just after the start
                        first_cpu = cpu
            text = backend.read_log(STD_LOG).decode("utf-8", "replace")
            return True if work_time(text) is not None else None

        _wait_until(
            f"burn run {run.id}",
            finished,
            JOB_TIMEOUT_S + 600,
            BURN_LOG_POLL_S,
            lambda: self._why(run),
        )
        status = self._wait_terminal(run, STATUS_POLL_S)
        wall = time.perf_counter() - t0
        if status != "Completed":
            raise _common.BenchmarkError(f"burn run {run.id} ended {status}: {self._why(run)}")
        text = backend.read_log(STD_LOG).decode("utf-8", "replace")
        work, script_cpu = work_time(text), work_time(text, 2)
        if work is None or script_cpu is None:
            raise _common.BenchmarkError(f"burn run {run.id} printed no WORK line")
        return Burn(wall, work, script_cpu, cpu, first_cpu)

    def _wait_terminal(self, run: Any, poll: float) -> str:
        def done() -> str | None:
            status: str = run.get_status()
            return status if status in ("Completed", "Failed", "Canceled") else None

        result: str = _wait_until(
            f"run {run.id} to end", done, JOB_TIMEOUT_S + 600, poll, lambda: self._why(run)
        )
        return result

    def _stages(self, run_id: str, t0: float, script_t: float, t_done: float) -> dict[str, float]:
        at = {e.status: e.at for e in self.ws.context.store.status_history(run_id)}
        out: dict[str, float] = {}
        chain = [("submit", t0), *((s, at.get(s)) for s in ("Queued", "Preparing", "Running"))]
        chain.append(("first line", script_t))
        chain.extend((s, at.get(s)) for s in ("Finalizing", "Completed"))
        chain.append(("seen", t_done))
        for (a, ta), (b, tb) in zip(chain, chain[1:], strict=False):
            if ta is not None and tb is not None:
                out[f"{a} → {b}"] = tb - ta
        return out

    def _why(self, run: Any) -> str:
        from trainyard._execution.runfiles import STD_LOG, SUPERVISOR_LOG

        backend = run
        parts = [f"status {run.get_status()}"]
        for name in (SUPERVISOR_LOG, STD_LOG):
            text = backend.read_log(name).decode("utf-8", "replace")[-2000:]
            parts.append(f"{name}:\n{text}")
        return "\n".join(parts)


# -- Ray --------------------------------------------------------------------------------------
class RayHead:
    """A private single-node Ray head on 127.0.0.1, stopped by PID (never ``ray stop``)."""

    def __init__(self, tmp: Path) -> None:
        self.temp_dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / "ray-start.log"
        self.dashboard_port = _free_port(8265)
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.start_s = float("nan")
        self.env = dict(os.environ)
        self.env.update(
            RAY_USAGE_STATS_ENABLED="0",
            RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
            RAY_AUTH_MODE="disabled",
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )

    def start(self) -> None:
        """``ray start --head --block`` in the background; returns once the Jobs API answers."""
        worker_base = 0
        for _ in range(50):
            candidate = 20000 + secrets.randbelow(40000)
            if _port_range_free(candidate, 64):
                worker_base = candidate
                break
        if not worker_base:
            raise _common.BenchmarkError("no free range of 64 ports for Ray's workers")
        ports = {
            "--port": _free_port(),
            "--node-manager-port": _free_port(),
            "--object-manager-port": _free_port(),
            "--ray-client-server-port": _free_port(),
            "--dashboard-agent-listen-port": _free_port(),
            "--dashboard-agent-grpc-port": _free_port(),
            "--runtime-env-agent-port": _free_port(),
            "--metrics-export-port": _free_port(),
        }
        ray_bin = Path(sys.executable).parent / "ray"
        argv = [
            str(ray_bin) if ray_bin.exists() else "ray",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            "--include-dashboard=true",
            f"--temp-dir={self.temp_dir}",
            "--num-cpus=2",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
            f"--min-worker-port={worker_base}",
            f"--max-worker-port={worker_base + 63}",
            *(f"{k}={v}" for k, v in ports.items()),
        ]
        t0 = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

        def ready() -> bool | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise _common.BenchmarkError(
                    f"ray start exited with {self.proc.returncode}:\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.address}/api/version", timeout=2) as resp:
                    return True if resp.status == 200 else None
            except OSError:
                return None

        _wait_until("the Ray head's Jobs API", ready, 120, 0.1, self._log_tail)
        self.start_s = time.perf_counter() - t0

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no ray start log)"

    def _ours(self) -> list[Any]:
        """Every live process of this head: descendants of ``ray start`` plus anything whose
        command line names our private temp dir (in case something was re-parented)."""
        import psutil

        found: dict[int, Any] = {}
        if self.proc is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(self.proc.pid)
                found[root.pid] = root
                for child in root.children(recursive=True):
                    found[child.pid] = child
        marker = str(self.temp_dir)
        for p in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                if p.pid != os.getpid() and any(marker in a for a in (p.info["cmdline"] or [])):
                    found[p.pid] = p
        return list(found.values())

    def stop(self) -> None:
        """SIGTERM each of our processes by PID, then SIGKILL what is left after 10 s."""
        import psutil

        procs = self._ours()
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        leftover = [p.pid for p in self._ours() if p.is_running()]
        if leftover:
            print(f"warning: Ray processes still alive after stop: {leftover}", file=sys.stderr)


class RaySide:
    """Jobs through ``JobSubmissionClient`` against :class:`RayHead`."""

    def __init__(self, head: RayHead) -> None:
        from ray.job_submission import JobSubmissionClient

        self.client = JobSubmissionClient(head.address)
        self.logs = head.temp_dir / "session_latest" / "logs"

    def _driver_log(self, job_id: str) -> str:
        """The job's output as Ray writes it (the file ``get_job_logs`` serves), read directly:
        polling it costs the cluster nothing, unlike an HTTP request every few ms."""
        try:
            return (self.logs / f"job-driver-{job_id}.log").read_text(errors="replace")
        except OSError:
            return ""

    def launch(self, runtime_env: dict[str, Any] | None) -> Launch:
        """Submit the trivial job; wait for its first line in the job logs, then SUCCEEDED."""
        entrypoint = f"python -c {shlex.quote(TRIVIAL.strip())}"
        t0 = time.time()
        job_id = self.client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
        t_submit = time.time()

        polls = 0

        def seen() -> float | None:
            nonlocal polls
            polls += 1
            found = first_line_time(self._driver_log(job_id))
            if found is None and polls % 100 == 0:
                self._check_not_failed(job_id)
            return found

        script_t = _wait_until(
            f"the first line of Ray job {job_id}",
            seen,
            JOB_TIMEOUT_S,
            LOG_POLL_S,
            lambda: self._why(job_id),
        )
        t_seen = time.time()
        status = self._wait_terminal(job_id, STATUS_POLL_S)
        t_done = time.time()
        if status != "SUCCEEDED":
            raise _common.BenchmarkError(f"Ray job {job_id} ended {status}: {self._why(job_id)}")
        if first_line_time(self.client.get_job_logs(job_id)) != script_t:
            raise _common.BenchmarkError(f"Ray job {job_id}: get_job_logs disagrees with the file")
        return Launch(t_submit - t0, script_t - t0, t_seen - t0, t_done - t0)

    def burn(self, script: Path, iterations: int) -> Burn:
        """The CPU-bound script as a Ray job; wall clock from before submit to SUCCEEDED seen
        (its log read every 50 ms while it runs, then the status polled every 10 ms)."""
        t0 = time.perf_counter()
        job_id = self.client.submit_job(
            entrypoint=f"python {shlex.quote(str(script))} {iterations}"
        )

        def finished() -> bool | None:
            return True if work_time(self._driver_log(job_id)) is not None else None

        _wait_until(
            f"Ray burn job {job_id}",
            finished,
            JOB_TIMEOUT_S + 600,
            BURN_LOG_POLL_S,
            lambda: self._why(job_id),
        )
        status = self._wait_terminal(job_id, STATUS_POLL_S)
        wall = time.perf_counter() - t0
        if status != "SUCCEEDED":
            raise _common.BenchmarkError(f"Ray burn job ended {status}: {self._why(job_id)}")
        text = self.client.get_job_logs(job_id)
        work, script_cpu = work_time(text), work_time(text, 2)
        if work is None or script_cpu is None:
            raise _common.BenchmarkError(f"Ray burn job {job_id} printed no WORK line")
        return Burn(wall, work, script_cpu)

    def _check_not_failed(self, job_id: str) -> None:
        status = str(self.client.get_job_status(job_id).value)
        if status in ("FAILED", "STOPPED"):
            raise _common.BenchmarkError(f"Ray job {job_id} ended {status}: {self._why(job_id)}")

    def _wait_terminal(self, job_id: str, poll: float) -> str:
        def done() -> str | None:
            status = str(self.client.get_job_status(job_id).value)
            return status if status in ("SUCCEEDED", "FAILED", "STOPPED") else None

        result: str = _wait_until(
            f"Ray job {job_id} to end", done, JOB_TIMEOUT_S + 600, poll, lambda: self._why(job_id)
        )
        return result

    def _why(self, job_id: str) -> str:
        try:
            info = self.client.get_job_info(job_id)
            logs = self.client.get_job_logs(job_id)[-2000:]
            return f"status {info.status} message {info.message!r}\nlogs:\n{logs}"
        except Exception as err:
            return f"(could not read the job: {err})"


# -- the parts --------------------------------------------------------------------------------
def calibrate_burn(script: Path, seconds: float) -> int:
    """Loop iterations that take about ``seconds`` bare: a short run for a first rate, then the
    median rate of three ~1 s runs (the machine's load drifts, so the job is only *about* that
    long; the ratios below are measured, not assumed)."""
    first = burn_bare(script, 2_000_000)
    n = max(1, int(2_000_000 / first.work_s))
    rates = [n / burn_bare(script, n).work_s for _ in range(3)]
    return max(1, int(statistics.median(rates) * seconds))


def burn_bare(script: Path, iterations: int) -> Burn:
    """The CPU-bound script as a plain child process."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), str(iterations)],
        capture_output=True,
        text=True,
        cwd=script.parent,
        check=False,
    )
    wall = time.perf_counter() - t0
    work, script_cpu = work_time(proc.stdout), work_time(proc.stdout, 2)
    if proc.returncode != 0 or work is None or script_cpu is None:
        raise _common.BenchmarkError(f"bare burn failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return Burn(wall, work, script_cpu)


@dataclass
class Results:
    """Everything measured, for the report and ``--json``."""

    ty_default: list[Launch] = field(default_factory=list)
    ty_built: list[Launch] = field(default_factory=list)
    ray_default: list[Launch] = field(default_factory=list)
    ray_pip: list[Launch] = field(default_factory=list)
    ray_pip_error: str = ""
    bare: list[Burn] = field(default_factory=list)
    ty_burn: list[Burn] = field(default_factory=list)
    ray_burn: list[Burn] = field(default_factory=list)
    iterations: int = 0
    env_build_s: float = float("nan")
    ray_start_s: float = float("nan")
    ray_pip_build_s: float = float("nan")


def run_all(tmp: Path, sizes: Sizes, console: Any) -> Results:
    """Set up both sides, then alternate their jobs; returns the raw samples."""
    res = Results()
    ty = TrainyardSide(tmp)
    default_cfg = ty.config("hello.py", built=False)
    built_cfg = ty.config("hello.py", built=True)

    console.print(f"[bold]trainyard[/]: building the environment with {PINNED} (once, not timed) …")
    t = time.perf_counter()
    ty.launch(built_cfg)
    res.env_build_s = time.perf_counter() - t

    head = RayHead(Path(tempfile.mkdtemp(prefix="tysb-ray-")))
    try:
        console.print("[bold]Ray[/]: starting a private head on 127.0.0.1 …")
        head.start()
        res.ray_start_s = head.start_s
        ray = RaySide(head)
        pip_env: dict[str, Any] | None = {"pip": [PINNED]}
        console.print(f"[bold]Ray[/]: first job with runtime_env pip {PINNED} (not timed) …")
        t = time.perf_counter()
        try:
            ray.launch(pip_env)
            res.ray_pip_build_s = time.perf_counter() - t
        except _common.BenchmarkError as err:
            res.ray_pip_error = str(err).splitlines()[0][:300]
            pip_env = None

        console.print(
            f"[bold]submit → first line[/]: {sizes.warmup} warm-up + {sizes.launches} jobs per "
            "kind, trainyard and Ray alternating …"
        )
        jobs: list[tuple[list[Launch], Callable[[], Launch]]] = [
            (res.ty_default, lambda: ty.launch(default_cfg)),
            (res.ray_default, lambda: ray.launch(None)),
            (res.ty_built, lambda: ty.launch(built_cfg)),
        ]
        if pip_env is not None:
            jobs.append((res.ray_pip, lambda: ray.launch(pip_env)))
        for i in range(sizes.warmup + sizes.launches):
            # Rotate the order every round: no kind always follows the same one (the end of a Ray
            # job keeps the machine busy for a moment).
            for samples, launch in jobs[i % len(jobs) :] + jobs[: i % len(jobs)]:
                sample = launch()
                if i >= sizes.warmup:
                    samples.append(sample)

        script = ty.src / "burn.py"
        res.iterations = calibrate_burn(script, sizes.cpu_seconds)
        console.print(
            f"[bold]overhead[/]: {sizes.cpu_rounds} round(s) of a ~{sizes.cpu_seconds:g} s CPU-bound "
            f"script ({res.iterations:,} iterations) bare / trainyard / Ray, order rotating …"
        )
        burns: list[tuple[list[Burn], Callable[[], Burn]]] = [
            (res.bare, lambda: burn_bare(script, res.iterations)),
            (res.ty_burn, lambda: ty.burn(res.iterations)),
            (res.ray_burn, lambda: ray.burn(script, res.iterations)),
        ]
        for r in range(sizes.cpu_rounds):
            for burned, burn in burns[r % 3 :] + burns[: r % 3]:
                burned.append(burn())
    finally:
        head.stop()
        shutil.rmtree(head.temp_dir, ignore_errors=True)
    return res


# -- report -----------------------------------------------------------------------------------
def build_report(sizes: Sizes, res: Results) -> tuple[_common.ResultTable, dict[str, Any]]:
    """The PASS/FAIL table and a JSON-able summary."""
    table = _common.ResultTable("Job submission: trainyard vs Ray Jobs", peer="Ray Jobs")
    summary: dict[str, Any] = {}

    def faster(ray_s: float, ty_s: float) -> str:
        return f"{_common.fmt_ratio(ray_s / ty_s)} faster" if ty_s > 0 else ""

    pairs = [
        ("default env", res.ty_default, res.ray_default),
        (f"env with {PINNED}", res.ty_built, res.ray_pip),
    ]
    for label, ty, ray in pairs:
        key = "default" if label == "default env" else "built"
        ty_script = _med([x.script_s for x in ty])
        ty_seen = _med([x.observed_s for x in ty])
        ty_done = _med([x.done_s for x in ty])
        ty_call = _med([x.submit_s for x in ty])
        ray_script = _med([x.script_s for x in ray]) if ray else float("nan")
        ray_seen = _med([x.observed_s for x in ray]) if ray else float("nan")
        ray_done = _med([x.done_s for x in ray]) if ray else float("nan")
        ray_call = _med([x.submit_s for x in ray]) if ray else float("nan")
        have_ray = bool(ray)

        def peer(v: float, have: bool = have_ray) -> str:
            return _ms(v) if have else "n/a"

        def ratio(r: float, t: float, have: bool = have_ray) -> str:
            return faster(r, t) if have else ""

        table.add(
            f"submit → first line, script clock ({label})",
            _ms(ty_script),
            peer(ray_script),
            ratio(ray_script, ty_script),
            f"≤ {MAX_FIRST_LINE_S:g} s" + (", < Ray" if have_ray else ""),
            ty_script <= MAX_FIRST_LINE_S and (not have_ray or ty_script < ray_script),
        )
        table.add(
            f"submit → first line seen in log ({label})",
            _ms(ty_seen),
            peer(ray_seen),
            ratio(ray_seen, ty_seen),
            f"≤ {MAX_FIRST_LINE_S:g} s" + (", < Ray" if have_ray else ""),
            ty_seen <= MAX_FIRST_LINE_S and (not have_ray or ty_seen < ray_seen),
        )
        table.add(
            f"submit → Completed / SUCCEEDED ({label})",
            _ms(ty_done),
            peer(ray_done),
            ratio(ray_done, ty_done),
            "< Ray" if have_ray else "",
            (ty_done < ray_done) if have_ray else None,
        )
        table.add(f"submit call returns ({label})", _ms(ty_call), peer(ray_call), "", "(info)")
        summary[key] = {
            "trainyard": {
                "script_s": ty_script,
                "observed_s": ty_seen,
                "done_s": ty_done,
                "submit_call_s": ty_call,
                "p90_script_s": _p90([x.script_s for x in ty]),
            },
            "ray": {
                "script_s": ray_script,
                "observed_s": ray_seen,
                "done_s": ray_done,
                "submit_call_s": ray_call,
                "p90_script_s": _p90([x.script_s for x in ray]) if ray else None,
            },
        }

    bare_wall = _med([b.wall_s for b in res.bare])
    ty_wall = _med([b.wall_s for b in res.ty_burn])
    ray_wall = _med([b.wall_s for b in res.ray_burn])
    bare_work = _med([b.work_s for b in res.bare])
    ty_work = _med([b.work_s for b in res.ty_burn])
    ray_work = _med([b.work_s for b in res.ray_burn])
    # Paired: each round's bare, trainyard and Ray jobs ran back to back under the same load.
    ty_rounds = [t.wall_s / b.wall_s - 1 for t, b in zip(res.ty_burn, res.bare, strict=False)]
    ray_rounds = [r.wall_s / b.wall_s - 1 for r, b in zip(res.ray_burn, res.bare, strict=False)]
    ty_over = _med(ty_rounds)
    ray_over = _med(ray_rounds)
    fixed = {
        name: _med([b.wall_s - b.work_s for b in burns])
        for name, burns in (("bare", res.bare), ("ty", res.ty_burn), ("ray", res.ray_burn))
    }
    table.add(
        f"~{sizes.cpu_seconds:g} s CPU-bound job: wall over bare, paired",
        f"{ty_over:+.1%}",
        f"{ray_over:+.1%}",
        "",
        f"≤ {MAX_OVERHEAD:.0%} over bare",
        ty_over <= MAX_OVERHEAD,
    )
    table.add(
        f"  wall, median (bare {bare_wall:.2f} s)",
        f"{ty_wall:.2f} s",
        f"{ray_wall:.2f} s",
        faster(ray_wall, ty_wall),
        "(info)",
    )
    table.add(
        f"  fixed cost: wall − script's compute time (bare {_ms(fixed['bare'])})",
        _ms(fixed["ty"]),
        _ms(fixed["ray"]),
        faster(fixed["ray"], fixed["ty"]),
        "(info)",
    )
    table.add(
        f"  script's compute time (bare {bare_work:.2f} s)",
        f"{ty_work:.2f} s ({ty_work / bare_work - 1:+.1%})",
        f"{ray_work:.2f} s ({ray_work / bare_work - 1:+.1%})",
        "",
        "(info)",
    )
    sup_cpu = _med([b.supervisor_cpu_s for b in res.ty_burn])
    bare_cpu = _med([b.script_cpu_s for b in res.bare])
    ty_cpu = _med([b.script_cpu_s + b.supervisor_cpu_s for b in res.ty_burn])
    table.add(
        f"  CPU: script + its supervisor (bare script {bare_cpu:.2f} s) (3)",
        f"{ty_cpu:.2f} s ({ty_cpu / bare_cpu - 1:+.1%})",
        "",
        "",
        "(info)",
    )
    sup_start = _med([b.supervisor_start_cpu_s for b in res.ty_burn])
    table.add(
        "  of which trainyard's supervisor: start-up + supervising",
        f"{sup_start:.2f} s + {sup_cpu - sup_start:.2f} s "
        f"({(sup_cpu - sup_start) / ty_work:.1%} of a core)",
        "",
        "",
        "(info)",
    )
    table.add(
        "one-time setup: env build / Ray head start",
        f"{res.env_build_s:.1f} s",
        f"{res.ray_start_s:.1f} s",
        "",
        "(info, not timed above)",
    )
    summary["overhead"] = {
        "iterations": res.iterations,
        "bare_wall_s": bare_wall,
        "trainyard_wall_s": ty_wall,
        "ray_wall_s": ray_wall,
        "trainyard_overhead": ty_over,
        "ray_overhead": ray_over,
        "trainyard_overhead_rounds": ty_rounds,
        "ray_overhead_rounds": ray_rounds,
        "fixed_cost_s": fixed,
        "bare_script_cpu_s": bare_cpu,
        "trainyard_cpu_s": ty_cpu,
        "trainyard_supervisor_cpu_s": sup_cpu,
        "trainyard_supervisor_start_cpu_s": sup_start,
        "bare_work_s": bare_work,
        "trainyard_work_s": ty_work,
        "ray_work_s": ray_work,
    }

    table.note(
        f"Medians of {sizes.launches} jobs per row after {sizes.warmup} warm-up round(s); trainyard "
        "and Ray jobs alternate, each waits for the previous one to end. Script clock: the time the "
        "script's first statement printed − t0 (taken right before submit); seen: when the benchmark "
        f"found the line in the job's log file, read every {LOG_POLL_S * 1000:g} ms (trainyard's "
        "live user_logs/std_log.txt; Ray's job-driver-<id>.log, the file get_job_logs serves — "
        "read directly so that polling loads neither side; get_job_logs is checked to agree). "
        f"Terminal status: run.get_status() / get_job_status polled every {STATUS_POLL_S * 1000:g} ms."
    )
    table.note(
        "default env: no Environment (trainyard runs the submitting interpreter, user-managed) / no "
        f"runtime_env. {PINNED}: a uv-built trainyard Environment from the cache / Ray's "
        "runtime_env pip (a cached virtualenv)."
        + (f" Ray's pip runtime_env failed here: {res.ray_pip_error}" if res.ray_pip_error else "")
    )
    table.note(
        f"Overhead: {sizes.cpu_rounds} round(s), each running bare, trainyard and Ray back to back "
        "(order rotating); wall = before submit → terminal status seen (log read every "
        f"{BURN_LOG_POLL_S * 1000:g} ms until the script printed its end, then the status polled "
        f"every {STATUS_POLL_S * 1000:g} ms) vs the bare process's spawn → exit; the target row "
        "is the median of the per-round ratios ("
        + ", ".join(f"{x:+.1%}" for x in ty_rounds)
        + " for trainyard). Fixed cost = wall − the compute time the script measured itself: "
        "start-up and wind-down, free of the load swings that move the compute time. Supervisor "
        "CPU: user+system seconds of the run's supervisor process (psutil), sampled until the "
        "script ended (start-up = its CPU when the script had just started, first sampled within "
        f"{BURN_LOG_POLL_S * 1000:g} ms). The CPU row (the script's own time.process_time() + the "
        "supervisor's) moves less with the machine's load than wall time, though on a shared VM "
        "not by nothing."
    )
    stages = _stage_medians(res.ty_default)
    if stages:
        table.note(
            "trainyard, default env, median gaps between recorded status changes: "
            + ", ".join(f"{k} {_ms(v)}" for k, v in stages.items())
        )
    stages = _stage_medians(res.ty_built)
    if stages:
        table.note(
            f"trainyard, env with {PINNED}: "
            + ", ".join(f"{k} {_ms(v)}" for k, v in stages.items())
        )
    summary["stages_default"] = _stage_medians(res.ty_default)
    summary["stages_built"] = _stage_medians(res.ty_built)
    summary["failed"] = [r.operation for r in table.failed]
    return table, summary


def _p90(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def _stage_medians(launches: list[Launch]) -> dict[str, float]:
    keys: list[str] = []
    for x in launches:
        for k in x.stages:
            if k not in keys:
                keys.append(k)
    return {k: _med([x.stages[k] for x in launches if k in x.stages]) for k in keys}


# -- main -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, a 5 s CPU job")
    p.add_argument("--json", metavar="FILE", help="also write the raw samples and summary here")
    p.add_argument(
        "--rounds", type=int, metavar="N", help="rounds of the CPU-bound job (default 3, quick 1)"
    )
    p.add_argument(
        "--launches",
        type=int,
        metavar="N",
        help="timed trivial jobs per kind (default 20, quick 5)",
    )
    return p.parse_args(argv)


@contextlib.contextmanager
def _private_home(tmp: Path) -> Iterator[None]:
    """TRAINYARD_HOME and the environment cache inside ``tmp`` for the whole benchmark.

    Also lets Python cache bytecode (``PYTHONDONTWRITEBYTECODE`` unset, as in a default Python):
    with it set, as on some CI boxes, every supervisor recompiles trainyard's editable sources
    (~40 ms each start here); the warm-up jobs write the cache.
    """
    keys = ("TRAINYARD_HOME", "TRAINYARD_ENV_CACHE", "PYTHONDONTWRITEBYTECODE")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["TRAINYARD_HOME"] = str(tmp / "home")
    os.environ["TRAINYARD_ENV_CACHE"] = str(tmp / "envs")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    """Run every part, print the table, return the exit code."""
    args = parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.rounds is not None or args.launches is not None:
        sizes = dataclasses.replace(
            sizes,
            cpu_rounds=max(1, args.rounds or sizes.cpu_rounds),
            launches=max(1, args.launches or sizes.launches),
        )
    import ray

    from trainyard import __version__ as ty_version

    console = _common.make_console()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-submit-") as tmp_name:
        tmp = Path(tmp_name)
        with _private_home(tmp):
            res = run_all(tmp, sizes, console)
    total_s = time.perf_counter() - started

    table, summary = build_report(sizes, res)
    _common.print_machine_info({"trainyard": ty_version, "ray": ray.__version__})
    table.print()
    console.print(f"total benchmark time {total_s:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "samples": {
                        k: [x.__dict__ for x in getattr(res, k)]
                        for k in (
                            "ty_default",
                            "ty_built",
                            "ray_default",
                            "ray_pip",
                            "bare",
                            "ty_burn",
                            "ray_burn",
                        )
                    },
                    "summary": summary,
                    "total_s": total_s,
                },
                indent=2,
            )
        )
    if table.failed:
        console.print(
            "[bold red]missed:[/] " + "; ".join(r.operation for r in table.failed),
            highlight=False,
        )
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    _common.bootstrap("submit", modules=("ray", "rich", "psutil", "trainyard"))
    sys.exit(main())
