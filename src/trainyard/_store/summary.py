"""Per-chunk summaries of numeric metric chunks: what a chart of many points needs without the
points.

A chunk's points are cut, in logged order, into blocks of :data:`BLOCK` points (the last block of
a chunk may be shorter). For each block the summary keeps its minimum and maximum value (NaN
ignored, as ``numpy.fmin``/``fmax`` do; NaN when every value is NaN), its last value, and the step
and time of its last point: five little-endian float64 per block (the step is NaN when the chunk
was logged without steps). A 100,000-point chunk (2.4 MB of blobs) summarises into 391 blocks
(15.6 kB), so a chart of 10,000,000 points reads 1.6 MB instead of 160 MB.

Chunks of more than :data:`NUMPY_FROM` points are summarised with NumPy where it is installed (a few
ns a point), others in pure Python (the store does not need NumPy; ~0.1 µs a point); both give
the same numbers. Changing :data:`BLOCK` changes the meaning of stored summaries and needs a
migration that recomputes them.

Example::

    row = summarize(chunk)      # None for a chunk that is not a numeric scalar
    row["blocks"], row["first_step"], row["last_time"]
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from typing import Any

from trainyard._store.entities import MetricChunk

#: Points per block of a summary.
BLOCK = 256
#: Float64 fields per block: min, max, last value, last step, last time.
FIELDS = 5
#: Chunks with more points than this are summarised with NumPy when it can be imported.
NUMPY_FROM = 4 * BLOCK
_NAN = float("nan")


def _floats(typecode: str, raw: bytes) -> array[Any]:
    a = array(typecode)
    a.frombytes(raw)
    if sys.byteorder == "big":  # pragma: no cover - storage is little-endian everywhere
        a.byteswap()
    return a


def is_numeric(chunk: MetricChunk) -> bool:
    """Whether ``chunk`` holds numbers a chart draws (a scalar series, not JSON, not empty)."""
    return chunk.kind == "scalar" and chunk.dtype != "j" and chunk.count > 0 and bool(chunk.values)


def _extremes(part: array[Any]) -> tuple[float, float]:
    total = sum(part)
    if total == total:  # no NaN (NaN, or +inf with -inf, make the sum NaN)
        return float(min(part)), float(max(part))
    clean = [v for v in part if v == v]
    return (float(min(clean)), float(max(clean))) if clean else (_NAN, _NAN)


def summarize(chunk: MetricChunk) -> dict[str, Any] | None:
    """The summary of a numeric chunk (``count``, ``first_step``, ``last_step``, ``first_time``,
    ``last_time``, ``blocks``), or ``None`` for any other chunk."""
    if not is_numeric(chunk):
        return None
    n = min(len(chunk.values or b""), len(chunk.timestamps)) // 8
    n = min(n, chunk.count)
    if n == 0 or (chunk.steps is not None and len(chunk.steps) // 8 < n):
        return None
    first_step, last_step = None, None
    if chunk.steps is not None:
        first_step, last_step = struct.unpack_from("<q", chunk.steps)[0], last_step_of(chunk, n)
    blob = _blocks_numpy(chunk, n) if n > NUMPY_FROM else None
    if blob is None:
        blob = _blocks_python(chunk, n)
    return {
        "count": n,
        "first_step": first_step,
        "last_step": last_step,
        "first_time": struct.unpack_from("<d", chunk.timestamps)[0],
        "last_time": struct.unpack_from("<d", chunk.timestamps, 8 * (n - 1))[0],
        "blocks": blob,
    }


def _blocks_python(chunk: MetricChunk, n: int) -> bytes:
    values = _floats("d", chunk.values or b"")
    times = _floats("d", chunk.timestamps)
    steps = _floats("q", chunk.steps) if chunk.steps is not None else None
    out = array("d")
    for lo in range(0, n, BLOCK):
        hi = min(lo + BLOCK, n)
        low, high = _extremes(values[lo:hi])
        step = float(steps[hi - 1]) if steps is not None else _NAN
        out.extend((low, high, values[hi - 1], step, times[hi - 1]))
    if sys.byteorder == "big":  # pragma: no cover
        out.byteswap()
    return out.tobytes()


def _blocks_numpy(chunk: MetricChunk, n: int) -> bytes | None:
    """The summary blob computed with NumPy, or ``None`` where NumPy is not installed."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - the dev environment has NumPy
        return None
    values = np.frombuffer(chunk.values or b"", "<f8", n)
    starts = np.arange(0, n, BLOCK)
    ends = np.minimum(starts + BLOCK, n) - 1
    out = np.empty((len(starts), FIELDS), "<f8")
    with np.errstate(invalid="ignore"):
        out[:, 0] = np.fmin.reduceat(values, starts)
        out[:, 1] = np.fmax.reduceat(values, starts)
    out[:, 2] = values[ends]
    if chunk.steps is not None:
        out[:, 3] = np.frombuffer(chunk.steps, "<i8", n)[ends]
    else:
        out[:, 3] = np.nan
    out[:, 4] = np.frombuffer(chunk.timestamps, "<f8", n)[ends]
    return bytes(out.tobytes())


def block_count(count: int) -> int:
    """Blocks in the summary of a chunk of ``count`` points."""
    return -(-count // BLOCK)


def last_number(chunk: MetricChunk) -> float | None:
    """The last value of a numeric chunk as stored (NaN and ±inf included), else ``None``."""
    if not is_numeric(chunk) or len(chunk.values or b"") < 8:
        return None
    (value,) = struct.unpack_from("<d", chunk.values or b"", len(chunk.values or b"") - 8)
    return float(value)


def last_step_of(chunk: MetricChunk, n: int | None = None) -> int | None:
    """The step of a chunk's last point, or of its ``n``-th (``None`` when it was logged without
    steps)."""
    raw = chunk.steps
    if raw is None or len(raw) < 8:
        return None
    at = len(raw) - 8 if n is None else 8 * (n - 1)
    return int(struct.unpack_from("<q", raw, at)[0])


def finite_or_none(value: float | None) -> float | None:
    """``value`` if it is a finite number, else ``None`` (what a sort treats as missing)."""
    return value if value is not None and math.isfinite(value) else None
