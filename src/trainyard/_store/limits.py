"""What a run's tags, properties and metric steps may hold: the same on SQLite and PostgreSQL.

The databases differ where nothing checks first: PostgreSQL refuses NUL in text and a key longer
than its ``String(255)`` column, SQLite stores both; a step beyond 64 bits overflows the packed
column. These checks run in the API (before a record is buffered or spooled, so a refusal is never
deferred to a server) and again in the SQL store (any other caller), and raise ``ValidationError``.
Integers in tags and properties are stored as their exact decimal text, beyond 2^53 too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainyard.exceptions import MetricValueError, ValidationError

#: A tag or property key: the width of its column.
MAX_KEY_CHARS = 255
#: A tag or property value (a trainyard bound: the rows stay small enough to list runs quickly).
MAX_VALUE_CHARS = 1 << 20
#: A metric step is a signed 64-bit integer.
MIN_STEP, MAX_STEP = -(1 << 63), (1 << 63) - 1


def _shown(text: str) -> str:
    return repr(text[:40]) + ("…" if len(text) > 40 else "")


def _check_text(kind: str, what: str, text: str, limit: int) -> None:
    if "\x00" in text:
        raise ValidationError(f"{kind} {what} {_shown(text)} must not contain NUL characters.")
    if len(text) > limit:
        raise ValidationError(
            f"{kind} {what} {_shown(text)} is {len(text)} characters long; the limit is {limit}.",
            limit=limit,
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{kind} {what} {_shown(text)} is not valid Unicode.") from None


def check_entries(kind: str, entries: Mapping[str, str]) -> None:
    """Refuse tags or properties (``kind``) that one of the databases could not store as given."""
    for key, value in entries.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValidationError(f"{kind}: keys and values must be strings.")
        _check_text(kind, "key", key, MAX_KEY_CHARS)
        _check_text(kind, f"value of {key!r}:", value, MAX_VALUE_CHARS)


def checked_entries(kind: str, entries: Mapping[Any, Any]) -> dict[str, str]:
    """``entries`` as strings (v1 stringifies keys and values), checked by :func:`check_entries`."""
    out = {str(k): str(v) for k, v in entries.items()}
    check_entries(kind, out)
    return out


def check_step(name: str, step: int) -> None:
    """A metric step must fit a signed 64-bit integer."""
    if not MIN_STEP <= step <= MAX_STEP:
        raise MetricValueError(
            f"Metric {name!r}: step {step} does not fit a 64-bit integer "
            f"({MIN_STEP} … {MAX_STEP}).",
            metric=name,
        )
