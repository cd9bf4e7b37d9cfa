"""Metric logging: trainyard's ``run.log`` against MLflow's ``log_metric`` and ``log_batch``.

Run it with ``scripts/bench.sh tracking`` (creates ``.venv-bench`` with MLflow on first use), or
directly with ``python benchmarks/tracking.py [--strict] [--postgres URL] [--quick]``.

The workload is a training loop logging a handful of scalar series (5 names, round robin):

* trainyard: ``run.log(name, value)`` 1,000,000 times in an interactive run, then ``run.flush()``;
  the points are counted back with ``run.get_metrics()``. Repeated 3 times, medians reported.
* MLflow 3.17.2 on its SQLite store: ``mlflow.log_metric`` on a sample of 2,000 calls (at a few
  hundred calls a second, 1,000,000 would take the better part of an hour) and
  ``MlflowClient.log_batch`` with 100,000 points in batches of 1,000; counted back in ``mlflow.db``.
* Peak RSS: a fresh interpreter that imports only trainyard logs 10,000,000 points and reports
  ``getrusage(RUSAGE_SELF).ru_maxrss``.
* With ``--postgres URL`` or ``TRAINYARD_TEST_POSTGRES_URL``: the trainyard workload on PostgreSQL.

Ratios compare persisted rates (points/s from the first log call until the points are in the
database). The exit code is 0 even when a target is missed (it is a report); ``--strict`` makes a
missed target exit 1.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import json
import logging
import os
import pstats
import secrets
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAMES = ("loss", "accuracy", "learning_rate", "grad_norm", "throughput")

# Targets from the issue.
MAX_LOG_CALL_US = 2.0
MIN_PERSISTED_RATE = 200_000.0
MIN_RATIO_LOG_METRIC = 50.0
MIN_RATIO_LOG_BATCH = 2.0
MAX_RSS_MB = 200.0


@dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    points: int = 1_000_000
    repeat: int = 3
    rss_points: int = 10_000_000
    mlflow_calls: int = 2_000
    mlflow_batch_points: int = 100_000
    batch_size: int = 1_000
    mlflow_repeat: int = 4


QUICK = Sizes(
    points=100_000,
    repeat=2,
    rss_points=1_000_000,
    mlflow_calls=200,
    mlflow_batch_points=10_000,
    mlflow_repeat=2,
)


# -- trainyard --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainyardSample:
    """One pass of the trainyard workload."""

    points: int
    loop_s: float
    loop_cpu_s: float
    persisted_s: float
    counted: int

    @property
    def call_us(self) -> float:
        return self.loop_s / self.points * 1e6

    @property
    def call_cpu_us(self) -> float:
        return self.loop_cpu_s / self.points * 1e6

    @property
    def rate(self) -> float:
        return self.points / self.persisted_s


def _log_loop(run: Any, points: int) -> tuple[float, float, float]:
    """The measured workload; returns (wall seconds in the log loop, CPU seconds of this thread in
    the log loop, wall seconds until flush returned)."""
    log = run.log
    c0 = time.thread_time()
    t0 = time.perf_counter()
    for i, name in zip(range(points), itertools.cycle(NAMES), strict=False):
        log(name, i * 0.5)
    t1 = time.perf_counter()
    c1 = time.thread_time()
    run.flush()
    t2 = time.perf_counter()
    return t1 - t0, c1 - c0, t2 - t0


def _count(metrics: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, list) else 1 for v in metrics.values())


def bench_trainyard(ws: Any, points: int, repeat: int) -> list[TrainyardSample]:
    """``repeat`` fresh runs in workspace ``ws``, each logging ``points`` points."""
    from trainyard.core import Experiment

    exp = Experiment(ws, "bench-tracking")
    samples = []
    for _ in range(repeat):
        run = exp.start_logging()
        loop_s, loop_cpu_s, persisted_s = _log_loop(run, points)
        counted = _count(run.get_metrics())
        run.complete()
        samples.append(TrainyardSample(points, loop_s, loop_cpu_s, persisted_s, counted))
    return samples


def loop_overhead_us(points: int) -> float:
    """Per-iteration cost of the benchmark loop itself with a no-op instead of ``run.log``."""

    class _Noop:
        def log(self, name: str, value: float) -> None:
            pass

        def flush(self) -> None:
            pass

    loop_s, _, _ = _log_loop(_Noop(), points)
    return loop_s / points * 1e6


def profile_trainyard(ws: Any, points: int) -> str:
    """cProfile of one trainyard pass (``--profile``), top functions by total time."""
    from trainyard.core import Experiment

    run = Experiment(ws, "bench-tracking-profile").start_logging()
    prof = cProfile.Profile()
    prof.enable()
    _log_loop(run, points)
    prof.disable()
    run.complete()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


_RSS_CHILD = r"""
import itertools, json, resource, sys, time
points, home = int(sys.argv[1]), sys.argv[2]
names = ("loss", "accuracy", "learning_rate", "grad_norm", "throughput")
t = time.perf_counter()
from trainyard.core import Experiment, Workspace
ws = Workspace.create("rss", path=home, exist_ok=True)
run = Experiment(ws, "bench-rss").start_logging()
setup_s = time.perf_counter() - t
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
log = run.log
t0 = time.perf_counter()
for i, name in zip(range(points), itertools.cycle(names)):
    log(name, i * 0.5)
