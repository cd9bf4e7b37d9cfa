"""Cursor pagination of list answers on the wire, shared by the server and the REST client.

A list operation's answer is cut into pages of at most ``page_size`` items (default
:data:`DEFAULT_PAGE`, at most :data:`MAX_PAGE`) and :data:`MAX_PAGE_BYTES` of JSON, whichever
comes first (a page holds at least one item); the answer names the next page with an opaque
``next_page_cursor`` (``null`` on the last page). The REST client follows the cursors, so a
``TrackingStore`` caller still gets the whole list, while no single response grows with the
workspace. ``list_runs`` pages itself (its cursor is part of the store seam).

Example::

    items, cursor = cut(encoded_items, body.get(PAGE_CURSOR), body.get(PAGE_SIZE))
    everything = follow(lambda cursor: fetch_page(cursor))
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

from trainyard.exceptions import ValidationError

#: Reserved keys of a list call's JSON body (never store arguments).
PAGE_CURSOR = "page_cursor"
PAGE_SIZE = "page_size"
#: The answer's key naming the next page.
NEXT = "next_page_cursor"
DEFAULT_PAGE = 500
MAX_PAGE = 1000
MAX_PAGE_BYTES = 8 * 1024 * 1024


def _offset(cursor: object) -> int:
    if cursor is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(str(cursor).encode("ascii") + b"==")
        offset = json.loads(raw)["o"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(offset)
        return offset
    except (ValueError, KeyError, TypeError, UnicodeError) as err:
        raise ValidationError(
            f"Invalid page cursor {str(cursor)[:40]!r}: pass back the next_page_cursor of the "
            "previous page unchanged, or none for the first page."
        ) from err


def _cursor(offset: int) -> str:
    raw = json.dumps({"o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def page_size(value: object) -> int:
    """The page size asked for, checked (``ValidationError`` for a bad one)."""
    if value is None:
        return DEFAULT_PAGE
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise ValidationError(f"page_size must be an integer from 1 to {MAX_PAGE}, not {value!r}.")
    return value


def cut(items: Sequence[Any], cursor: object, size: object) -> tuple[list[Any], str | None]:
    """One page of already-encoded ``items`` from ``cursor``, and the next page's cursor."""
    start, limit = _offset(cursor), page_size(size)
    out: list[Any] = []
    used = 0
    i = start
    while i < len(items) and len(out) < limit:
        cost = len(json.dumps(items[i], separators=(",", ":")))
        if out and used + cost > MAX_PAGE_BYTES:
            break
        out.append(items[i])
        used += cost
        i += 1
    return out, (_cursor(i) if i < len(items) else None)


def follow(fetch: Callable[[str | None], tuple[list[Any], str | None]]) -> list[Any]:
    """Every item of a paged answer: ``fetch(cursor)`` returns one page and the next cursor."""
    items: list[Any] = []
    cursor: str | None = None
    while True:
        page, cursor = fetch(cursor)
        items.extend(page)
        if cursor is None:
            return items
