"""Parameter expressions: wire forms, validation, v1's sampling formulas and sizes."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainyard.exceptions import HyperDriveConfigException
from trainyard.train.hyperdrive.parameter_expressions import (
    choice,
    expression_size,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    sample_expression,
    uniform,
    validate_expression,
)

N = 4000


@pytest.mark.parametrize(
    ("expr", "wire"),
    [
        (choice(16, 32, 64), ["choice", [[16, 32, 64]]]),
        (choice([0.1, 0.2]), ["choice", [[0.1, 0.2]]]),
        (choice(range(1, 5)), ["choice", [[1, 2, 3, 4]]]),
        (choice("relu"), ["choice", [["relu"]]]),
        (randint(10), ["randint", [10]]),
        (uniform(0.05, 0.1), ["uniform", [0.05, 0.1]]),
        (quniform(32, 512, 32), ["quniform", [32, 512, 32]]),
        (loguniform(-6, -1), ["loguniform", [-6, -1]]),
        (qloguniform(2, 6, 1), ["qloguniform", [2, 6, 1]]),
        (normal(10, 3), ["normal", [10, 3]]),
        (qnormal(100, 10, 5), ["qnormal", [100, 10, 5]]),
        (lognormal(0, 1), ["lognormal", [0, 1]]),
        (qlognormal(3, 1, 2), ["qlognormal", [3, 1, 2]]),
    ],
)
def test_wire_forms_are_v1_and_json_round_trip(expr: list, wire: list) -> None:
    assert expr == wire
    assert json.loads(json.dumps(expr)) == wire
    assert validate_expression(json.loads(json.dumps(expr))) == wire


def test_choice_converts_numpy_scalars_to_plain_python() -> None:
    expr = choice(np.int64(3), np.float64(0.5))
    assert expr == ["choice", [[3, 0.5]]]
    assert [type(v) for v in expr[1][0]] == [int, float]


@pytest.mark.parametrize(
    "build",
    [
        lambda: choice(),
        lambda: choice([]),
        lambda: choice(range(0)),
        lambda: choice([1, 2], 3),
        lambda: choice(range(3), 4),
        lambda: choice(object()),
        lambda: randint(0),
        lambda: randint(2.0),
        lambda: randint(True),
        lambda: uniform(1, 1),
        lambda: uniform(2, 1),
        lambda: uniform("0", 1),
        lambda: uniform(0, float("nan")),
        lambda: uniform(False, 1),
        lambda: quniform(0, 10, 0),
        lambda: quniform(0, 10, -1),
        lambda: quniform(0, 10, 0.5),
        lambda: quniform(10, 0, 1),
        lambda: loguniform(2, 1),
        lambda: qloguniform(0, 1, 1.5),
        lambda: normal(0, -1),
        lambda: qnormal(0, 1, 0),
        lambda: lognormal(0, -0.1),
        lambda: qlognormal(0, 1, 0.1),
        lambda: normal(None, 1),
    ],
)
def test_invalid_arguments_raise_hyperdrive_config_exception(build: Callable[[], object]) -> None:
    with pytest.raises(HyperDriveConfigException) as info:
        build()
    assert "requires" in str(info.value)


def test_v1_edge_cases_that_are_allowed() -> None:
    assert loguniform(1, 1) == ["loguniform", [1, 1]]  # v1: min <= max
    assert normal(0, 0) == ["normal", [0, 0]]  # v1: sigma only non-negative
    assert quniform(0, 10, 2.0) == ["quniform", [0, 10, 2.0]]  # integer-valued float q


@pytest.mark.parametrize(
    "bad",
    [
        "uniform",
        ["uniform"],
        ["uniform", [0]],
        ["nope", [0, 1]],
        ["choice", [1, 2]],
        ["uniform", [1, 0]],
        ["randint", [1, 2]],
    ],
)
def test_validate_expression_rejects_malformed_wire_forms(bad: object) -> None:
    with pytest.raises(HyperDriveConfigException):
        validate_expression(bad)


class _FixedRng:
    """A stand-in for numpy's Generator that returns chosen draws, to pin the formulas."""

    def __init__(self, x: float) -> None:
        self.x = x

    def uniform(self, low: float, high: float) -> float:
        return self.x

    def normal(self, mu: float, sigma: float) -> float:
        return self.x