run.flush()
elapsed = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
hwm = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
counted = sum(c.count for c in run._store.get_metric_chunks(run.id))  # after the peak was read
run.complete()
print(json.dumps({"base_kb": base, "peak_kb": peak, "hwm_kb": hwm, "elapsed_s": elapsed, "setup_s": setup_s,
                  "counted": counted, "modules": sorted(m for m in sys.modules if m.split(".")[0] in
                  ("mlflow", "rich", "numpy", "pandas"))}))
"""


def bench_rss(points: int, tmp: Path) -> dict[str, Any]:
    """Peak RSS of a fresh interpreter that imports only trainyard and logs ``points`` points."""
    return _common.run_child(_RSS_CHILD, str(points), str(tmp / "ws-rss"))


# -- MLflow -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MlflowResult:
    """Rates measured for MLflow on its SQLite store."""

    version: str
    import_s: float
    log_metric_rates: list[float]
    log_metric_calls: int
    log_batch_rates: list[float]
    log_batch_points: int
    counted: int

    @property
    def log_metric_rate(self) -> float:
        return _common.median(self.log_metric_rates)

    @property
    def log_batch_rate(self) -> float:
        return _common.median(self.log_batch_rates)


def bench_mlflow(tmp: Path, sizes: Sizes) -> MlflowResult:
    """``mlflow.log_metric`` loop and ``MlflowClient.log_batch`` on ``sqlite:///<tmp>/mlflow.db``."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    t = time.perf_counter()
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    import_s = time.perf_counter() - t
    for logger in ("mlflow", "alembic"):  # migrations chatter on first use of the database
        logging.getLogger(logger).setLevel(logging.WARNING)
    db = tmp / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    mlflow.set_experiment("bench-tracking")  # creates the database (migrations), not timed
    client = MlflowClient()

    with mlflow.start_run() as active:
        run_id = active.info.run_id
        k = len(NAMES)
        calls = max(1, sizes.mlflow_calls // sizes.mlflow_repeat)
        metric_rates = []
        i = 0
        for _ in range(sizes.mlflow_repeat):
            t0 = time.perf_counter()
            for _ in range(calls):
                mlflow.log_metric(NAMES[i % k], i * 0.5, step=i // k)
                i += 1
            metric_rates.append(calls / (time.perf_counter() - t0))

        per_rep = max(sizes.batch_size, sizes.mlflow_batch_points // sizes.mlflow_repeat)
        batch_rates = []
        for _ in range(sizes.mlflow_repeat):
            t0 = time.perf_counter()
            for start in range(i, i + per_rep, sizes.batch_size):
                now = int(time.time() * 1000)
                batch = [
                    Metric(NAMES[j % k], j * 0.5, now, j // k)
                    for j in range(start, min(start + sizes.batch_size, i + per_rep))
                ]
                client.log_batch(run_id, metrics=batch)
            batch_rates.append(per_rep / (time.perf_counter() - t0))
            i += per_rep

    with sqlite3.connect(db) as conn:
        (counted,) = conn.execute(
            "SELECT COUNT(*) FROM metrics WHERE run_uuid = ?", (run_id,)
        ).fetchone()
    return MlflowResult(
        version=mlflow.__version__,
        import_s=import_s,
        log_metric_rates=metric_rates,
        log_metric_calls=calls * sizes.mlflow_repeat,
        log_batch_rates=batch_rates,
        log_batch_points=per_rep * sizes.mlflow_repeat,
        counted=int(counted),
    )


# -- report -----------------------------------------------------------------------------------
def _us(x: float) -> str:
    if x >= 1000:
        return f"{x / 1000:,.2f} ms"
    return f"{x:.2f} µs"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("TRAINYARD_TEST_POSTGRES_URL") or None,
        help="also run the trainyard workload on this PostgreSQL database "
        "(default: $TRAINYARD_TEST_POSTGRES_URL)",
    )
    p.add_argument(
        "--quick", action="store_true", help="a tenth of the work (smoke test; targets still shown)"
    )
    p.add_argument("--profile", action="store_true", help="print a cProfile of one trainyard pass")
    p.add_argument("--json", metavar="FILE", help="also write the measurements as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every part, print the tables, return the exit code."""
    args = parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    from trainyard import __version__ as ty_version
    from trainyard.core import Workspace

    console = _common.make_console()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as tmp_name:
        tmp = Path(tmp_name)

        console.print(f"[bold]trainyard[/]: {sizes.repeat} x {sizes.points:,} points on SQLite …")
        ws = Workspace.create("bench", path=tmp / "ws", exist_ok=True)
        ty = bench_trainyard(ws, sizes.points, sizes.repeat)
        overhead = loop_overhead_us(sizes.points)
        profile = profile_trainyard(ws, sizes.points) if args.profile else ""

        pg: list[TrainyardSample] = []
        if args.postgres:
            console.print(f"[bold]trainyard[/]: {sizes.points:,} points on PostgreSQL …")
            ws_pg = Workspace.create(
                f"bench-{secrets.token_hex(3)}", path=tmp / "ws-pg", tracking_uri=args.postgres
            )
            pg = bench_trainyard(ws_pg, sizes.points, 1)

        console.print(
            f"[bold]trainyard[/]: {sizes.rss_points:,} points in a fresh process for peak RSS …"
        )
        rss = bench_rss(sizes.rss_points, tmp)

        console.print(
            f"[bold]MLflow[/]: {sizes.mlflow_calls:,} log_metric calls and "
            f"{sizes.mlflow_batch_points:,} points via log_batch on SQLite …"
        )
        ml = bench_mlflow(tmp, sizes)
    total_s = time.perf_counter() - started

    table, summary = build_report(args, sizes, ty, overhead, pg, rss, ml)
    _common.print_machine_info({"trainyard": ty_version, "mlflow": ml.version})
    busy = _common.busy_warning(load_before)
    if busy:
        console.print(f"[yellow]{busy}[/]")
    table.print()
    if profile:
        console.print("[bold]cProfile of one trainyard pass, main thread only (tottime):[/]")
        console.print(profile, highlight=False, markup=False)
    console.print(f"total benchmark time {total_s:.0f} s")

    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "trainyard": [s.__dict__ for s in ty],
                    "postgres": [s.__dict__ for s in pg],
                    "rss": rss,
                    "mlflow": ml.__dict__,
                    "summary": summary,
                    "total_s": total_s,
                },
                indent=2,
            )
        )
    if table.failed:
        console.print(
            f"[bold red]{len(table.failed)} target(s) missed[/]: "
            + "; ".join(r.operation for r in table.failed)
        )
        return 1 if args.strict else 0
    console.print("[green]all targets met[/]")
    return 0


def build_report(
    args: argparse.Namespace,
    sizes: Sizes,
    ty: list[TrainyardSample],
    overhead: float,
    pg: list[TrainyardSample],
    rss: dict[str, Any],
    ml: MlflowResult,
) -> tuple[_common.ResultTable, dict[str, Any]]:
    """The result table (with PASS/FAIL per target) and a summary for ``--json``."""
    from trainyard import __version__ as ty_version

    call_us = _common.median([s.call_us for s in ty])
    rate = _common.median([s.rate for s in ty])
    all_there = all(s.counted == s.points for s in ty)
    ratio_metric = rate / ml.log_metric_rate
    ratio_batch = rate / ml.log_batch_rate
    peak_mb = rss["peak_kb"] * 1024 / 1e6  # ru_maxrss is in KiB; the target is in MB (10^6 bytes)
    peak_mib = rss["peak_kb"] / 1024
    base_mib = rss["base_kb"] / 1024

    table = _common.ResultTable(
        f"Metric logging, trainyard {ty_version} vs MLflow {ml.version}", peer="MLflow"
    )
    table.add(
        "run.log call, mean cost (1)",
        _us(call_us),
        _us(1e6 / ml.log_metric_rate),
        fmt_ratio_inv(1e6 / ml.log_metric_rate / call_us),
        f"≤ {MAX_LOG_CALL_US:g} µs",
        call_us <= MAX_LOG_CALL_US,
    )
    table.add(
        f"persisted, SQLite, {sizes.points:,} pts (2)",
        _common.fmt_rate(rate) + ("" if all_there else " [red](points missing)[/]"),
        "",
        "",
        f"≥ {MIN_PERSISTED_RATE:,.0f} pts/s, all counted",
        rate >= MIN_PERSISTED_RATE and all_there,
    )
    table.add(
        "persisted vs log_metric loop (3)",
        _common.fmt_rate(rate),
        _common.fmt_rate(ml.log_metric_rate),
        _common.fmt_ratio(ratio_metric),
        f"≥ {MIN_RATIO_LOG_METRIC:g}x",
        ratio_metric >= MIN_RATIO_LOG_METRIC,
    )
    table.add(
        f"persisted vs log_batch({sizes.batch_size:,}) (4)",
        _common.fmt_rate(rate),
        _common.fmt_rate(ml.log_batch_rate),
        _common.fmt_ratio(ratio_batch),
        f"≥ {MIN_RATIO_LOG_BATCH:g}x",
        ratio_batch >= MIN_RATIO_LOG_BATCH,
    )
    table.add(
        f"peak RSS, {sizes.rss_points:,} pts (5)",
        f"{peak_mb:.0f} MB ({peak_mib:.0f} MiB)",
        "not measured",
        "",
        f"< {MAX_RSS_MB:g} MB",
        peak_mb < MAX_RSS_MB and rss["counted"] == sizes.rss_points,
    )
    table.add("import (6)", f"{rss['setup_s']:.2f} s", f"{ml.import_s:.2f} s", "", "(info)")
    if pg:
        table.add(
            f"persisted, PostgreSQL, {sizes.points:,} pts (7)",
            _common.fmt_rate(pg[0].rate)
            + ("" if pg[0].counted == pg[0].points else " [red](points missing)[/]"),
            "",
            _common.fmt_ratio(pg[0].rate / ml.log_batch_rate) + " (vs log_batch)",
            "(info)",
        )

    table.note(
        f"Wall time of the log loop ÷ points, median of {sizes.repeat} runs "
        f"({', '.join(_us(s.call_us) for s in ty)}); includes the loop itself "
        f"(~{_us(overhead)} with a no-op log) and the background writer competing for the GIL. "
        f"CPU time of the logging thread alone: "
        f"{_us(_common.median([s.call_cpu_us for s in ty]))}/call (median; wall time is higher "
        f"when the writer thread or other processes hold the CPU). "
        f"MLflow column: 1 / its log_metric rate (each call is a synchronous SQLite write)."
    )
    table.note(
        f"From the first log call until run.flush() returned, median of {sizes.repeat} runs "
        f"({', '.join(_common.fmt_rate(s.rate) for s in ty)}); every run counted back with "
        f"get_metrics(): {', '.join(f'{s.counted:,}' for s in ty)}."
    )
    table.note(
        f"MLflow log_metric is timed on a sample of {ml.log_metric_calls:,} calls "
        f"({sizes.mlflow_repeat} x {ml.log_metric_calls // sizes.mlflow_repeat}, median rate), not "
        f"{sizes.points:,}: at this rate {sizes.points:,} calls would take "
        f"{_duration(sizes.points / ml.log_metric_rate)}. Samples: "
        f"{', '.join(_common.fmt_rate(r) for r in ml.log_metric_rates)}."
    )
    table.note(
        f"MLflow MlflowClient.log_batch, {ml.log_batch_points:,} points in batches of "
        f"{sizes.batch_size:,} (Metric objects built inside the timing), median of "
        f"{sizes.mlflow_repeat}: {', '.join(_common.fmt_rate(r) for r in ml.log_batch_rates)}. "
        f"Points counted in mlflow.db: {ml.counted:,} of "
        f"{ml.log_metric_calls + ml.log_batch_points:,}."
    )
    table.note(
        f"ru_maxrss of a fresh interpreter that imports only trainyard "
        f"({'also loaded: ' + ', '.join(rss['modules']) if rss['modules'] else 'no MLflow, rich, numpy or pandas loaded'})"
        f" and logs {sizes.rss_points:,} points: {base_mib:.0f} MiB after opening the workspace and "
        f"starting the run, {peak_mib:.0f} MiB at the end (VmHWM {rss['hwm_kb'] / 1024:.0f} MiB; "
        f"{rss['elapsed_s']:.1f} s, {rss['counted']:,} points counted). MLflow's memory is not "
        f"measured: {sizes.rss_points:,} "
        f"points would take {_duration(sizes.rss_points / ml.log_batch_rate)} through log_batch "
        f"and {_duration(sizes.rss_points / ml.log_metric_rate)} through log_metric at the rates above."
    )
    table.note(
        "trainyard: import + Workspace.create + start_logging in the RSS child; MLflow: "
        "`import mlflow` in this process. Not measured for MLflow here: its tracking server, "
        "async logging (log_metric(synchronous=False)), and PostgreSQL."
    )
    if pg:
        table.note(
            f"One run of {sizes.points:,} points on {_redact(args.postgres)}: loop "
            f"{_us(pg[0].call_us)}/call, {pg[0].counted:,} points counted. MLflow is not run on "
            f"PostgreSQL here."
        )

    summary = {
        "log_call_us": call_us,
        "persisted_rate": rate,
        "ratio_log_metric": ratio_metric,
        "ratio_log_batch": ratio_batch,
        "peak_rss_mb": peak_mb,
        "postgres_rate": pg[0].rate if pg else None,
        "failed": [r.operation for r in table.failed],
    }
    return table, summary


def fmt_ratio_inv(x: float) -> str:
    """Ratio of per-call costs, written as 'Nx less'."""
    return f"{_common.fmt_ratio(x)} less"


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


if __name__ == "__main__":
    _common.bootstrap("tracking", modules=("mlflow", "rich", "trainyard", "sqlalchemy"))
    sys.exit(main())
