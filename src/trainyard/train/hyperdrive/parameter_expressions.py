"""Parameter expressions: the distributions a HyperDrive parameter space is built from (v1 names).

Each function validates its arguments and returns v1's JSON-able wire form ``[name, [args]]``; a
parameter space is a ``dict`` from a script argument (``"--lr"``) to one of these expressions::

    from trainyard.train.hyperdrive.parameter_expressions import choice, loguniform
    space = {"--batchsize": choice(64, 128, 256), "--lr": loguniform(-6, -1)}
    space["--lr"]            # ['loguniform', [-6, -1]]  (bounds are exponents: e^-6 .. e^-1)

:func:`sample_expression` draws one value with v1's formulas (``round`` is numpy's half-to-even) and
:func:`expression_size` gives the number of distinct values of a bounded discrete expression.

Trainyard decisions (beyond v1): ``bool`` and non-finite numbers are rejected as numeric arguments,
``q`` must also be positive, choice options must be JSON-serialisable, and the quantised expressions
return an ``int`` when ``q`` is an ``int`` (the value is then an exact integer, so ``str()`` gives
``"64"`` rather than ``"64.0"`` on the child's command line); otherwise a ``float``.

numpy is imported lazily (only :func:`sample_expression` and :func:`expression_size` need it).
"""

from __future__ import annotations

import json
import math
import numbers
from typing import TYPE_CHECKING, Any

from trainyard.exceptions import HyperDriveConfigException, MissingExtraError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "EXPRESSION_NAMES",
    "choice",
    "expression_size",
    "lognormal",
    "loguniform",
    "normal",
    "qlognormal",
    "qloguniform",
    "qnormal",
    "quniform",
    "randint",
    "sample_expression",
    "uniform",
    "validate_expression",
]

EXPRESSION_NAMES = (
    "choice",
    "randint",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "normal",
    "qnormal",
    "lognormal",
    "qlognormal",
)


def _fail(func: str, condition: str) -> HyperDriveConfigException:
    return HyperDriveConfigException(f"{func}() requires {condition}.", expression=func)


def _num(func: str, name: str, value: Any) -> int | float:
    """A finite real number (not bool), returned as a plain Python int or float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(func, f"{name} to be a number, got {type(value).__name__} {value!r}")
    out: int | float = int(value) if isinstance(value, numbers.Integral) else float(value)
    if not math.isfinite(out):
        raise _fail(func, f"{name} to be finite, got {value!r}")
    return out


def _q(func: str, value: Any) -> int | float:
    q = _num(func, "q", value)
    if isinstance(q, float) and not q.is_integer():
        raise _fail(func, f"q to be an int (v1 rule), got {value!r}")
    if q <= 0:
        raise _fail(func, f"q > 0, got {value!r}")
    return q


def _sigma(func: str, value: Any) -> int | float:
    sigma = _num(func, "sigma", value)
    if sigma < 0:
        raise _fail(func, f"sigma to be non-negative, got {value!r}")
    return sigma


def _plain(value: Any) -> Any:
    """numpy scalars become Python scalars so the wire form stays JSON-able."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    return value


def choice(*options: Any) -> list[Any]:
    """A discrete set of options: varargs, one non-empty list, or one non-empty ``range``.

    Example::

        choice(16, 32, 64)        # ['choice', [[16, 32, 64]]]
        choice([0.1, 0.2])        # ['choice', [[0.1, 0.2]]]
        choice(range(1, 5))       # ['choice', [[1, 2, 3, 4]]]
    """
    if len(options) == 0:
        raise _fail("choice", "at least one option")
    values: list[Any]
    if len(options) == 1 and isinstance(options[0], range | list):
        values = list(options[0])
        if not values:
            raise _fail("choice", "a non-empty list or range")
    elif any(isinstance(o, range | list) for o in options):
        raise _fail(
            "choice",
            "a single non-empty list, a single non-empty range() or any number of plain options",
        )
    else:
        values = list(options)
    values = [_plain(v) for v in values]
    for v in values:
        try:
            json.dumps(v)
        except (TypeError, ValueError) as err:
            raise _fail("choice", f"JSON-serialisable options, got {v!r}") from err
    return ["choice", [values]]


