"""MLflow's side of ``ui.py``: the same data in a real ``mlflow server`` (SQLite), and the UI's own
endpoints timed over loopback HTTP.

The data is written straight into MLflow's tables (its schema, as the server created it): the runs,
an ``lr`` param and a two-point ``loss`` metric for each, and one run with an ``n_points``-point
``loss`` — one row per point, as MLflow stores metrics. The endpoints are those the MLflow UI calls:
``ajax-api/2.0/mlflow/runs/search`` (the runs table, also sorted by a param) and
``ajax-api/2.0/mlflow/metrics/get-history-bulk-interval`` (a chart's sampled history).
Only the standard library and SQLAlchemy are needed here; MLflow itself runs in ``python``.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import _server_procs as procs
from _server_seed import seed_mlflow

_BATCH = 200_000
#: One MLflow request longer than this is recorded as timed out (``math.inf``), not waited for.
TIMEOUT_S = 120


def _post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
        return json.loads(resp.read())


def _time_ms(call: Any, n: int) -> tuple[list[float], Any]:
    """Milliseconds of ``n`` calls and the last answer; a timed-out call ends the series with
    ``math.inf`` (and answer ``None``)."""
    times: list[float] = []
    out = None
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            out = call()
        except TimeoutError:
            return [*times, math.inf], None
        times.append((time.perf_counter() - t0) * 1000)
    return times, out


def _seed(db: Path, experiment_id: str, artifacts: Path, n_runs: int, n_points: int) -> str:
    """Runs with an ``lr`` param and a 2-point ``loss``, and a big run; returns its id."""
    seed_mlflow(f"sqlite:///{db}", experiment_id, str(artifacts), n_runs)
    conn = sqlite3.connect(db)
    try:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT run_uuid FROM runs WHERE experiment_id = ?", (int(experiment_id),)
            )
        ]
        conn.executemany(
            "INSERT INTO params (key, value, run_uuid) VALUES ('lr', ?, ?)",
            ((f"{(i * 7919) % 1000 / 1000:.3f}", rid) for i, rid in enumerate(ids)),
        )
        metric_rows = []
        for rid in ids:
            metric_rows += [("loss", 1.0, 1000, rid, 0, 0), ("loss", 0.5, 2000, rid, 1, 0)]
        conn.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?,?,?,?,?,?)",
            metric_rows,
        )
        conn.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
            "VALUES ('loss', 0.5, 2000, 1, 0, ?)",
            ((rid,) for rid in ids),
        )
        big = uuid.uuid4().hex
        now = int(time.time() * 1000)
        conn.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id,"
            " status, start_time, end_time, source_version, lifecycle_stage, artifact_uri,"
            " experiment_id) VALUES (?, '10M points', 'LOCAL', '', '', 'bench', 'FINISHED', ?, ?,"
            " '', 'active', ?, ?)",
            (big, now, now + 1, f"{artifacts}/{experiment_id}/{big}/artifacts", int(experiment_id)),
        )
        for lo in range(0, n_points, _BATCH):
            hi = min(lo + _BATCH, n_points)
            conn.executemany(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                " VALUES ('loss', ?, ?, ?, ?, 0)",
                ((1.0 / (1 + i % 5000), 1_700_000_000_000 + i, big, i) for i in range(lo, hi)),
            )
        conn.execute(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
            " VALUES ('loss', ?, ?, ?, 0, ?)",
            (
                1.0 / (1 + (n_points - 1) % 5000),
                1_700_000_000_000 + n_points - 1,
                n_points - 1,
                big,
            ),
        )
        conn.commit()
    finally:
        conn.close()
    return big


def measure(python: str, tmp: Path, n_runs: int, n_points: int, say: Any) -> dict[str, float]:
    """Median milliseconds of MLflow's UI endpoints (keys as ``ui.py`` names its rows)."""
    db = tmp / "mlflow.db"
    server = procs.start_mlflow_server(
        f"sqlite:///{db}", tmp / "ml-artifacts", tmp / "ml-server.log", workers=1, python=python
    )
    try:
        api = f"{server.url}/ajax-api/2.0/mlflow"
        exp = _post(f"{api}/experiments/create", {"name": "bench"})["experiment_id"]
        t0 = time.perf_counter()
        big = _seed(db, exp, tmp / "ml-artifacts", n_runs, n_points)
        say(
            f"MLflow: seeded {n_runs:,} runs and {n_points:,} points in {time.perf_counter() - t0:.1f} s"
        )

        def search(order: str) -> Any:
            body = {"experiment_ids": [exp], "max_results": 50, "order_by": [order]}
            return _post(f"{api}/runs/search", body)

        out: dict[str, float] = {}
        ms, body = _time_ms(lambda: search("attributes.start_time DESC"), 3)
        assert body is None or len(body["runs"]) == 50, body
        out["first_page"] = sorted(ms)[len(ms) // 2]
        ms, _ = _time_ms(lambda: search("params.lr ASC"), 3)
        out["by_param"] = sorted(ms)[len(ms) // 2]
        url = f"{api}/metrics/get-history-bulk-interval?run_ids={big}&metric_key=loss&max_results=1000"

        def chart() -> Any:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
                return json.loads(resp.read())

        cold, body = _time_ms(chart, 1)
        assert body is None or body.get("metrics"), body
        out["chart_cold"] = cold[0]
        ms, _ = _time_ms(chart, 3)
        out["chart"] = sorted(ms)[len(ms) // 2]
        return out
    finally:
        server.stop()
