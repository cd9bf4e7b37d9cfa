"""Encode buffered metric points into :class:`MetricChunk` rows and decode them back.

Numeric series are packed little-endian (float64 values and timestamps, int64 steps): a chunk of
100,000 points is three blobs in one row, which is why persisting is cheap. NaN and ±inf survive
the round trip on every database because they never pass through a SQL float column.
"""

from __future__ import annotations

import json
import math
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

from trainyard._store.entities import MetricChunk, MetricPoint

_BIG = sys.byteorder == "big"


def _pack(a: array[Any]) -> bytes:
    if _BIG:  # pragma: no cover - storage is little-endian everywhere
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _unpack(typecode: str, raw: bytes) -> array[Any]:
    a = array(typecode)
    a.frombytes(raw)
    if _BIG:  # pragma: no cover
        a.byteswap()
    return a


def numeric_chunk(
    name: str,
    vals: array[float],
    ts: array[float],
    steps: array[int] | None,
    all_ints: bool,
    description: str | None = None,
) -> MetricChunk:
    """A chunk for a numeric scalar series."""
    return MetricChunk(
        name=name,
        kind="scalar",
        dtype="i" if all_ints else "f",
        count=len(vals),
        timestamps=_pack(ts),
        values=_pack(vals),
        steps=_pack(steps) if steps is not None else None,
        description=description,
    )


_ESCAPES = ("$float", "$dict")


def _json_safe(value: Any) -> Any:
    """JSON cannot hold NaN/inf portably: wrap them so they come back as floats.

    A user dict that looks like a wrapper (one key, ``$float`` or ``$dict``) is itself wrapped in
    ``{"$dict": …}`` so it comes back unchanged.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        out = {k: _json_safe(v) for k, v in value.items()}
        if len(value) == 1 and next(iter(value)) in _ESCAPES:
            return {"$dict": out}
        return out
    return value


def _json_restore(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$float" in value:
            return float(value["$float"])
        if len(value) == 1 and isinstance(value.get("$dict"), dict):
            return {k: _json_restore(v) for k, v in value["$dict"].items()}
        return {k: _json_restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_restore(v) for v in value]
    return value


def json_chunk(
    name: str,
    kind: str,
    points: Sequence[tuple[Any, int | None, float]],
    description: str | None = None,
) -> MetricChunk:
    """A chunk for JSON-valued points (strings, booleans, lists, rows, tables, images …)."""
    ts = array("d", (p[2] for p in points))
    steps = [p[1] for p in points]
    has_steps = all(st is not None for st in steps)
    return MetricChunk(
        name=name,
        kind=kind,
        dtype="j",
        count=len(points),
        timestamps=_pack(ts),
        steps=_pack(array("q", [int(st) for st in steps if st is not None])) if has_steps else None,
        data=json.dumps([_json_safe(p[0]) for p in points], separators=(",", ":")),
        description=description,
    )


def decode(chunks: Iterable[MetricChunk]) -> dict[str, tuple[str, list[MetricPoint]]]:
    """name → (kind, points in logged order). Points without explicit steps get their index."""
    out: dict[str, tuple[str, list[MetricPoint]]] = {}
    for c in chunks:
        _, pts = out.setdefault(c.name, (c.kind, []))
        ts = _unpack("d", c.timestamps)
        steps = _unpack("q", c.steps) if c.steps is not None else None
        if c.dtype == "j":
            values: list[Any] = [_json_restore(v) for v in json.loads(c.data or "[]")]
        else:
            raw = _unpack("d", c.values or b"")
            values = [int(v) for v in raw] if c.dtype == "i" else list(raw)
        base = len(pts)
        for i, v in enumerate(values):
            step = int(steps[i]) if steps is not None else base + i
            pts.append(MetricPoint(step=step, timestamp=ts[i], value=v))
    return out


def decode_values(chunks: Iterable[MetricChunk]) -> dict[str, tuple[str, list[Any]]]:
    """name → (kind, values in logged order): :func:`decode` without steps and timestamps (fast)."""
    out: dict[str, tuple[str, list[Any]]] = {}
    for c in chunks:
        _, values = out.setdefault(c.name, (c.kind, []))
        if c.dtype == "j":
            values.extend(_json_restore(v) for v in json.loads(c.data or "[]"))
        else:
            raw = _unpack("d", c.values or b"")
            values.extend(int(v) for v in raw) if c.dtype == "i" else values.extend(raw.tolist())
    return out


def shape_metrics(decoded: dict[str, tuple[str, list[Any]]]) -> dict[str, Any]:
    """Apply v1's ``get_metrics`` shape rules to :func:`decode_values` output.

    A scalar logged once is the bare value, logged N times a list in logged order; ``log_list`` is
    the list; a one-row table is ``{col: value}``, a multi-row table ``{col: [values]}``.
    """
    out: dict[str, Any] = {}
    for name, (kind, values) in decoded.items():
        if kind == "row":
            cols: dict[str, list[Any]] = {}
            for row in values:
                for k, v in row.items():
                    cols.setdefault(k, []).append(v)
            out[name] = {k: (v[0] if len(values) == 1 else v) for k, v in cols.items()}
        elif kind == "table":
            merged: dict[str, list[Any]] = {}
            for table in values:
                for k, v in table.items():
                    merged.setdefault(k, []).extend(v if isinstance(v, list) else [v])
            out[name] = merged
        else:
            out[name] = values[0] if len(values) == 1 else values
    return out