def randint(upper: int) -> list[Any]:
    """A random integer in ``[0, upper)``; nearby values are not assumed to be related (seeds).

    Example::

        randint(1000)             # ['randint', [1000]]
    """
    upper = _plain(upper)
    if isinstance(upper, bool) or not isinstance(upper, int) or upper < 1:
        raise _fail("randint", f"upper to be an int >= 1, got {upper!r}")
    return ["randint", [upper]]


def uniform(min_value: float, max_value: float) -> list[Any]:
    """A real uniformly distributed on ``[min_value, max_value]``.

    Example::

        uniform(0.05, 0.1)        # ['uniform', [0.05, 0.1]]
    """
    lo, hi = _num("uniform", "min_value", min_value), _num("uniform", "max_value", max_value)
    if lo >= hi:
        raise _fail("uniform", f"min_value < max_value, got {lo!r} >= {hi!r}")
    return ["uniform", [lo, hi]]


def quniform(min_value: float, max_value: float, q: float) -> list[Any]:
    """``round(uniform(min_value, max_value) / q) * q``: a bounded, smooth discrete value.

    Example::

        quniform(32, 512, 32)     # ['quniform', [32, 512, 32]]
    """
    lo, hi = _num("quniform", "min_value", min_value), _num("quniform", "max_value", max_value)
    qq = _q("quniform", q)
    if lo >= hi:
        raise _fail("quniform", f"min_value < max_value, got {lo!r} >= {hi!r}")
    return ["quniform", [lo, hi, qq]]


def loguniform(min_value: float, max_value: float) -> list[Any]:
    """``exp(uniform(min_value, max_value))``. **The bounds are exponents** (natural log).

    Example::

        loguniform(-6, -1)        # values in [e^-6, e^-1] ~ [0.0025, 0.37]
    """
    lo = _num("loguniform", "min_value", min_value)
    hi = _num("loguniform", "max_value", max_value)
    if lo > hi:
        raise _fail("loguniform", f"min_value <= max_value, got {lo!r} > {hi!r}")
    return ["loguniform", [lo, hi]]


def qloguniform(min_value: float, max_value: float, q: float) -> list[Any]:
    """``round(exp(uniform(min_value, max_value)) / q) * q``; the bounds are exponents.

    Example::

        qloguniform(2, 6, 1)      # integers in [round(e^2), round(e^6)] = [7, 403]
    """
    lo = _num("qloguniform", "min_value", min_value)
    hi = _num("qloguniform", "max_value", max_value)
    qq = _q("qloguniform", q)
    if lo > hi:
        raise _fail("qloguniform", f"min_value <= max_value, got {lo!r} > {hi!r}")
    return ["qloguniform", [lo, hi, qq]]


def normal(mu: float, sigma: float) -> list[Any]:
    """An unbounded real, normally distributed with mean ``mu`` and standard deviation ``sigma``.

    Example::

        normal(10, 3)             # ['normal', [10, 3]]
    """
    return ["normal", [_num("normal", "mu", mu), _sigma("normal", sigma)]]


def qnormal(mu: float, sigma: float, q: float) -> list[Any]:
    """``round(normal(mu, sigma) / q) * q``.

    Example::

        qnormal(100, 10, 5)       # ['qnormal', [100, 10, 5]]
    """
    return ["qnormal", [_num("qnormal", "mu", mu), _sigma("qnormal", sigma), _q("qnormal", q)]]


def lognormal(mu: float, sigma: float) -> list[Any]:
    """``exp(normal(mu, sigma))``: always > 0.

    Example::

        lognormal(0, 1)           # ['lognormal', [0, 1]]
    """
    return ["lognormal", [_num("lognormal", "mu", mu), _sigma("lognormal", sigma)]]


def qlognormal(mu: float, sigma: float, q: float) -> list[Any]:
    """``round(exp(normal(mu, sigma)) / q) * q``.

    Example::

        qlognormal(3, 1, 2)       # ['qlognormal', [3, 1, 2]]
    """
    mu_, sigma_ = _num("qlognormal", "mu", mu), _sigma("qlognormal", sigma)
    return ["qlognormal", [mu_, sigma_, _q("qlognormal", q)]]


_BUILDERS: dict[str, Any] = {
    "choice": lambda args: choice(list(args[0])) if isinstance(args[0], list | tuple) else None,
    "randint": lambda args: randint(*args),
    "uniform": lambda args: uniform(*args),
    "quniform": lambda args: quniform(*args),
    "loguniform": lambda args: loguniform(*args),
    "qloguniform": lambda args: qloguniform(*args),
    "normal": lambda args: normal(*args),
    "qnormal": lambda args: qnormal(*args),
    "lognormal": lambda args: lognormal(*args),
    "qlognormal": lambda args: qlognormal(*args),
}
_ARITY = {"choice": 1, "randint": 1, "uniform": 2, "loguniform": 2, "normal": 2, "lognormal": 2}


