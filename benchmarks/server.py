"""The team server: ``trainyard server`` against ``mlflow server`` on the same store kind.

Run it with ``scripts/bench.sh server`` (creates ``.venv-bench`` with MLflow on first use), or
directly with ``python benchmarks/server.py [--strict] [--postgres URL] [--quick]``.

Both servers are real processes started by this benchmark on free loopback ports (trainyard's
through ``trainyard.testing.server.start_server``, MLflow's as ``python -m mlflow server``), each on
a fresh SQLite database (and, with ``--postgres URL``, again on PostgreSQL), and stopped by PID.
Measured for each, in the same run:

* points/s through the server from one client and from 16 concurrent clients (one process each):
  trainyard's remote workspace (``Workspace.connect``, ``start_logging``, ``run.log`` loop,
  ``run.flush()``, points counted back through the server); MLflow's ``MlflowClient.log_batch`` in
  batches of 1,000 (counted back with ``get_metric_history``);
* run start + end latency (create a run, complete it; p50 and p95);
* the first page of the run list at 100,000 runs, seeded in bulk straight into each SQL store:
  ``experiment.get_runs()`` vs ``MlflowClient.search_runs``, p95 over at least 30 calls;
* the server's resident memory (its process and children) idle and under the 16-client load;
* cold start: spawn until the server answers its health route.

The exit code is 0 even when a target is missed (it is a report); ``--strict`` makes a missed target
exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import _server_procs as procs
import _server_seed as seed

# Targets from the issue.
MIN_RATE = 200_000.0
MIN_RATIO = 50.0
MAX_LIST_P95_MS = 100.0
MAX_RSS_MB = 300.0


@dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    ty_points: int = 1_000_000
    ty_repeat: int = 3
    clients: int = 16
    ty_points_each: int = 100_000
    ml_points: int = 20_000
    ml_repeat: int = 3
    ml_points_each: int = 4_000
    batch: int = 1_000
    latency_runs: int = 50
    list_runs: int = 100_000
    list_calls: int = 30
    page: int = 100


QUICK = Sizes(
    ty_points=200_000,
    ty_repeat=2,
    ty_points_each=20_000,
    ml_points=5_000,
    ml_repeat=2,
    ml_points_each=1_000,
    latency_runs=20,
    list_runs=10_000,
)


@dataclass
class Side:
    """Everything measured for one server on one store kind."""

    cold_start_s: float = 0.0
    idle_rss_mb: float = 0.0
    one: list[dict[str, Any]] = field(default_factory=list)  # LoadResult summaries, 1 client
    many: dict[str, Any] = field(default_factory=dict)  # n clients
    load_rss_mb: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    list_exp_ms: list[float] = field(default_factory=list)
    list_all_ms: list[float] = field(default_factory=list)
    list_rss_mb: float = 0.0
    workers: int = 1


def _summary(load: procs.LoadResult) -> dict[str, Any]:
    return {
        "points": load.points,
        "counted": load.counted,
        "wall_s": load.wall_s,
        "rate": load.rate,
        "clients": len(load.clients),
    }


def _timed_ms(fn: Any, n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


# -- trainyard --------------------------------------------------------------------------------
def bench_trainyard(store_url: str, tmp: Path, sizes: Sizes, say: Any) -> Side:
    """Start ``trainyard server`` on ``store_url`` and measure every part against it."""
    from trainyard._store.rest.tracking import RestTrackingStore
    from trainyard.core import Experiment, Workspace
    from trainyard.testing.server import start_server

    side = Side()
    t0 = time.perf_counter()
    server = start_server(store_url, tmp / "ty-files", log=tmp / "ty-server.log")
    side.cold_start_s = time.perf_counter() - t0
    try:
        pid = server.process.pid
        name = f"bench-{secrets.token_hex(3)}"
        admin = RestTrackingStore(server.url, server.admin_token)
        ws_info = admin.ensure_workspace(name)
        ws = Workspace.connect(server.url, name, token=server.admin_token)
        time.sleep(1.0)
        side.idle_rss_mb = procs.tree_rss_mb(pid)
        spec = {"url": server.url, "token": server.admin_token, "workspace": name}

        say(f"trainyard: {sizes.ty_repeat} x 1 client x {sizes.ty_points:,} points …")
        for _ in range(sizes.ty_repeat):
            one = procs.run_clients(
                procs.trainyard_client,
                {**spec, "experiment": "bench-one", "points": sizes.ty_points},
                1,
            )
            side.one.append(_summary(one))
        say(f"trainyard: {sizes.clients} clients x {sizes.ty_points_each:,} points …")
        with procs.RssSampler(pid) as rss:
            many = procs.run_clients(
                procs.trainyard_client,
                {**spec, "experiment": "bench-many", "points": sizes.ty_points_each},
                sizes.clients,
            )
        side.many, side.load_rss_mb = _summary(many), rss.peak_mb

        say(f"trainyard: {sizes.latency_runs} runs started and completed …")
        exp = Experiment(ws, "bench-latency")

        def start_end() -> None:
            exp.start_logging().complete()

        side.latency_ms = _timed_ms(start_end, sizes.latency_runs)

        say(f"trainyard: seeding {sizes.list_runs:,} runs, then listing …")
        seed.seed_trainyard(store_url, ws_info.id, "bench-list", sizes.list_runs)
        exp_list = Experiment(ws, "bench-list")
        store = ws.context.store

        def first_page() -> None:
            got = list(itertools.islice(exp_list.get_runs(), sizes.page))
            assert len(got) == sizes.page, len(got)

        def workspace_page() -> None:
            got, _ = store.list_runs(workspace_id=ws_info.id, limit=sizes.page)
            assert len(got) == sizes.page, len(got)

        with procs.RssSampler(pid) as rss:
            side.list_exp_ms = _timed_ms(first_page, sizes.list_calls)
            side.list_all_ms = _timed_ms(workspace_page, sizes.list_calls)
        side.list_rss_mb = rss.peak_mb
    finally:
        server.stop()
    return side


# -- MLflow -----------------------------------------------------------------------------------
def bench_mlflow(
    backend_uri: str, tmp: Path, sizes: Sizes, say: Any, workers: int | None
) -> tuple[Side, str]:
    """Start ``mlflow server`` on ``backend_uri`` and measure every part against it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    for logger in ("mlflow", "alembic"):
        logging.getLogger(logger).setLevel(logging.WARNING)
    side = Side()
    server = procs.start_mlflow_server(
        backend_uri, tmp / "ml-artifacts", tmp / "ml-server.log", workers=workers
    )
    side.cold_start_s = server.cold_start_s
    side.workers = server.workers
    try:
        pid = server.process.pid
        client = MlflowClient(tracking_uri=server.url)
        time.sleep(1.0)
        side.idle_rss_mb = procs.tree_rss_mb(pid)
        exp_one = client.create_experiment(f"bench-one-{secrets.token_hex(3)}")
        exp_many = client.create_experiment(f"bench-many-{secrets.token_hex(3)}")
        spec = {"url": server.url, "batch": sizes.batch}

        say(f"MLflow: {sizes.ml_repeat} x 1 client x {sizes.ml_points:,} points (log_batch) …")
        for _ in range(sizes.ml_repeat):
            one = procs.run_clients(
                procs.mlflow_client,
                {**spec, "experiment_id": exp_one, "points": sizes.ml_points},
                1,
            )
            side.one.append(_summary(one))
        say(f"MLflow: {sizes.clients} clients x {sizes.ml_points_each:,} points …")
        with procs.RssSampler(pid) as rss:
            many = procs.run_clients(
                procs.mlflow_client,
                {**spec, "experiment_id": exp_many, "points": sizes.ml_points_each},
                sizes.clients,
            )
        side.many, side.load_rss_mb = _summary(many), rss.peak_mb

        say(f"MLflow: {sizes.latency_runs} runs created and terminated …")
        exp_lat = client.create_experiment(f"bench-latency-{secrets.token_hex(3)}")

        def start_end() -> None:
            run = client.create_run(exp_lat)
            client.set_terminated(run.info.run_id)

        side.latency_ms = _timed_ms(start_end, sizes.latency_runs)

        say(f"MLflow: seeding {sizes.list_runs:,} runs, then listing …")
        exp_list = client.create_experiment(f"bench-list-{secrets.token_hex(3)}")
        root = str(tmp / "ml-artifacts")
        seed.seed_mlflow(backend_uri, exp_list, root, sizes.list_runs)
        all_ids = [e.experiment_id for e in client.search_experiments()]

        def first_page() -> None:
            got = client.search_runs([exp_list], max_results=sizes.page)
            assert len(got) == sizes.page, len(got)

        def all_page() -> None:
            got = client.search_runs(all_ids, max_results=sizes.page)
            assert len(got) == sizes.page, len(got)

        with procs.RssSampler(pid) as rss:
            side.list_exp_ms = _timed_ms(first_page, sizes.list_calls)
            side.list_all_ms = _timed_ms(all_page, sizes.list_calls)
        side.list_rss_mb = rss.peak_mb
    finally:
        server.stop()
    return side, str(mlflow.__version__)


