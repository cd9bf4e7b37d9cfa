"""Helpers shared by the benchmarks in this folder (not part of the trainyard package).

Every benchmark runs trainyard and its peer in the same process run and prints ratios, because this
kind of machine is noisy: absolute numbers drift, ratios hold. A benchmark script looks like::

    import _common

    _common.bootstrap("tracking", modules=("mlflow", "rich", "trainyard"))
    table = _common.ResultTable("Metric logging", peer="MLflow")
    secs = _common.median_time(lambda: work(), repeat=3)
    table.add("work", ours=f"{secs:.2f} s", target="≤ 1 s", passed=secs <= 1.0)
    _common.print_machine_info({"mlflow": "3.17.2"})
    table.print()

Only the standard library is imported at module level, so :func:`bootstrap` can run under any
``python3`` and hand over to the benchmark environment (``.venv-bench``) when the peers are missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_SH = ROOT / "scripts" / "bench.sh"
_BOOTSTRAPPED = "TRAINYARD_BENCH_BOOTSTRAPPED"


class BenchmarkError(Exception):
    """A benchmark could not measure what it set out to (a child failed, a peer misbehaved)."""


# -- environment ------------------------------------------------------------------------------
def bootstrap(name: str, modules: Sequence[str]) -> None:
    """Make sure ``modules`` import; otherwise re-run this benchmark through ``scripts/bench.sh``.

    ``bench.sh`` creates ``.venv-bench`` (``python3 -m venv`` + ``pip install -e '.[bench,postgres]'``)
    on first use and runs ``benchmarks/<name>.py`` with the same arguments under it. Call this before
    importing any peer.

    Example::

        bootstrap("tracking", modules=("mlflow", "rich", "trainyard"))
    """
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    if os.environ.get(_BOOTSTRAPPED):
        sys.exit(
            f"benchmark {name}: {', '.join(missing)} still missing under {sys.executable}; "
            f"delete .venv-bench and run scripts/bench.sh {name} again."
        )
    print(
        f"benchmark {name}: {', '.join(missing)} not importable here; re-running via {BENCH_SH}",
        file=sys.stderr,
    )
    env = dict(os.environ, **{_BOOTSTRAPPED: "1"})
    os.execvpe("bash", ["bash", str(BENCH_SH), name, "--", *sys.argv[1:]], env)


def machine_info(peers: Mapping[str, str] | None = None) -> dict[str, str]:
    """Cores, CPU model, memory, Python, OS and peer versions, for the report header.

    Example::

        info = machine_info({"mlflow": "3.17.2"})
        print(info["cores"])
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    cpu = platform.processor() or platform.machine()
    mem = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        load = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover
        load = "?"
    info = {
        "cores": f"{usable} usable ({os.cpu_count()} online)",
        "cpu": cpu,
        "memory": mem or "?",
        "load average": load,
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "os": f"{platform.system()} {platform.release()}",
    }
    for peer, version in (peers or {}).items():
        info[peer] = version
    return info


def print_machine_info(peers: Mapping[str, str] | None = None) -> None:
    """Print :func:`machine_info` as a small rich table.

    Example::

        print_machine_info({"mlflow": "3.17.2"})
    """
    from rich.table import Table

    t = Table(title="Machine", show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    for k, v in machine_info(peers).items():
        t.add_row(k, v)
    make_console().print(t)


def make_console() -> Any:
    """A rich ``Console``; 120 columns wide when the output is not a terminal (logs, CI, pipes),
    where rich would otherwise fold the tables to 80.

    Example::

        make_console().print("[bold]hello[/]")
    """
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120)


