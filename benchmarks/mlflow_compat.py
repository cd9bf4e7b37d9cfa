"""The same MLflow client workload against ``mlflow server`` and against ``trainyard server``'s
MLflow endpoint, on the same store kind (SQLite), in one run.

Run it with ``scripts/bench.sh mlflow_compat`` (creates ``.venv-bench`` with MLflow on first use),
or ``python benchmarks/mlflow_compat.py [--strict] [--quick]``. Both servers are real processes
started here on free loopback ports and stopped by PID. The client is MLflow's own
``MlflowClient`` in this process, pointed at each server in turn:

* ``log_batch``: 100,000 points (batches of 1,000 metrics: 5 names × 200 steps) into one run;
  counted back with ``get_metric_history``;
* 1,000 runs created and finished (``create_run`` + ``set_terminated``);
* ``search_runs`` over those 1,000 runs (``max_results=1000``) and with a filter on a param,
  median and p95 of 20 calls.

Target (issue 16): trainyard ≥ 5× MLflow's own server on both the logging and the runs workloads.
The exit code is 0 even when a target is missed; ``--strict`` makes a miss exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import _server_procs as procs

MIN_RATIO = 5.0


@dataclass(frozen=True)
class Sizes:
    points: int = 100_000
    batch: int = 1_000
    runs: int = 1_000
    searches: int = 20


QUICK = Sizes(points=20_000, runs=200, searches=10)


@dataclass
class Side:
    log_s: float = 0.0
    counted: int = 0
    runs_s: float = 0.0
    search_p50_ms: float = 0.0
    search_p95_ms: float = 0.0
    filter_p50_ms: float = 0.0
    found: int = 0
    #: CPU this (client) process spent per created run / per search: the same MLflow client code
    #: runs against both servers, so MLflow's time over this bounds any server's ratio.
    client_run_ms: float = 0.0
    client_search_ms: float = 0.0
    #: CPU the server's processes spent per created run / per search (``search_runs`` without a
    #: filter): the server's own cost, which no client overhead hides.
    server_run_ms: float = 0.0
    server_search_ms: float = 0.0


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return _common.median(times), procs.percentile(times, 95)


def workload(
    uri: str, sizes: Sizes, label: str, say: Callable[[str], None], server_pid: int
) -> Side:
    """The MLflow client workload against the tracking URI ``uri`` (a server whose processes
    lead with ``server_pid``)."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    side = Side()
    exp_id = client.create_experiment(f"bench-{int(time.time() * 1000)}")
    say(f"{label}: log_batch of {sizes.points:,} points …")
    run = client.create_run(exp_id)
    names = ("loss", "accuracy", "lr", "grad_norm", "throughput")
    steps = sizes.points // len(names)
    now = int(time.time() * 1000)
    t0 = time.perf_counter()
    batch: list[Metric] = []
    for step in range(steps):
        for n in names:
            batch.append(Metric(n, step * 0.5, now + step, step))
            if len(batch) == sizes.batch:
                client.log_batch(run.info.run_id, metrics=batch)
                batch = []
    if batch:
        client.log_batch(run.info.run_id, metrics=batch)
    side.log_s = time.perf_counter() - t0
    side.counted = sum(len(client.get_metric_history(run.info.run_id, n)) for n in names)
    client.set_terminated(run.info.run_id)
    say(f"{label}: {sizes.runs:,} runs created and finished …")
    t0, c0, s0 = time.perf_counter(), time.process_time(), procs.tree_cpu_s(server_pid)
    for i in range(sizes.runs):
        r = client.create_run(exp_id, run_name=f"r{i}")
        if i % 10 == 0:
            client.log_batch(r.info.run_id, params=[Param("tenth", "yes")])
        client.set_terminated(r.info.run_id)
    side.runs_s = time.perf_counter() - t0
    side.client_run_ms = (time.process_time() - c0) * 1000 / sizes.runs
    side.server_run_ms = (procs.tree_cpu_s(server_pid) - s0) * 1000 / sizes.runs
    say(f"{label}: search_runs ×{sizes.searches} …")
    c0, s0 = time.process_time(), procs.tree_cpu_s(server_pid)
    side.search_p50_ms, side.search_p95_ms = _timed(
        lambda: client.search_runs([exp_id], max_results=1000), sizes.searches
    )
    side.client_search_ms = (time.process_time() - c0) * 1000 / sizes.searches
    side.server_search_ms = (procs.tree_cpu_s(server_pid) - s0) * 1000 / sizes.searches
    side.filter_p50_ms, _ = _timed(
        lambda: client.search_runs([exp_id], "params.tenth = 'yes'", max_results=1000),
        sizes.searches,
    )
    side.found = len(client.search_runs([exp_id], "params.tenth = 'yes'", max_results=1000))
    return side


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--quick", action="store_true", help="a fifth of the work (smoke test)")
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    import mlflow

    from trainyard import __version__ as ty_version
    from trainyard._store.rest.tracking import RestTrackingStore
    from trainyard.testing.server import start_server

    console = _common.make_console()

    def say(text: str) -> None:
        console.print(f"[bold]{text}[/]", highlight=False)

    load_before = os.getloadavg()[0]
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-mlflow-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["TRAINYARD_HOME"] = str(tmp / "home")
        ty_server = start_server(f"sqlite:///{tmp / 'ty.db'}", tmp / "ty-files")
        try:
            RestTrackingStore(ty_server.url, ty_server.admin_token).ensure_workspace("bench")
            os.environ["MLFLOW_TRACKING_TOKEN"] = ty_server.admin_token  # mlflow server ignores it
            ty = workload(
                f"{ty_server.url}/mlflow/bench", sizes, "trainyard", say, ty_server.process.pid
            )
        finally:
            ty_server.stop()
        ml_server = procs.start_mlflow_server(
            f"sqlite:///{tmp / 'mlflow.db'}", tmp / "ml-files", tmp / "mlflow.log", workers=None
        )
        try:
            ml = workload(ml_server.url, sizes, "MLflow", say, ml_server.process.pid)
        finally:
            ml_server.stop()

    table = _common.ResultTable(
        f"MLflow client → trainyard server {ty_version} vs mlflow server {mlflow.__version__}",
        peer="MLflow server",
    )
    ty_rate, ml_rate = sizes.points / ty.log_s, sizes.points / ml.log_s
    table.add(
        f"log_batch, {sizes.points:,} points (1)",
        _common.fmt_rate(ty_rate),
        _common.fmt_rate(ml_rate),
        _common.fmt_ratio(ty_rate / ml_rate),
        f"≥ {MIN_RATIO:g}x",
        ty_rate / ml_rate >= MIN_RATIO and ty.counted == ml.counted == sizes.points,
    )
    ty_runs, ml_runs = sizes.runs / ty.runs_s, sizes.runs / ml.runs_s
    table.add(
        f"{sizes.runs:,} runs created + finished (2)",
        f"{ty_runs:,.0f} runs/s",
        f"{ml_runs:,.0f} runs/s",
        _common.fmt_ratio(ty_runs / ml_runs),
        f"≥ {MIN_RATIO:g}x",
        ty_runs / ml_runs >= MIN_RATIO,
    )
    table.add(
        f"search_runs, {sizes.runs + 1:,} runs, p50 / p95 (3)",
        f"{ty.search_p50_ms:.0f} / {ty.search_p95_ms:.0f} ms",
        f"{ml.search_p50_ms:.0f} / {ml.search_p95_ms:.0f} ms",
        _common.fmt_ratio(ml.search_p50_ms / ty.search_p50_ms),
        f"≥ {MIN_RATIO:g}x (p50)",
        ml.search_p50_ms / ty.search_p50_ms >= MIN_RATIO and ty.found == ml.found,
    )
    table.add(
        "server CPU per created + finished run (5)",
        f"{ty.server_run_ms:.2f} ms",
        f"{ml.server_run_ms:.2f} ms",
        _common.fmt_ratio(ml.server_run_ms / max(ty.server_run_ms, 1e-9)),
        "(info)",
    )
    table.add(
        "server CPU per search_runs of 1,000 runs (5)",
        f"{ty.server_search_ms:.1f} ms",
        f"{ml.server_search_ms:.1f} ms",
        _common.fmt_ratio(ml.server_search_ms / max(ty.server_search_ms, 1e-9)),
        "(info)",
    )
    table.add(
        "search_runs with a param filter, p50 (3)",
        f"{ty.filter_p50_ms:.0f} ms",
        f"{ml.filter_p50_ms:.0f} ms",
        _common.fmt_ratio(ml.filter_p50_ms / ty.filter_p50_ms),
        "(info)",
    )
    table.note(
        f"MlflowClient.log_batch of {sizes.batch:,} Metric objects per call (5 names × "
        f"{sizes.points // 5:,} steps) into one run; counted back with get_metric_history: "
        f"trainyard {ty.counted:,}, MLflow {ml.counted:,} of {sizes.points:,}."
    )
    table.note(
        "create_run then set_terminated, one after another from this process; every tenth run "
        "also logs a param (log_batch)."
    )
    table.note(
        f"search_runs(max_results=1000) over the experiment, {sizes.searches} calls each; the "
        f"filter params.tenth = 'yes' found trainyard {ty.found}, MLflow {ml.found}. Both "
        "servers on SQLite with their default workers; the same client process drives both."
    )
    table.note(
        f"The MLflow client's own CPU (this process): {ty.client_run_ms:.1f} / "
        f"{ml.client_run_ms:.1f} ms per created run and {ty.client_search_ms:.0f} / "
        f"{ml.client_search_ms:.0f} ms per search (against trainyard / MLflow). No server can beat "
        f"MLflow's by more than MLflow's time over that: {1000 / ml_runs / ml.client_run_ms:.1f}x "
        f"on runs, {ml.search_p50_ms / ml.client_search_ms:.1f}x on search here."
    )
    table.note(
        "CPU seconds of the server's process tree (its workers included) over the runs and "
        "the unfiltered searches, per operation: what each server costs per request, which the "
        "single client's own time does not hide."
    )
    _common.print_machine_info({"trainyard": ty_version, "mlflow": mlflow.__version__})
    console.print(
        "load average before / after: {:.1f} / {:.1f} {:.1f} {:.1f}".format(
            load_before, *os.getloadavg()
        )
    )
    busy = _common.busy_warning(load_before)
    if busy:
        console.print(f"[yellow]{busy}[/]")
    table.print()
    if table.failed:
        console.print(f"[bold red]{len(table.failed)} target(s) missed[/]")
        return 1 if args.strict else 0
    console.print("[green]all targets met[/]")
    return 0


if __name__ == "__main__":
    _common.bootstrap("mlflow_compat", modules=("mlflow", "rich", "trainyard", "psutil"))
    sys.exit(main())
