"""JSON for the store's frozen entities, typed both ways.

``encode`` turns entities (frozen dataclasses), lists, tuples, dicts and bytes into JSON values
(bytes as base64 strings — the packed metric arrays travel packed); ``decode(tp, value)`` rebuilds a
value of type ``tp`` from the annotations, so the client gets back exactly the entity classes the
SQL store returns. Floats that JSON cannot carry (NaN, ±inf) are written as the strings Python's
``json`` understands (``allow_nan``), which both ends of this protocol use.

Example::

    data = encode(run_info)                 # a dict of JSON values
    decode(RunInfo, data) == run_info       # True
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from trainyard.exceptions import ValidationError


def encode(value: Any) -> Any:
    """A JSON-serialisable form of ``value``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [encode(v) for v in value]
    raise ValidationError(f"Cannot send a {type(value).__name__} over the store protocol.")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(tp: Any, value: Any) -> Any:
    """``value`` (from :func:`encode`, after JSON) as an instance of type ``tp``."""
    if tp is Any or tp is object:
        return value
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return decode(arg, value)
            except (TypeError, ValueError, ValidationError):
                continue
        raise ValidationError(f"{value!r} matches none of {tp}.")
    if value is None:
        return None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ValidationError(
                f"Expected an object for {tp.__name__}, got {type(value).__name__}."
            )
        hints = _hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        kwargs = {k: decode(hints[k], v) for k, v in value.items() if k in known}
        try:
            return tp(**kwargs)
        except TypeError as err:
            raise ValidationError(f"Bad {tp.__name__}: {err}") from None
    if origin in (list, Sequence):
        (item,) = typing.get_args(tp) or (Any,)
        return [decode(item, v) for v in _seq(value)]
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in _seq(value))
        items = _seq(value)
        if len(items) != len(args):
            raise ValidationError(f"Expected {len(args)} items, got {len(items)}.")
        return tuple(decode(a, v) for a, v in zip(args, items, strict=True))
    if origin in (dict, Mapping):
        key_tp, val_tp = typing.get_args(tp) or (str, Any)
        if not isinstance(value, Mapping):
            raise ValidationError(f"Expected an object, got {type(value).__name__}.")
        return {decode(key_tp, k): decode(val_tp, v) for k, v in value.items()}
    if tp is bytes:
        if not isinstance(value, str):
            raise ValidationError("Expected base64 text for bytes.")
        return base64.b64decode(value.encode("ascii"), validate=True)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"Expected a number, got {value!r}.")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"Expected an integer, got {value!r}.")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValidationError(f"Expected true or false, got {value!r}.")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValidationError(f"Expected a string, got {value!r}.")
        return value
    return value


def _seq(value: Any) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValidationError(f"Expected a list, got {type(value).__name__}.")
    return list(value)
