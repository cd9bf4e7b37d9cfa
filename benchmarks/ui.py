"""trainyard studio: the runs table at 100,000 runs, a 10,000,000-point metric's chart data, and
the browser's first contentful paint of a run page — through a real ``trainyard ui`` process —
beside MLflow's UI endpoints on the same data (``mlflow server``: ``ajax-api/2.0/mlflow/runs/search``
and ``metrics/get-history-bulk-interval``), with ratios.

Times are measured over loopback HTTP (an upper bound on the server's own time). MLflow runs from
this interpreter when it has MLflow (the benchmark environment), else from ``--mlflow-python``;
``--no-mlflow`` leaves it out.

    scripts/bench.sh ui            # or: .venv-test/bin/python benchmarks/ui.py --runs 100000
    .venv-test/bin/python benchmarks/ui.py --mlflow-python .venv-mlflow-3.17.2/bin/python
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from array import array
from pathlib import Path
from typing import Any

import _common

_common.bootstrap("ui", modules=("rich", "trainyard", "fastapi", "numpy"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_ms(url: str, n: int) -> tuple[list[float], Any]:
    times, body = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as resp:
            body = json.loads(resp.read())
        times.append((time.perf_counter() - t0) * 1000)
    return times, body


def seed(ws: Any, n_runs: int, n_points: int, say: Any) -> str:
    """``n_runs`` runs (with an ``lr`` property and one metric chunk each) and one run with an
    ``n_points``-point metric; returns that run's id."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _server_seed import seed_trainyard
    from sqlalchemy import insert, select

    from trainyard._store.sql import schema as s
    from trainyard._store.sql._latest import latest_rows
    from trainyard._tracking.codec import numeric_chunk

    ctx = ws.context
    t0 = time.perf_counter()
    exp_id = seed_trainyard(ctx.store_url, ctx.workspace_id, "bench", n_runs)
    store = ctx.store
    with store.engine.begin() as conn:
        q = select(s.runs.c.pk, s.runs.c.created_at).where(s.runs.c.experiment_id == exp_id)
        created = dict(conn.execute(q).all())
        pks = list(created)
        props, chunks, latest = [], [], []
        for i, pk in enumerate(pks):
            props.append({"run_pk": pk, "key": "lr", "value": f"{(i * 7919) % 1000 / 1000:.3f}"})
            c = numeric_chunk("loss", array("d", [1.0, 0.5]), array("d", [1.0, 2.0]), None, False)
            chunks.append(
                {"run_pk": pk, "name": "loss", "kind": "scalar", "dtype": "f", "count": 2}
                | {"timestamps": c.timestamps, "vals": c.values, "steps": None}
            )
            # What log_metric_chunks keeps beside the chunk: the run's last value of the metric.
            latest.extend(latest_rows(pk, created[pk], [c], time.time())[0])
        conn.execute(insert(s.run_properties), props)
        conn.execute(insert(s.metric_chunks), chunks)
        conn.execute(insert(s.run_latest_metrics), latest)
        # (These 2-point chunks get no summaries: a chart of one of them reads its blobs.)
    say(f"seeded {n_runs:,} runs in {time.perf_counter() - t0:.1f} s")
    from trainyard.core import Experiment

    t0 = time.perf_counter()
    run = Experiment(ws, "big").start_logging(display_name="10M points")
    per = 100_000
    for lo in range(0, n_points, per):
        k = min(per, n_points - lo)
        vals = array("d", (1.0 / (1 + (lo + i) % 5000) for i in range(k)))
        ts = array("d", (1.7e9 + (lo + i) * 0.001 for i in range(k)))
        steps = array("q", range(lo, lo + k))
        store.log_metric_chunks(run.id, [numeric_chunk("loss", vals, ts, steps, False)])
    run.complete()
    say(f"logged {n_points:,} points in {time.perf_counter() - t0:.1f} s")
    return str(run.id)