# -- report -----------------------------------------------------------------------------------
def _ms(x: float) -> str:
    return f"{x:,.0f} ms" if x >= 100 else f"{x:.1f} ms"


def _rate_of(runs: list[dict[str, Any]]) -> float:
    return _common.median([r["rate"] for r in runs])


def _all_counted(*loads: dict[str, Any]) -> bool:
    return all(x["counted"] == x["points"] for x in loads)


def add_rows(
    table: _common.ResultTable, kind: str, sizes: Sizes, ty: Side, ml: Side, note_base: int
) -> None:
    """The rows of one store kind (``note_base`` numbers its notes)."""
    n = note_base
    p = procs.percentile
    sfx = f", {kind}"
    table.add(
        f"cold start to healthy{sfx} ({n})",
        f"{ty.cold_start_s:.2f} s",
        f"{ml.cold_start_s:.2f} s",
        _common.fmt_ratio(ml.cold_start_s / ty.cold_start_s) + " faster",
        "(info)",
    )
    table.add(
        f"server RSS, idle{sfx} ({n + 1})",
        f"{ty.idle_rss_mb:.0f} MB",
        f"{ml.idle_rss_mb:.0f} MB",
        _common.fmt_ratio(ml.idle_rss_mb / ty.idle_rss_mb) + " less",
        f"< {MAX_RSS_MB:g} MB",
        ty.idle_rss_mb < MAX_RSS_MB,
    )
    for label, ty_rate, ml_rate, ok in (
        ("1 client", _rate_of(ty.one), _rate_of(ml.one), _all_counted(*ty.one)),
        (
            f"{sizes.clients} clients",
            ty.many["rate"],
            ml.many["rate"],
            _all_counted(ty.many),
        ),
    ):
        ratio = ty_rate / ml_rate
        table.add(
            f"points/s, {label}{sfx} ({n + 2})",
            _common.fmt_rate(ty_rate) + ("" if ok else " [red](points missing)[/]"),
            _common.fmt_rate(ml_rate),
            _common.fmt_ratio(ratio),
            f"≥ {MIN_RATE:,.0f} pts/s and ≥ {MIN_RATIO:g}x",
            ty_rate >= MIN_RATE and ratio >= MIN_RATIO and ok,
        )
    table.add(
        f"server RSS, {sizes.clients} clients logging{sfx} ({n + 1})",
        f"{ty.load_rss_mb:.0f} MB",
        f"{ml.load_rss_mb:.0f} MB",
        _common.fmt_ratio(ml.load_rss_mb / ty.load_rss_mb) + " less",
        f"< {MAX_RSS_MB:g} MB",
        ty.load_rss_mb < MAX_RSS_MB,
    )
    for q in (50, 95):
        t, m = p(ty.latency_ms, q), p(ml.latency_ms, q)
        table.add(
            f"run start + end, p{q}{sfx} ({n + 3})",
            _ms(t),
            _ms(m),
            _common.fmt_ratio(m / t) + " faster",
            "(info)",
        )
    for label, t_vals, m_vals in (
        ("experiment.get_runs()", ty.list_exp_ms, ml.list_exp_ms),
        ("run list, whole workspace", ty.list_all_ms, ml.list_all_ms),
    ):
        t, m = p(t_vals, 95), p(m_vals, 95)
        table.add(
            f"{label} first page p95, {sizes.list_runs:,} runs{sfx} ({n + 4})",
            _ms(t),
            _ms(m),
            _common.fmt_ratio(m / t) + " faster",
            f"< {MAX_LIST_P95_MS:g} ms",
            t < MAX_LIST_P95_MS,
        )
    table.add(
        f"server RSS, listing{sfx} ({n + 1})",
        f"{ty.list_rss_mb:.0f} MB",
        f"{ml.list_rss_mb:.0f} MB",
        _common.fmt_ratio(ml.list_rss_mb / ty.list_rss_mb) + " less",
        f"< {MAX_RSS_MB:g} MB",
        ty.list_rss_mb < MAX_RSS_MB,
    )