@pytest.mark.parametrize(
    ("expr", "draw", "expected"),
    [
        (quniform(0, 10, 1), 2.5, 2),  # half to even
        (quniform(0, 10, 1), 3.5, 4),
        (quniform(0, 100, 10), 25.0, 20),
        (quniform(0, 100, 10), 35.0, 40),
        (loguniform(-2, 2), 1.0, math.e),
        (qloguniform(0, 5, 2), math.log(5.0), 4),  # round(5/2)=2 -> 4
        (qloguniform(0, 5, 2), math.log(7.2), 8),  # round(3.6)=4 -> 8
        (normal(0, 1), 0.3, 0.3),
        (qnormal(0, 1, 2), 3.0, 4),  # round(1.5)=2 -> 4
        (qnormal(0, 1, 2), -1.0, 0),  # round(-0.5)=-0 -> 0
        (lognormal(0, 1), 0.0, 1.0),
        (qlognormal(0, 1, 3), math.log(4.8), 6),  # round(1.6)=2 -> 6
    ],
)
def test_formulas_with_fixed_draws(expr: list, draw: float, expected: float) -> None:
    assert sample_expression(expr, _FixedRng(draw)) == pytest.approx(expected)  # type: ignore[arg-type]


def test_quantised_values_are_int_for_int_q_and_float_otherwise() -> None:
    rng = np.random.default_rng(0)
    assert type(sample_expression(quniform(0, 100, 5), rng)) is int
    assert type(sample_expression(qnormal(0, 10, 1), rng)) is int
    assert type(sample_expression(quniform(0, 100, 5.0), rng)) is float
    assert type(sample_expression(uniform(0, 1), rng)) is float
    assert type(sample_expression(randint(5), rng)) is int


def test_uniform_and_randint_and_choice_bounds_with_many_samples() -> None:
    rng = np.random.default_rng(1)
    xs = [sample_expression(uniform(-2, 3), rng) for _ in range(N)]
    assert all(-2 <= x <= 3 for x in xs) and min(xs) < -1.9 and max(xs) > 2.9
    ints = {sample_expression(randint(7), rng) for _ in range(N)}
    assert ints == set(range(7))
    picks = {sample_expression(choice("a", "b", "c"), rng) for _ in range(N)}
    assert picks == {"a", "b", "c"}


def test_loguniform_bounds_are_exponents() -> None:
    rng = np.random.default_rng(2)
    xs = [sample_expression(loguniform(-6, -1), rng) for _ in range(N)]
    assert all(math.exp(-6) <= x <= math.exp(-1) for x in xs)
    assert all(x > 0 for x in xs)  # would be negative if the bounds were taken literally
    logs = [math.log(x) for x in xs]
    assert abs(sum(logs) / N - (-3.5)) < 0.1  # log is uniform on [-6, -1]
    qs = [sample_expression(qloguniform(2, 6, 1), rng) for _ in range(N)]
    assert all(round(math.exp(2)) <= q <= round(math.exp(6)) for q in qs)


def test_normal_family_moments_and_signs() -> None:
    rng = np.random.default_rng(3)
    xs = np.array([sample_expression(normal(10, 3), rng) for _ in range(N)])
    assert abs(xs.mean() - 10) < 0.3 and abs(xs.std() - 3) < 0.3
    assert all(sample_expression(lognormal(0, 2), rng) > 0 for _ in range(500))
    assert all(sample_expression(qnormal(0, 10, 5), rng) % 5 == 0 for _ in range(500))
    assert all(sample_expression(qlognormal(2, 1, 4), rng) % 4 == 0 for _ in range(500))


@settings(max_examples=60, deadline=None)
@given(
    lo=st.integers(-50, 50),
    width=st.integers(1, 60),
    q=st.integers(1, 7),
    seed=st.integers(0, 2**32 - 1),
)
def test_quniform_values_are_multiples_of_q_in_the_rounded_range(
    lo: int, width: int, q: int, seed: int
) -> None:
    expr = quniform(lo, lo + width, q)
    rng = np.random.default_rng(seed)
    values = {sample_expression(expr, rng) for _ in range(200)}
    k_lo, k_hi = round(np.round(lo / q)), round(np.round((lo + width) / q))
    assert all(v % q == 0 and k_lo * q <= v <= k_hi * q for v in values)
    size = expression_size(expr)
    assert size == k_hi - k_lo + 1
    assert len(values) <= size


def test_expression_size() -> None:
    assert expression_size(choice(1, 2, 2, "2")) == 3
    assert expression_size(choice(1, 1.0)) == 2  # distinct JSON values
    assert expression_size(randint(9)) == 9
    assert expression_size(quniform(1, 10, 3)) == 4  # 0, 3, 6, 9
    assert expression_size(qloguniform(0, math.log(10), 1)) == 10  # 1 .. 10
    for expr in (uniform(0, 1), loguniform(0, 1), normal(0, 1), qnormal(0, 1, 1)):
        assert expression_size(expr) is None
    assert expression_size(lognormal(0, 1)) is None
    assert expression_size(qlognormal(0, 1, 1)) is None