def busy_warning(load_before: float | None = None) -> str:
    """A warning line when the 1-minute load average (before or after the run) exceeds the usable
    cores: other processes then inflate absolute numbers; ratios measured side by side hold better.
    Empty when the machine looked idle.

    Example::

        before = os.getloadavg()[0]
        ...  # measure
        print(busy_warning(before))
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    try:
        load = max(os.getloadavg()[0], load_before or 0.0)
    except OSError:  # pragma: no cover
        return ""
    if load <= cores:
        return ""
    return (
        f"machine busy: load average up to {load:.1f} on {cores} cores during this run; absolute "
        "times are inflated by other processes, the side-by-side ratios less so."
    )


# -- timing -----------------------------------------------------------------------------------
def median_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Median wall-clock seconds of ``repeat`` calls of ``fn`` (``time.perf_counter``).

    Example::

        secs = median_time(lambda: sum(range(10**6)), repeat=5)
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def median(values: Sequence[float]) -> float:
    """Median of measured values (rates, per-call costs) from repeated samples.

    Example::

        median([3.0, 1.0, 2.0])  # 2.0
    """
    return float(statistics.median(values))


# -- memory -----------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``getrusage(RUSAGE_SELF)``).

    Example::

        print(f"{peak_rss_mb():.0f} MiB")
    """
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":  # pragma: no cover - bytes there
        kb //= 1024
    return kb / 1024


def run_child(
    code: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (same ``sys.executable``) and return the JSON object it
    prints on its last stdout line.

    Used for peak-RSS measurements: the child imports only what it measures and reports its own
    ``ru_maxrss``. The child is started through ``/bin/sh`` on purpose: Linux carries a process's
    RSS high-water mark across ``exec`` (``signal->maxrss``), and Python starts children with vfork,
    so a child exec'd straight from this (large) process would report *our* peak as its own. The
    shell is small and forks the interpreter, which starts with a clean high-water mark.

    Example::

        out = run_child("import json, sys; print(json.dumps({'argv': sys.argv[1:]}))", "x")
        assert out == {"argv": ["x"]}
    """
    proc = subprocess.run(
        ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchmarkError(
            f"benchmark child failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise BenchmarkError(f"benchmark child printed nothing:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def vm_hwm_mb() -> float | None:
    """``VmHWM`` of this process from ``/proc/self/status`` in MiB (Linux), a cross-check of
    :func:`peak_rss_mb` that only counts the current program image.

    Example::

        print(vm_hwm_mb())
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- report -----------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of a :class:`ResultTable`; ``passed`` is None for rows without a target."""

    operation: str
    ours: str
    peer: str = ""
    ratio: str = ""
    target: str = ""
    passed: bool | None = None


@dataclass
class ResultTable:
    """Operation / trainyard / peer / ratio / target / PASS-FAIL, printed with rich.

    Example::

        t = ResultTable("Metric logging", peer="MLflow")
        t.add("log call", ours="0.9 µs", target="≤ 2 µs", passed=True)
        t.print()
        exit_code = 1 if t.failed else 0
    """

    title: str
    peer: str = "peer"
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        operation: str,
        ours: str,
        peer: str = "",
        ratio: str = "",
        target: str = "",
        passed: bool | None = None,
    ) -> Row:
        """Append a row and return it."""
        row = Row(operation, ours, peer, ratio, target, passed)
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        """A footnote printed under the table."""
        self.notes.append(text)

    @property
    def failed(self) -> list[Row]:
        """Rows whose target was missed."""
        return [r for r in self.rows if r.passed is False]

    def print(self) -> None:
        """Render the table and its notes to the terminal."""
        from rich.table import Table

        t = Table(title=self.title, title_justify="left")
        t.add_column("operation")
        t.add_column("trainyard", justify="right")
        t.add_column(self.peer, justify="right")
        t.add_column("ratio", justify="right")
        t.add_column("target")
        t.add_column("result")
        for r in self.rows:
            verdict = (
                "" if r.passed is None else ("[green]PASS[/]" if r.passed else "[bold red]FAIL[/]")
            )
            t.add_row(r.operation, r.ours, r.peer, r.ratio, r.target, verdict)
        console = make_console()
        console.print(t)
        for i, n in enumerate(self.notes, 1):
            console.print(f"  [dim]({i})[/] {n}", highlight=False)


# -- formatting -------------------------------------------------------------------------------
def fmt_rate(points_per_s: float) -> str:
    """``1234567.8`` → ``'1,234,568 pts/s'``.

    Example::

        fmt_rate(375.2)  # '375 pts/s'
    """
    return f"{points_per_s:,.0f} pts/s"


def fmt_ratio(x: float) -> str:
    """``123.456`` → ``'123x'``, ``2.345`` → ``'2.3x'``.

    Example::

        fmt_ratio(2.345)  # '2.3x'
    """
    return f"{x:,.0f}x" if x >= 100 else f"{x:.1f}x"
