"""Chart data of a long metric from its chunks' summaries, without reading the points.

The store keeps, with every numeric chunk, the min, max and last value of each block of
:data:`~trainyard._store.summary.BLOCK` points (:class:`~trainyard._store.entities.ChunkSummary`).
:class:`Sketch` holds those blocks for one metric on one axis and cuts them into buckets as
:meth:`Columns.downsample <trainyard.studio.series.Columns.downsample>` cuts points: equal counts
in logged order, except that each bucket edge moves to the nearest block edge (at most half a
block). A bucket's min, max, last value and x are then exact for the points it holds, so the
min/max envelope is the points' own. It serves a chart only where a bucket spans at least
:data:`MIN_BLOCKS` blocks (the edges move by at most 1/8 of a bucket) and every chunk has a
summary; otherwise the chart reads the points (:class:`~trainyard.studio.series.Columns`).

Example::

    sketch = Sketch("step")
    sketch.extend(store.chart_summaries(run_id, "loss"))
    if sketch.serves(1000):
        data = sketch.downsample(1000)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainyard._store.entities import ChunkSummary
from trainyard._store.summary import BLOCK, FIELDS, block_count
from trainyard.studio.series import Axis, check_points, json_floats, np_module

#: Fewest blocks a bucket must span for the summaries to serve a chart.
MIN_BLOCKS = 4
_MIN, _MAX, _LAST, _STEP, _TIME = range(FIELDS)


class Sketch:
    """The summary blocks of one metric's chunks on one axis, extended chunk by chunk."""

    def __init__(self, axis: Axis) -> None:
        np = np_module()
        self.axis: Axis = axis
        #: Points summarised (numeric points only, as :class:`Columns` counts them).
        self.count = 0
        #: The highest chunk ``seq`` read so far.
        self.last_seq = 0
        #: ``False`` once a chunk without a summary was seen: the chart reads points instead.
        self.complete = True
        # Per block: min, max, last value, x of the last point, points after the block.
        self._cols = np.empty((0, 5), "<f8")
        self._results: dict[int, dict[str, Any]] = {}

    def extend(self, summaries: Sequence[ChunkSummary]) -> None:
        """Add ``summaries`` (in ``seq`` order); those already read are skipped."""
        np = np_module()
        fresh = [c for c in summaries if c.seq > self.last_seq]
        if not fresh:
            return
        self.last_seq = max(c.seq for c in fresh)
        parts = []
        pos = self.count
        for c in fresh:
            n = block_count(c.count)
            raw = c.blocks
            if raw is None or len(raw) != n * FIELDS * 8:
                self.complete = False
                pos += c.count
                continue
            blocks = np.frombuffer(raw, "<f8").reshape(n, FIELDS)
            ends = np.minimum(np.arange(1, n + 1) * BLOCK, c.count) + pos
            if self.axis == "time":
                xs = blocks[:, _TIME]
            elif c.first_step is not None:
                xs = blocks[:, _STEP]
            else:  # no steps logged: the index, as get_metrics numbers them
                xs = (ends - 1).astype("<f8")
            parts.append(
                np.column_stack([blocks[:, _MIN], blocks[:, _MAX], blocks[:, _LAST], xs, ends])
            )
            pos += c.count
        self.count = pos
        if parts:
            self._cols = np.concatenate([self._cols, *parts])
        self._results.clear()

    @property
    def nbytes(self) -> int:
        """Memory held by the blocks."""
        return int(self._cols.nbytes)

    def serves(self, points: int) -> bool:
        """Whether the summaries answer a chart of ``points`` buckets (see the module)."""
        return self.complete and self.count >= points * MIN_BLOCKS * BLOCK

    def downsample(self, points: int) -> dict[str, Any]:
        """At most ``points`` buckets, shaped as :meth:`Columns.downsample`'s:
        ``{"count", "downsampled", "x", "y", "min", "max"}``. Only where :meth:`serves`."""
        check_points(points)
        if not self.serves(points):
            raise ValueError(f"the summaries cannot serve {points} buckets of {self.count} points")
        found = self._results.get(points)
        if found is None:
            found = self._results[points] = self._downsample(points)
        return found

    def _downsample(self, points: int) -> dict[str, Any]:
        np = np_module()
        cols = self._cols
        ends = cols[:, 4]
        edges = np.concatenate([[0.0], ends])  # point index at each block edge
        wanted = np.linspace(0, self.count, points + 1)
        at = np.clip(np.searchsorted(edges, wanted), 1, len(edges) - 1)
        nearer_left = wanted - edges[at - 1] <= edges[at] - wanted
        cut = np.unique(np.where(nearer_left, at - 1, at))  # block index of each bucket edge
        cut[0], cut[-1] = 0, len(cols)
        cut = np.unique(cut)
        starts, lasts = cut[:-1], cut[1:] - 1
        with np.errstate(invalid="ignore"):
            low = np.fmin.reduceat(cols[:, 0], starts)
            high = np.fmax.reduceat(cols[:, 1], starts)
        return {
            "count": self.count,
            "downsampled": True,
            "x": json_floats(cols[lasts, 3]),
            "y": json_floats(cols[lasts, 2]),
            "min": json_floats(low),
            "max": json_floats(high),
        }
