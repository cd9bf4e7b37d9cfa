"""What every store's ``search_runs`` shares: argument checks, the portable sort, last values.

The SQL store sorts and pages in the database; :meth:`TrackingStore.search_runs`'s default (used by
stores without such a query) filters and sorts here, with the same order, so both pass the same
conformance tests.

Example::

    check_search("tag:lr", 0, 50)
    filter_and_sort(runs, "mnist", None, "duration", True)

Tags and properties are text; a sort on one puts the values that read as numbers
(:data:`NUMBER_PATTERN`) first, in numeric order, then the others as text — so ``lr`` sorts
``0.01, 0.2, 0.3``, never ``0.01, 0.2, 10, 2``. ``metric:<name>`` sorts on each run's last logged
value of a numeric metric.
"""

from __future__ import annotations

import math
import re
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

from trainyard._store.entities import MetricChunk, RunInfo
from trainyard.exceptions import ValidationError

#: Most rows one ``search_runs`` page may hold.
MAX_PAGE = 1000
#: A tag or property value that sorts as a number (decimal, optional sign and exponent).
NUMBER_PATTERN = r"^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$"
_NUMBER = re.compile(NUMBER_PATTERN)


def as_number(text: str) -> float | None:
    """``text`` as a float if it matches :data:`NUMBER_PATTERN`, else ``None``."""
    return float(text) if _NUMBER.match(text) else None


def check_search(order_by: str, offset: int, limit: int) -> None:
    """``ValidationError`` unless the sort field, offset and limit are usable."""
    from trainyard._store.base import RUN_SORT_FIELDS

    key, _, rest = order_by.partition(":")
    if not (order_by in RUN_SORT_FIELDS or (key in ("tag", "property", "metric") and rest)):
        raise ValidationError(
            f"Cannot sort runs on {order_by!r}: use one of {', '.join(RUN_SORT_FIELDS)}, "
            "'tag:<key>', 'property:<key>' or 'metric:<name>'.",
            order_by=order_by,
        )
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise ValidationError(
            f"offset must be 0 or more and limit between 1 and {MAX_PAGE} "
            f"(got offset={offset}, limit={limit}).",
        )


def duration(run: RunInfo, now: float) -> float | None:
    """Seconds the run has been running (until now if it still is); ``None`` before it started."""
    if run.start_time is None:
        return None
    return (run.end_time if run.end_time is not None else now) - run.start_time


def sort_value(
    run: RunInfo, order_by: str, now: float, metrics: Mapping[str, Mapping[str, Any]] | None = None
) -> Any:
    """The value a run sorts by (``None``: sorts last); ``metrics`` (run id → name → last value)
    serves ``metric:<name>``. Tags and properties give ``(0, number)`` or ``(1, text)``."""
    if order_by.startswith("metric:"):
        value = (metrics or {}).get(run.run_id, {}).get(order_by[7:])
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        return None
    if order_by.startswith(("tag:", "property:")):
        text = (run.tags if order_by.startswith("tag:") else run.properties).get(
            order_by.partition(":")[2]
        )
        if text is None:
            return None
        number = as_number(text)
        return (0, number, "") if number is not None else (1, 0.0, text)
    if order_by == "duration":
        return duration(run, now)
    return getattr(run, order_by)


def filter_and_sort(
    runs: Sequence[RunInfo],
    text: str | None,
    submitted_by: str | None,
    order_by: str,
    descending: bool,
    metrics: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[RunInfo]:
    """``runs`` filtered by text and user, sorted as the SQL store sorts (missing values last,
    numbers before text, ties newest first); ``metrics`` as for :func:`sort_value`."""
    now = time.time()
    needle = (text or "").lower()
    kept = [
        r
        for r in runs
        if (not needle or needle in r.run_id.lower() or needle in (r.display_name or "").lower())
        and (submitted_by is None or r.submitted_by == submitted_by)
    ]
    # Newest first as the tie-break, then a stable sort on the key (missing values last).
    kept.sort(key=lambda r: r.created_at, reverse=True)
    keys = {r.run_id: sort_value(r, order_by, now, metrics) for r in kept}
    present = [r for r in kept if keys[r.run_id] is not None]
    missing = [r for r in kept if keys[r.run_id] is None]
    if order_by.startswith(("tag:", "property:")):  # numbers first, in either direction
        groups = [[r for r in present if keys[r.run_id][0] == g] for g in (0, 1)]
        for group in groups:
            group.sort(key=lambda r: keys[r.run_id][1:], reverse=descending)
        return groups[0] + groups[1] + missing
    present.sort(key=lambda r: keys[r.run_id], reverse=descending)
    return present + missing


def last_value(chunk: MetricChunk) -> float | int | None:
    """The last point of a numeric scalar chunk (``None`` for other kinds or an empty chunk)."""
    if chunk.kind != "scalar" or chunk.dtype == "j" or not chunk.values or chunk.count < 1:
        return None
    (value,) = struct.unpack_from("<d", chunk.values, len(chunk.values) - 8)
    return int(value) if chunk.dtype == "i" else float(value)