def first_paint_ms(url: str) -> float | None:
    """First contentful paint of ``url`` in Debian's Chromium (``None`` without Playwright)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path("/usr/bin/chromium").exists():
        return None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page()
        page.goto(url)  # warm the asset cache as a returning user has it
        values = []
        for _ in range(3):
            page.goto("about:blank")
            page.goto(url)
            page.locator(".chart canvas").first.wait_for(timeout=30_000)
            fcp = page.evaluate(
                "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
            )
            if fcp is not None:
                values.append(float(fcp))
        browser.close()
    return _common.median(values) if values else None


def _vs(peer: dict[str, float], key: str, ours_ms: float) -> tuple[str, str]:
    """The peer column and the ratio (peer / ours) for one row."""
    if key not in peer:
        return ("not measured", "")
    theirs = peer[key]
    if theirs == float("inf"):
        return ("timed out (> 120 s)", "")
    return (f"{theirs:.1f} ms", _common.fmt_ratio(theirs / ours_ms) if ours_ms > 0 else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=100_000)
    p.add_argument("--points", type=int, default=10_000_000)
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--mlflow-python", help="an interpreter with MLflow to run `mlflow server`")
    p.add_argument("--no-mlflow", action="store_true", help="measure trainyard only")
    args = p.parse_args(argv)
    mlflow_python = args.mlflow_python
    if mlflow_python is None and importlib.util.find_spec("mlflow") is not None:
        mlflow_python = sys.executable
    if args.no_mlflow:
        mlflow_python = None
    console = _common.make_console()

    def say(text: str) -> None:
        console.print(f"[bold]{text}[/]", highlight=False)

    from trainyard import __version__
    from trainyard.core import Workspace

    table = _common.ResultTable(f"trainyard studio {__version__}", peer="MLflow UI")
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-ui-") as tmp:
        os.environ["TRAINYARD_HOME"] = str(Path(tmp) / "home")
        ws = Workspace.create("bench-ui", path=Path(tmp) / "ws")
        big = seed(ws, args.runs, args.points, say)
        peer: dict[str, float] = {}
        if mlflow_python is not None:
            sys.path.insert(0, str(Path(__file__).parent))
            import _ui_mlflow

            say(f"MLflow: {mlflow_python} -m mlflow server …")
            peer = _ui_mlflow.measure(mlflow_python, Path(tmp), args.runs, args.points, say)
        port = _port()
        cli = Path(sys.executable).with_name("trainyard")
        proc = subprocess.Popen(
            [str(cli), "ui", "--workspace", str(Path(tmp) / "ws"), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(base + "api/session", timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise _common.BenchmarkError("trainyard ui did not start") from None
                    time.sleep(0.1)
            api = f"{base}api/w/bench-ui/"
            ms, body = _get_ms(api + "runs?limit=50", 10)
            assert body["total"] >= args.runs, body["total"]
            first = _common.median(ms)
            table.add(
                f"runs table, first page of {args.runs:,}",
                f"{first:.1f} ms",
                *_vs(peer, "first_page", first),
                target="< 100 ms",
                passed=first < 100,
            )
            ms, _ = _get_ms(api + "runs?limit=50&sort=property:lr&desc=0", 5)
            by_param = _common.median(ms)
            table.add(
                "  … sorted by a parameter", f"{by_param:.1f} ms", *_vs(peer, "by_param", by_param)
            )
            ms, _ = _get_ms(api + "runs?limit=50&sort=metric:loss&desc=0", 5)
            table.add("  … sorted by a metric", f"{_common.median(ms):.1f} ms", "")
            ms, _ = _get_ms(api + f"runs?limit=50&offset={max(0, args.runs - 100)}", 5)
            table.add("  … its last page", f"{_common.median(ms):.1f} ms", "no offset paging")
            cold, body = _get_ms(api + f"series?name=loss&run={big}&points=1000", 1)
            assert body["runs"][big]["count"] == args.points
            warm, _ = _get_ms(api + f"series?name=loss&run={big}&points=1000", 5)
            series = _common.median(warm)
            table.add(
                f"chart data of a {args.points:,}-point metric (1000 px)",
                f"{series:.0f} ms",
                *_vs(peer, "chart", series),
                target="< 200 ms",
                passed=series < 200,
            )
            table.add(
                "  … first request (nothing cached)",
                f"{cold[0]:.0f} ms",
                *_vs(peer, "chart_cold", cold[0]),
            )
            fcp = first_paint_ms(f"{base}#/w/bench-ui/runs/{big}")
            table.add(
                "first contentful paint of that run page",
                f"{fcp:.0f} ms" if fcp is not None else "not measured",
                "",
                target="< 1 s",
                passed=None if fcp is None else fcp < 1000,
            )
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
    table.note("Over loopback HTTP through a real `trainyard ui` (SQLite, WAL); medians.")
    table.note(
        "Chart data: the store keeps per-chunk summaries (min/max/last of each 256 points); the "
        "first request reads those (1.6 MB for 10M points), later ones only chunks logged since."
    )
    if peer:
        table.note(
            "MLflow: `mlflow server` (1 worker, SQLite) on the same runs, params and points; "
            "runs/search (50 rows) and metrics/get-history-bulk-interval (max_results=1000); "
            "ratio = MLflow time / trainyard time."
        )
    else:
        table.note("MLflow not measured (no MLflow here: --mlflow-python PATH).")
    _common.print_machine_info()
    table.print()
    return 1 if args.strict and table.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
