"""Chart data from packed metric chunks, downsampled on the server to the pixels asked for.

A metric of 10,000,000 points is drawn on a chart 1,000 pixels wide: the browser needs one bucket
per pixel, not the points. :func:`downsample` cuts the series (in logged order) into ``points``
buckets of equal count and keeps, per bucket, the x and value of its last point and its minimum
and maximum — a line through the last values with a min/max band keeps every spike visible.
Numbers are read straight from the chunks' little-endian blobs with NumPy (no per-point Python).
Values JSON cannot hold (NaN, ±inf) go out as ``null``.

Example::

    data = downsample(store.get_metric_chunks(run_id, ["loss"]), "step", 800)
    data["x"], data["y"], data["min"], data["max"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from trainyard._store.entities import MetricChunk
from trainyard.exceptions import MissingExtraError, ValidationError

Axis = Literal["step", "time"]
#: Bounds of the bucket count a client may ask for.
MIN_POINTS, MAX_POINTS = 2, 10_000


def np_module() -> Any:
    """NumPy, or ``MissingExtraError`` naming the extra that brings it."""
    try:
        import numpy
    except ImportError:
        raise MissingExtraError.for_extra("server", "the studio's charts", "numpy") from None
    return numpy


def preload() -> None:
    """Import NumPy ahead of the first chart (about 0.1–0.2 s that a cold chart would otherwise
    wait for); nothing happens without it. The studio's routes call it in a thread at start."""
    try:
        np_module()
    except MissingExtraError:
        pass


def check_points(points: int) -> int:
    """``points`` if it is a usable bucket count, else ``ValidationError``."""
    if not MIN_POINTS <= points <= MAX_POINTS:
        raise ValidationError(
            f"points must be between {MIN_POINTS} and {MAX_POINTS} (the chart's width in pixels); "
            f"got {points}.",
            points=points,
        )
    return points


def json_floats(a: Any) -> list[float | None]:
    """A float array as a JSON-ready list: NaN and ±inf as ``None``."""
    np = np_module()
    out: list[float | None] = np.where(np.isfinite(a), a, np.nan).tolist()
    return [None if v != v else v for v in out]  # NaN → null