def validate_expression(expr: Any) -> list[Any]:
    """Check a wire-form expression (e.g. read back from JSON) and return it normalised.

    Raises :class:`~trainyard.exceptions.HyperDriveConfigException` if it is not ``[name, [args]]``
    with a known name and valid arguments.

    Example::

        validate_expression(["uniform", [0, 1]])     # ['uniform', [0, 1]]
        validate_expression(["uniform", [1, 0]])     # raises HyperDriveConfigException
    """
    if (
        not isinstance(expr, list | tuple)
        or len(expr) != 2
        or expr[0] not in _BUILDERS
        or not isinstance(expr[1], list | tuple)
        or len(expr[1]) != _ARITY.get(expr[0], 3)
    ):
        raise HyperDriveConfigException(
            f"Not a parameter expression: {expr!r}. Build one with choice(), uniform(), … from "
            "trainyard.train.hyperdrive.parameter_expressions.",
            expression=repr(expr),
        )
    built = _BUILDERS[expr[0]](list(expr[1]))
    if built is None:
        raise _fail("choice", f"its wire form to hold one list of options, got {expr!r}")
    return list(built)


def require_numpy() -> Any:
    try:
        import numpy
    except ImportError as err:  # pragma: no cover - numpy ships with the hyperdrive extra
        raise MissingExtraError.for_extra("hyperdrive", "HyperDrive sampling", "numpy") from err
    return numpy


def _quantise(x: float, q: int | float) -> int | float:
    np = require_numpy()
    k = float(np.round(x / q))
    return int(k) * q if isinstance(q, int) else k * q


def sample_expression(expr: list[Any], rng: np.random.Generator) -> Any:
    """Draw one value from a wire-form expression with v1's formulas, as a plain Python value.

    Example::

        import numpy as np
        sample_expression(quniform(0, 100, 10), np.random.default_rng(0))   # e.g. 60
    """
    name, args = expr[0], expr[1]
    if name == "choice":
        options = args[0]
        return options[int(rng.integers(len(options)))]
    if name == "randint":
        return int(rng.integers(args[0]))
    if name in ("uniform", "quniform", "loguniform", "qloguniform"):
        x = float(rng.uniform(args[0], args[1])) if args[0] < args[1] else float(args[0])
    elif name in ("normal", "qnormal", "lognormal", "qlognormal"):
        x = float(rng.normal(args[0], args[1]))
    else:
        raise HyperDriveConfigException(f"Unknown parameter expression {name!r}.", expression=name)
    if name in ("loguniform", "qloguniform", "lognormal", "qlognormal"):
        x = math.exp(x)
    if name.startswith("q"):
        return _quantise(x, args[2])
    return x


def quantised_range(expr: list[Any]) -> tuple[int, int] | None:
    """For ``quniform``/``qloguniform``: the inclusive range of ``k`` in ``value = k * q``.

    Example::

        quantised_range(quniform(1, 10, 3))    # (0, 3): values 0, 3, 6, 9
    """
    name, args = expr[0], expr[1]
    if name not in ("quniform", "qloguniform"):
        return None
    np = require_numpy()
    lo, hi, q = args
    if name == "qloguniform":
        lo, hi = math.exp(lo), math.exp(hi)
    return int(np.round(lo / q)), int(np.round(hi / q))


def expression_size(expr: list[Any]) -> int | None:
    """Number of distinct values a bounded discrete expression can take; ``None`` if unbounded.

    ``choice`` counts distinct options, ``randint(n)`` is ``n``; the bounded quantised expressions
    (``quniform``, ``qloguniform``) are finite too. Continuous and normal-family expressions give
    ``None``.

    Example::

        expression_size(choice(1, 2, 2))      # 2
        expression_size(uniform(0, 1))        # None
    """
    name, args = expr[0], expr[1]
    if name == "choice":
        return len({json.dumps(v, sort_keys=True) for v in args[0]})
    if name == "randint":
        return int(args[0])
    krange = quantised_range(expr)
    if krange is not None:
        return krange[1] - krange[0] + 1
    return None
