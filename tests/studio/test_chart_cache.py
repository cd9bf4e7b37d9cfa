"""The studio's chart columns, summary sketches and their cache over a real SQLite store: a chart
read again asks the store only for new chunks, what it serves from points equals a fresh
downsampling of every chunk, and what it serves from summaries has the points' own envelope."""

from __future__ import annotations

import math
from array import array
from pathlib import Path

import pytest

from trainyard._store.summary import BLOCK
from trainyard._tracking.codec import numeric_chunk
from trainyard.core import Experiment, Workspace
from trainyard.studio.chart_cache import ChartCache
from trainyard.studio.series import Columns, downsample
from trainyard.studio.sketch import Sketch


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.create("charts", path=tmp_path / "ws")


def _log(ws: Workspace, run_id: str, lo: int, n: int, steps: bool = True) -> None:
    values = array("d", (1.0 / (1 + (lo + i) % 97) for i in range(n)))
    times = array("d", (1.7e9 + lo + i for i in range(n)))
    chunk = numeric_chunk(
        "loss", values, times, array("q", range(lo, lo + n)) if steps else None, False
    )
    ws.context.store.log_metric_chunks(run_id, [chunk])


def test_a_cached_chart_grows_with_new_chunks_and_matches_a_fresh_one(ws: Workspace) -> None:
    run = Experiment(ws, "live").start_logging()
    store = ws.context.store
    cache = ChartCache()
    _log(ws, run.id, 0, 5000)
    first = cache.series(store, ws.context.workspace_id, run.id, "loss", "step", 100)
    assert first["count"] == 5000 and first["downsampled"] and len(first["x"]) == 100
    _log(ws, run.id, 5000, 3000)
    _log(ws, run.id, 8000, 10, steps=False)
    for axis in ("step", "time"):
        got = cache.series(store, ws.context.workspace_id, run.id, "loss", axis, 100)
        fresh = downsample(store.chart_chunks(run.id, "loss", axis), axis, 100)
        assert got == fresh and got["count"] == 8010
    small = cache.series(store, ws.context.workspace_id, run.id, "loss", "step", 10_000)
    assert not small["downsampled"] and small["x"][-1] == 8009  # index of a step-less point
    run.complete()


def test_columns_skip_chunks_already_read_and_non_numeric_ones(ws: Workspace) -> None:
    run = Experiment(ws, "mixed").start_logging()
    _log(ws, run.id, 0, 10)
    run.log("loss", "not a number")
    run.flush()
    chunks = ws.context.store.chart_chunks(run.id, "loss", "step")
    columns = Columns("step")
    columns.extend(chunks)
    columns.extend(chunks)  # the same chunks again: nothing added
    assert columns.count == 10 and columns.last_seq == max(c.seq for c in chunks)
    assert columns.downsample(5)["y"][-1] == pytest.approx(1.0 / 10)
    run.complete()


def test_the_cache_keeps_to_its_memory_budget(ws: Workspace) -> None:
    store = ws.context.store
    runs = [Experiment(ws, "many").start_logging() for _ in range(3)]
    for r in runs:
        _log(ws, r.id, 0, 1000)
    cache = ChartCache(max_bytes=40_000)  # room for two series of 1000 points (16 kB each)
    for r in runs:
        assert cache.series(store, "w", r.id, "loss", "step", 10)["count"] == 1000
    assert cache.cached_keys() == [
        ("w", runs[1].id, "loss", "step"),
        ("w", runs[2].id, "loss", "step"),
    ]
    tiny = ChartCache(max_bytes=100)
    assert tiny.series(store, "w", runs[0].id, "loss", "step", 10)["count"] == 1000
    assert tiny.cached_keys() == []


