"""The studio's chart columns and their cache over a real SQLite store: a chart read again asks
the store only for new chunks, and what it serves equals a fresh downsampling of every chunk."""

from __future__ import annotations

from array import array
from pathlib import Path

import pytest

from trainyard._tracking.codec import numeric_chunk
from trainyard.core import Experiment, Workspace
from trainyard.studio.chart_cache import ChartCache
from trainyard.studio.series import Columns, downsample


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