def add_notes(table: _common.ResultTable, sizes: Sizes, ty: Side, ml: Side, workers: str) -> None:
    """Numbered notes saying exactly what was timed (one set; the rows of every store kind
    share them)."""
    table.note(
        "Spawn of the server process until its health route answers 200, on a fresh database "
        "(migrations included): trainyard `start_server` polls /readyz (answered only once the "
        "database answers, so it comes after /healthz), MLflow /health, both every 50/20 ms."
    )
    table.note(
        "Resident memory (RSS) of the server process plus all its children (psutil; shared pages "
        "counted once per process), 1 s after start (idle), and the peak sampled every 0.1 s "
        f"during the {sizes.clients}-client load and during the list calls. trainyard: 1 worker "
        f"(its default); MLflow: {workers}."
    )
    one_ty = ", ".join(_common.fmt_rate(r["rate"]) for r in ty.one)
    one_ml = ", ".join(_common.fmt_rate(r["rate"]) for r in ml.one)
    table.note(
        "Samples below are from the first store kind (SQLite). Each client is its own process "
        "(multiprocessing spawn) that connects first; all start "
        "together at a barrier. Rate = points ÷ (first log of any client → last flush returned). "
        f"trainyard: Workspace.connect + start_logging, run.log(name, value) over 5 names, "
        f"run.flush(); 1 client × {sizes.ty_points:,} points, median of {sizes.ty_repeat} "
        f"({one_ty}); {sizes.clients} × {sizes.ty_points_each:,}. Counted back through the server "
        f"with run.get_metrics(): {sum(r['counted'] for r in ty.one) + ty.many['counted']:,} of "
        f"{sum(r['points'] for r in ty.one) + ty.many['points']:,}. MLflow: "
        f"MlflowClient.log_batch of {sizes.batch:,} Metric objects (built inside the timing); "
        f"1 client × {sizes.ml_points:,}, median of {sizes.ml_repeat} ({one_ml}); "
        f"{sizes.clients} × {sizes.ml_points_each:,} (a sample: at its rate the trainyard sizes "
        f"would take {sizes.ty_points / _rate_of(ml.one):.0f} s per client); counted back with "
        f"get_metric_history: {sum(r['counted'] for r in ml.one) + ml.many['counted']:,} of "
        f"{sum(r['points'] for r in ml.one) + ml.many['points']:,}."
    )
    table.note(
        f"{sizes.latency_runs} runs one after another from this process, after 3 warm-up runs: "
        "trainyard exp.start_logging() + run.complete() (create Running, flush, Completed); "
        "MLflow client.create_run + client.set_terminated."
    )
    table.note(
        f"{sizes.list_runs:,} finished runs inserted in bulk into one experiment straight through "
        "each store's SQL tables (no tags, params or metrics), then the first page of "
        f"{sizes.page} runs {sizes.list_calls} times after 3 warm-ups: trainyard "
        "experiment.get_runs() (one list_runs call) and list_runs(workspace_id=…) through the REST "
        f"store; MLflow search_runs(\\[experiment], max_results={sizes.page}) and search_runs over "
        "all its experiments. The workspace list also holds the runs of the parts above."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("TRAINYARD_TEST_POSTGRES_URL") or None,
        help="also run both servers on this PostgreSQL database "
        "(default: $TRAINYARD_TEST_POSTGRES_URL)",
    )
    p.add_argument("--no-postgres", action="store_true", help="SQLite only, whatever the env says")
    p.add_argument(
        "--quick", action="store_true", help=f"less work (~1 min; {QUICK.list_runs:,} runs listed)"
    )
    p.add_argument(
        "--mlflow-workers",
        type=int,
        default=None,
        help="mlflow server --workers (default: MLflow's own default)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the measurements as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every part, print the table, return the exit code."""
    args = parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    from trainyard import __version__ as ty_version

    console = _common.make_console()

    def say(text: str) -> None:
        console.print(f"[bold]{text}[/]", highlight=False)

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results: dict[str, tuple[Side, Side]] = {}
    ml_version = "?"
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-server-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["TRAINYARD_HOME"] = str(tmp / "home")  # remote caches of the clients
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # "View run at" lines
        kinds: list[tuple[str, str | None]] = [("SQLite", None)]
        if args.postgres and not args.no_postgres:
            kinds.append(("PostgreSQL", args.postgres))
        for kind, pg in kinds:
            folder = tmp / kind.lower()
            folder.mkdir()
            say(f"== {kind}")
            with _stores(kind, folder, pg) as (ty_url, ml_url):
                ty = bench_trainyard(ty_url, folder, sizes, say)
                ml, ml_version = bench_mlflow(ml_url, folder, sizes, say, args.mlflow_workers)
            results[kind] = (ty, ml)
    total_s = time.perf_counter() - started

    table = _common.ResultTable(
        f"Team server, trainyard {ty_version} vs mlflow server {ml_version}", peer="MLflow server"
    )
    for kind, (ty, ml) in results.items():
        add_rows(table, kind, sizes, ty, ml, 1)
    first_ty, first_ml = next(iter(results.values()))
    workers = f"--workers {args.mlflow_workers}" if args.mlflow_workers else "its default workers"
    add_notes(table, sizes, first_ty, first_ml, workers)
    _common.print_machine_info({"trainyard": ty_version, "mlflow": ml_version})
    console.print(
        "load average before / after: {:.1f} / {:.1f} {:.1f} {:.1f}".format(
            load_before, *os.getloadavg()
        )
    )
    busy = _common.busy_warning(load_before)
    if busy:
        console.print(f"[yellow]{busy}[/]")
    table.print()
    console.print(f"total benchmark time {total_s:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "sizes": asdict(sizes),
                    "results": {
                        k: {"trainyard": asdict(t), "mlflow": asdict(m)}
                        for k, (t, m) in results.items()
                    },
                    "failed": [r.operation for r in table.failed],
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


@contextlib.contextmanager
def _stores(kind: str, folder: Path, pg: str | None) -> Iterator[tuple[str, str]]:
    """(trainyard's store URL, MLflow's backend URI) on one store kind: two SQLite files side by
    side, or two fresh schemas of the PostgreSQL database (created here, dropped afterwards, so
    each server starts on empty tables and the seeded runs do not stay behind)."""
    if pg is None:
        yield f"sqlite:///{folder / 'ty.db'}", f"sqlite:///{folder / 'mlflow.db'}"
        return
    from trainyard._context import normalize_store_url
    from trainyard.testing.fixtures import postgres_schema

    base = normalize_store_url(pg)
    with (
        postgres_schema(base, prefix="bench_ty_") as ty_url,
        postgres_schema(base, prefix="bench_mlflow_") as ml_url,
    ):
        yield ty_url, ml_url


if __name__ == "__main__":
    _common.bootstrap("server", modules=("mlflow", "rich", "trainyard", "psutil", "uvicorn"))
    sys.exit(main())