class Columns:
    """One metric's numeric points decoded for charts on one axis, extended chunk by chunk.

    Values and x live in two growable float64 arrays (capacity doubles), so a live chart adds only
    its new chunks; :meth:`downsample` results are kept per bucket count until the next
    :meth:`extend` that adds points.
    """

    def __init__(self, axis: Axis) -> None:
        np = np_module()
        self.axis: Axis = axis
        self.count = 0
        #: The highest chunk ``seq`` read so far (``chart_chunks(after_seq=…)`` asks for the rest).
        self.last_seq = 0
        self._values = np.empty(0, "<f8")
        self._xs = np.empty(0, "<f8")
        self._results: dict[int, dict[str, Any]] = {}

    def _reserve(self, extra: int) -> None:
        np = np_module()
        need = self.count + extra
        if need <= len(self._values):
            return
        capacity = max(need, 2 * len(self._values), 1024)
        for attr in ("_values", "_xs"):
            grown = np.empty(capacity, "<f8")
            grown[: self.count] = getattr(self, attr)[: self.count]
            setattr(self, attr, grown)

    def extend(self, chunks: Sequence[MetricChunk]) -> None:
        """Add ``chunks`` (in ``seq`` order); chunks already read, and non-numeric ones, are
        skipped."""
        np = np_module()
        fresh = [c for c in chunks if c.seq == 0 or c.seq > self.last_seq]
        numeric = [c for c in fresh if c.kind == "scalar" and c.dtype != "j" and c.count]
        self.last_seq = max([self.last_seq, *(c.seq for c in fresh)])
        if not numeric:
            return
        self._reserve(sum(c.count for c in numeric))
        pos = self.count
        for c in numeric:
            end = pos + c.count
            self._values[pos:end] = np.frombuffer(c.values or b"", "<f8")
            if self.axis == "time":
                self._xs[pos:end] = np.frombuffer(c.timestamps, "<f8")
            elif c.steps is not None:
                self._xs[pos:end] = np.frombuffer(c.steps, "<i8")  # cast while copying
            else:  # no steps logged: the index, as get_metrics numbers them
                self._xs[pos:end] = np.arange(pos, end, dtype="<f8")
            pos = end
        self.count = pos
        self._results.clear()

    @property
    def nbytes(self) -> int:
        """Memory held by the decoded arrays."""
        return int(self._values.nbytes + self._xs.nbytes)

    def downsample(self, points: int) -> dict[str, Any]:
        """At most ``points`` buckets: ``{"count", "downsampled", "x", "y", "min", "max"}``."""
        check_points(points)
        found = self._results.get(points)
        if found is None:
            found = self._results[points] = self._downsample(points)
        return found

    def _downsample(self, points: int) -> dict[str, Any]:
        np = np_module()
        n = self.count
        values, xs = self._values[:n], self._xs[:n]
        if n == 0:
            return {"count": 0, "downsampled": False, "x": [], "y": [], "min": [], "max": []}
        if n <= points:
            y = json_floats(values)
            return {
                "count": n,
                "downsampled": False,
                "x": json_floats(xs),
                "y": y,
                "min": y,
                "max": y,
            }
        edges = np.linspace(0, n, points + 1).astype(np.int64)
        starts, ends = edges[:-1], edges[1:] - 1
        return {
            "count": n,
            "downsampled": True,
            "x": json_floats(xs[ends]),
            "y": json_floats(values[ends]),
            "min": json_floats(np.fmin.reduceat(values, starts)),
            "max": json_floats(np.fmax.reduceat(values, starts)),
        }


def downsample(chunks: Sequence[MetricChunk], axis: Axis, points: int) -> dict[str, Any]:
    """The numeric scalar points of ``chunks`` (one metric) as at most ``points`` buckets.

    Returns ``{"count", "downsampled", "x", "y", "min", "max"}``; ``x`` is the step (points logged
    without a step get their index, as ``get_metrics`` numbers them) or the time in seconds since
    the epoch.
    """
    check_points(points)
    columns = Columns(axis)
    columns.extend(chunks)
    return columns.downsample(points)


def _finite(value: Any) -> Any:
    if (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def json_points(chunks: Sequence[MetricChunk], limit: int = 200) -> list[dict[str, Any]]:
    """The last ``limit`` points of a non-numeric metric (tables, rows, images, strings) as
    ``{"value", "step", "at"}``, oldest first (non-finite numbers as ``null``)."""
    from trainyard._tracking.codec import decode

    out: list[dict[str, Any]] = []
    for _, points in decode(chunks).values():
        out.extend(
            {"value": _finite(p.value), "step": p.step, "at": p.timestamp} for p in points[-limit:]
        )
    return out[-limit:]


def bucket_lists(xs: Sequence[float], ys: Sequence[float], points: int) -> dict[str, Any]:
    """Plain ``xs``/``ys`` lists (ordered by x) as at most ``points`` buckets, the same shape as
    :func:`downsample` (last value per bucket, with its min and max)."""
    check_points(points)
    n = len(ys)
    if n <= points:
        y = [_finite(v) for v in ys]
        return {"count": n, "downsampled": False, "x": list(xs), "y": y, "min": y, "max": y}
    out: dict[str, Any] = {"count": n, "downsampled": True, "x": [], "y": [], "min": [], "max": []}
    for b in range(points):
        lo, hi = b * n // points, (b + 1) * n // points
        if hi <= lo:
            continue
        part = ys[lo:hi]
        out["x"].append(xs[hi - 1])
        out["y"].append(_finite(part[-1]))
        out["min"].append(_finite(min(part)))
        out["max"].append(_finite(max(part)))
    return out