def _spiky(ws: Workspace, run_id: str, sizes: list[int], steps: bool = True) -> list[float]:
    """Chunks of ``sizes`` points with NaN, ±inf and spikes; the values logged, in order."""
    logged: list[float] = []
    for n in sizes:
        lo = len(logged)
        values = [((lo + i) * 7919 % 1000) / 1000.0 for i in range(n)]
        for at in range(5, n, 1237):
            values[at] = float("nan")
        if n > 4000:
            values[n // 2], values[n // 3] = 50.0 + lo, float("-inf")
        chunk = numeric_chunk(
            "loss",
            array("d", values),
            array("d", (1.7e9 + lo + i for i in range(n))),
            array("q", range(lo, lo + n)) if steps else None,
            False,
        )
        ws.context.store.log_metric_chunks(run_id, [chunk])
        logged.extend(values)
    return logged


def _bounds(values: list[float]) -> tuple[float | None, float | None]:
    clean = [v for v in values if v == v]
    lo, hi = (min(clean), max(clean)) if clean else (None, None)
    return (
        lo if lo is None or math.isfinite(lo) else None,
        hi if hi is None or math.isfinite(hi) else None,
    )


@pytest.mark.parametrize("steps", [True, False])
def test_summaries_give_the_points_own_envelope(ws: Workspace, steps: bool) -> None:
    run = Experiment(ws, "long").start_logging()
    store = ws.context.store
    values = _spiky(ws, run.id, [30_000, 1, 255, 257, 9_000, 40_000], steps=steps)
    points = 20
    sketch = Sketch("step")
    sketch.extend(store.chart_summaries(run.id, "loss"))
    assert sketch.serves(points) and not sketch.serves(points * 4)
    got = sketch.downsample(points)
    full = downsample(store.chart_chunks(run.id, "loss", "step"), "step", points)
    assert got["count"] == full["count"] == len(values) and got["downsampled"]
    assert len(got["x"]) == points
    assert got["x"][-1] == full["x"][-1] == len(values) - 1
    assert got["y"][-1] == full["y"][-1]
    finite = [v for v in got["min"] + full["min"] if v is not None]
    assert min(v for v in got["min"] if v is not None) == min(finite)
    assert max(v for v in got["max"] if v is not None) == max(
        v for v in got["max"] + full["max"] if v is not None
    )
    # Each bucket is exact for the points it holds (x is the index of its last point here) and
    # its edge lies within half a block of the equal-count edge.
    start = 0
    for x, y, low, high, edge in zip(
        got["x"], got["y"], got["min"], got["max"], full["x"], strict=True
    ):
        end = int(x) + 1
        assert (low, high) == _bounds(values[start:end])
        assert y == (values[end - 1] if math.isfinite(values[end - 1]) else None)
        assert abs(x - edge) <= BLOCK // 2 + 1
        start = end
    by_time = Sketch("time")
    by_time.extend(store.chart_summaries(run.id, "loss"))
    assert by_time.downsample(points)["x"][-1] == 1.7e9 + len(values) - 1
    run.complete()


def test_the_cache_answers_from_summaries_or_from_points(ws: Workspace) -> None:
    run = Experiment(ws, "both").start_logging()
    store = ws.context.store
    _spiky(ws, run.id, [30_000, 20_000])
    cache = ChartCache()
    wide = cache.series(store, "w", run.id, "loss", "step", 40)
    sketch = Sketch("step")
    sketch.extend(store.chart_summaries(run.id, "loss"))
    assert wide == sketch.downsample(40)
    fine = cache.series(store, "w", run.id, "loss", "step", 1000)  # too fine: the points
    assert fine == downsample(store.chart_chunks(run.id, "loss", "step"), "step", 1000)
    _spiky(ws, run.id, [5_000])
    sketch.extend(store.chart_summaries(run.id, "loss"))
    assert cache.series(store, "w", run.id, "loss", "step", 40) == sketch.downsample(40)
    assert cache.series(store, "w", run.id, "loss", "step", 40)["count"] == 55_000
    run.complete()


def test_chunks_without_summaries_are_charted_from_their_points(ws: Workspace) -> None:
    """Rows written without a summary (a bulk insert, say) chart as before: from the points."""
    from sqlalchemy import delete

    from trainyard._store.sql import schema

    run = Experiment(ws, "old").start_logging()
    store = ws.context.store
    _spiky(ws, run.id, [30_000, 20_000])
    first = store.chart_summaries(run.id, "loss")[0].seq
    with store.engine.begin() as conn:
        conn.execute(
            delete(schema.metric_summaries).where(schema.metric_summaries.c.chunk_id == first)
        )
    assert store.chart_summaries(run.id, "loss")[0].blocks is None
    got = ChartCache().series(store, "w", run.id, "loss", "step", 40)
    assert got == downsample(store.chart_chunks(run.id, "loss", "step"), "step", 40)
    run.complete()
