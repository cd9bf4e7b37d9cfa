"""The studio's cache of chart data: a chart asks the store only for chunks it lacks.

A chart of a 10,000,000-point metric would read 160 MB of packed chunks; a page that polls a live
run redraws it every few seconds. :class:`ChartCache` keeps per (workspace, run, metric, axis) a
:class:`~trainyard.studio.sketch.Sketch` of the chunks' summaries (1.6 MB for those 10,000,000
points), which answers a chart whose buckets each span many blocks of points, and, only for
charts it cannot answer (fewer points, or chunks without summaries), the decoded
:class:`~trainyard.studio.series.Columns`. Either is extended on every request with what was
logged after the last ``seq`` read (one indexed query that returns nothing when nothing was
logged). Least recently used series are dropped past ``max_bytes``.

*Why by seq*: a metric's chunks are written in ``seq`` order by the one buffer that logs them (a
run's points of one name come from one process), so "after the last seq read" is "what is new".

Example::

    cache = ChartCache()
    cache.series(ctx.store, ctx.workspace_id, "mnist_1", "loss", "step", 1000)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from trainyard._store.base import TrackingStore
from trainyard.studio.series import Axis, Columns, check_points
from trainyard.studio.sketch import Sketch

#: Memory the cached series may hold together (decoded columns: two float64 arrays per metric,
#: ~16 B a point; sketches: ~0.16 B a point).
DEFAULT_MAX_BYTES = 512 * 1024 * 1024

_Key = tuple[str, str, str, str]


class _Series:
    """What the cache holds of one series: its sketch, and its columns once a chart needed them."""

    def __init__(self, axis: Axis) -> None:
        self.sketch = Sketch(axis)
        self.columns: Columns | None = None

    @property
    def nbytes(self) -> int:
        return self.sketch.nbytes + (self.columns.nbytes if self.columns is not None else 0)


class ChartCache:
    """Decoded chart columns shared by the studio's request threads."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._columns: OrderedDict[_Key, _Series] = OrderedDict()
        self._key_locks: dict[_Key, threading.Lock] = {}

    def series(
        self,
        store: TrackingStore,
        workspace_id: str,
        run_id: str,
        name: str,
        axis: Axis,
        points: int,
    ) -> dict[str, Any]:
        """Chart data of ``name`` of ``run_id`` shaped as :meth:`Columns.downsample` gives it:
        from the summaries where they serve ``points`` buckets, else from the points; read from the
        store only as far as the cache lacks."""
        check_points(points)
        key = (workspace_id, run_id, name, axis)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one reader per series; others wait for its result instead of re-reading
            with self._lock:
                columns = self._columns.get(key)
            if columns is None:
                columns = _Series(axis)
            sketch = columns.sketch
            sketch.extend(store.chart_summaries(run_id, name, after_seq=sketch.last_seq))
            if sketch.serves(points):
                result = sketch.downsample(points)
            else:
                if columns.columns is None:
                    columns.columns = Columns(axis)
                full = columns.columns
                full.extend(store.chart_chunks(run_id, name, axis, after_seq=full.last_seq))
                result = full.downsample(points)
            self._keep(key, columns)
        return result

    def cached_keys(self) -> list[_Key]:
        """The (workspace id, run id, metric, axis) of the columns held, least recent first."""
        with self._lock:
            return list(self._columns)

    def _keep(self, key: _Key, columns: _Series) -> None:
        with self._lock:
            self._columns[key] = columns
            self._columns.move_to_end(key)
            total = sum(c.nbytes for c in self._columns.values())
            while total > self.max_bytes and len(self._columns) > 1:
                old_key, old = self._columns.popitem(last=False)
                self._key_locks.pop(old_key, None)
                total -= old.nbytes
            if total > self.max_bytes:  # one series larger than the whole budget: not kept
                self._columns.pop(key, None)
                self._key_locks.pop(key, None)
