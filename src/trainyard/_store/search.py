"""What every store's ``search_runs`` shares: argument checks, the portable sort, last values.

The SQL store sorts and pages in the database; :meth:`TrackingStore.search_runs`'s default (used by
stores without such a query) filters and sorts here, with the same order, so both pass the same
conformance tests.

Example::

    check_search("tag:lr", 0, 50)
    filter_and_sort(runs, "mnist", None, "duration", True)
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from typing import Any

from trainyard._store.entities import MetricChunk, RunInfo
from trainyard.exceptions import ValidationError

#: Most rows one ``search_runs`` page may hold.
MAX_PAGE = 1000


def check_search(order_by: str, offset: int, limit: int) -> None:
    """``ValidationError`` unless the sort field, offset and limit are usable."""
    from trainyard._store.base import RUN_SORT_FIELDS

    key, _, rest = order_by.partition(":")
    if not (order_by in RUN_SORT_FIELDS or (key in ("tag", "property") and rest)):
        raise ValidationError(
            f"Cannot sort runs on {order_by!r}: use one of {', '.join(RUN_SORT_FIELDS)}, "
            "'tag:<key>' or 'property:<key>'.",
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


def sort_value(run: RunInfo, order_by: str, now: float) -> Any:
    """The value a run sorts by (``None``: sorts last)."""
    if order_by == "duration":
        return duration(run, now)
    if order_by.startswith("tag:"):
        return run.tags.get(order_by[4:])
    if order_by.startswith("property:"):
        return run.properties.get(order_by[9:])
    return getattr(run, order_by)


def filter_and_sort(
    runs: Sequence[RunInfo],
    text: str | None,
    submitted_by: str | None,
    order_by: str,
    descending: bool,
) -> list[RunInfo]:
    """``runs`` filtered by text and user, sorted as the SQL store sorts (missing values last,
    ties newest first)."""
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
    present = [r for r in kept if sort_value(r, order_by, now) is not None]
    missing = [r for r in kept if sort_value(r, order_by, now) is None]
    present.sort(key=lambda r: sort_value(r, order_by, now), reverse=descending)
    return present + missing


def last_value(chunk: MetricChunk) -> float | int | None:
    """The last point of a numeric scalar chunk (``None`` for other kinds or an empty chunk)."""
    if chunk.kind != "scalar" or chunk.dtype == "j" or not chunk.values or chunk.count < 1:
        return None
    (value,) = struct.unpack_from("<d", chunk.values, len(chunk.values) - 8)
    return int(value) if chunk.dtype == "i" else float(value)
