"""Metric chunk encoding: packed numeric series, JSON points with NaN/inf, and v1's shape rules."""

from __future__ import annotations

import json
import math
import struct
from array import array
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from trainyard._store.entities import MetricChunk
from trainyard._tracking.codec import (
    decode,
    decode_values,
    json_chunk,
    numeric_chunk,
    shape_metrics,
)


def _num(
    name: str, values: list[Any], steps: list[int] | None = None, t0: float = 100.0
) -> MetricChunk:
    return numeric_chunk(
        name,
        array("d", values),
        array("d", [t0 + i for i in range(len(values))]),
        array("q", steps) if steps is not None else None,
        all(type(v) is int for v in values),
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_numeric_chunk_is_packed_little_endian() -> None:
    chunk = _num("loss", [0.5, 2.0], steps=[3, 7])
    assert (chunk.kind, chunk.dtype, chunk.count, chunk.data) == ("scalar", "f", 2, None)
    assert chunk.values == struct.pack("<2d", 0.5, 2.0)
    assert chunk.timestamps == struct.pack("<2d", 100.0, 101.0)
    assert chunk.steps == struct.pack("<2q", 3, 7)
    assert _num("n", [1.5]).steps is None


def test_int_series_come_back_as_ints() -> None:
    chunk = _num("batch", [128, 256, -1])
    assert chunk.dtype == "i"
    values = [p.value for p in decode([chunk])["batch"][1]]
    assert values == [128, 256, -1] and all(type(v) is int for v in values)


def test_float_series_keep_nan_and_infinities() -> None:
    (kind, points) = decode([_num("x", [math.nan, math.inf, -math.inf, -0.0, 5e-324])])["x"]
    values = [p.value for p in points]
    assert kind == "scalar"
    assert math.isnan(values[0]) and values[1:3] == [math.inf, -math.inf]
    assert math.copysign(1.0, values[3]) == -1.0 and values[4] == 5e-324


def test_steps_default_to_the_index_across_chunks() -> None:
    decoded = decode([_num("a", [1.0, 2.0]), _num("a", [3.0], t0=200.0)])
    assert [(p.step, p.value, p.timestamp) for p in decoded["a"][1]] == [
        (0, 1.0, 100.0),
        (1, 2.0, 101.0),
        (2, 3.0, 200.0),
    ]


def test_explicit_steps_are_kept() -> None:
    points = decode([_num("a", [1.0, 2.0], steps=[10, 5])])["a"][1]
    assert [p.step for p in points] == [10, 5]


def test_json_chunk_wraps_non_finite_floats() -> None:
    chunk = json_chunk(
        "l", "list", [([1.0, math.nan, math.inf, -math.inf, "s", None, True], None, 1.0)]
    )
    assert chunk.dtype == "j" and chunk.values is None and chunk.steps is None
    raw = json.loads(chunk.data or "")  # strict JSON, no NaN tokens
    assert raw[0][1] == {"$float": "nan"}
    assert "NaN" not in (chunk.data or "") and "Infinity" not in (chunk.data or "")
    (value,) = [p.value for p in decode([chunk])["l"][1]]
    assert _same(value, [1.0, math.nan, math.inf, -math.inf, "s", None, True])


def test_json_chunk_steps_only_when_every_point_has_one() -> None:
    all_steps = json_chunk("s", "scalar", [("a", 4, 1.0), ("b", 9, 2.0)])
    assert [p.step for p in decode([all_steps])["s"][1]] == [4, 9]
    some = json_chunk("s", "scalar", [("a", 4, 1.0), ("b", None, 2.0)])
    assert some.steps is None
    assert [p.step for p in decode([some])["s"][1]] == [0, 1]


def test_user_dicts_that_look_like_wrappers_survive() -> None:
    tricky = [{"$float": "1.5"}, {"$dict": {"a": 1}}, {"$float": math.nan}, {"$float": 1, "b": 2}]
    chunk = json_chunk("r", "row", [(v, None, 1.0) for v in tricky])
    back = [p.value for p in decode([chunk])["r"][1]]
    assert _same(back, tricky)


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.lists(json_value, min_size=1, max_size=6))
def test_json_round_trip(values: list[Any]) -> None:
    chunk = json_chunk("m", "scalar", [(v, None, float(i)) for i, v in enumerate(values)])
    back = [p.value for p in decode([chunk])["m"][1]]
    assert _same(back, values)


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50))
def test_numeric_round_trip(values: list[float]) -> None:
    back = [p.value for p in decode([_num("m", values)])["m"][1]]
    assert _same(back, values)


# -- v1's get_metrics shapes ------------------------------------------------------------------


def _shape(*chunks: MetricChunk) -> dict[str, Any]:
    return shape_metrics(decode_values(chunks))


def test_scalar_once_is_bare_and_repeated_is_a_list() -> None:
    assert _shape(_num("once", [0.5]), _num("many", [1.0, 2.0]), _num("many", [3.0])) == {
        "once": 0.5,
        "many": [1.0, 2.0, 3.0],
    }


def test_log_list_is_the_list() -> None:
    assert _shape(json_chunk("l", "list", [([1, 2, 3], None, 1.0)])) == {"l": [1, 2, 3]}


def test_one_row_table_is_a_dict_of_values() -> None:
    assert _shape(json_chunk("t", "row", [({"x": 1, "y": "a"}, None, 1.0)])) == {
        "t": {"x": 1, "y": "a"}
    }


def test_multi_row_table_is_a_dict_of_lists() -> None:
    rows = [({"x": 1, "y": 2}, None, 1.0), ({"x": 3, "y": 4}, None, 2.0)]
    assert _shape(json_chunk("t", "row", rows)) == {"t": {"x": [1, 3], "y": [2, 4]}}


def test_log_table_columns() -> None:
    chunk = json_chunk("t", "table", [({"a": [1, 2], "b": ["x", "y"]}, None, 1.0)])
    assert _shape(chunk) == {"t": {"a": [1, 2], "b": ["x", "y"]}}


def test_mixed_strings_and_booleans() -> None:
    chunk = json_chunk("s", "scalar", [("a", None, 1.0), (False, None, 2.0)])
    assert _shape(chunk, json_chunk("flag", "scalar", [(True, None, 1.0)])) == {
        "s": ["a", False],
        "flag": True,
    }
