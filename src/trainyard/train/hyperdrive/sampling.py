"""Hyperparameter samplers (v1 names) and the suggestion generators the sweep controller drives.

A sampler is configuration: it validates a parameter space and serialises to v1's wire form
``{"name": NAME, "parameter_space": {...}, "properties": {...}}`` (``properties`` only when set).
:meth:`HyperParameterSampling.create_generator` turns it into a stateful
:class:`SuggestionGenerator`, the same API for every sampler::

    sampling = RandomParameterSampling({"--lr": uniform(0.01, 0.1), "--bs": choice(16, 32)}, seed=1)
    gen = sampling.create_generator(goal="maximize")
    for number, hyperparameters in gen.suggest(2):      # [(0, {"--lr": 0.07…, "--bs": 32}), …]
        ...                                             # start a child run with them
    gen.observe(0, 0.91, "completed")                   # its best primary-metric value

=====================================  ========================  ========================================
class                                  NAME                      engine
=====================================  ========================  ========================================
:class:`RandomParameterSampling`       ``RANDOM``                v1 formulas, numpy Generator
:class:`GridParameterSampling`         ``GRID``                  Cartesian product, last key fastest
:class:`BayesianParameterSampling`     ``BayesianOptimization``  Optuna TPE (ask/tell), see its docstring
:class:`TPEParameterSampling`          ``TPE``                   Optuna TPE; trainyard extension
=====================================  ========================  ========================================

No sampler hands out the same configuration twice, so a finite space is used up after as many
suggestions as it has distinct points; then ``suggest`` returns ``[]`` and ``is_exhausted()`` is true.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from trainyard.exceptions import HyperDriveConfigException
from trainyard.train.hyperdrive._space import GridGenerator, OptunaGenerator, SuggestionGenerator
from trainyard.train.hyperdrive.parameter_expressions import validate_expression

__all__ = [
    "BayesianParameterSampling",
    "GridParameterSampling",
    "HyperParameterSampling",
    "RandomParameterSampling",
    "SuggestionGenerator",
    "TPEParameterSampling",
    "sampling_from_json",
]

RECOMMENDED_MIN_RUNS_PER_PARAMETER_BAYESIAN = 20
RECOMMENDED_MAX_CONCURRENT_RUNS_BAYESIAN = 20


def _choice_validator(expr: list[Any]) -> str | None:
    values = expr[1][0]
    if any(type(v) not in (int, str, float) for v in values):
        return "'choice' values should be 'int', 'string' or 'float'."
    if 0 < sum(isinstance(v, str) for v in values) < len(values):
        return "Either all or none of the 'choice' values should be 'str' type."
    return None


def _bayesian_quniform_validator(expr: list[Any]) -> str | None:
    low, high, q = expr[1]
    if any(type(a) is not int for a in expr[1]):
        return "Expected quniform arguments to be int."
    if (high - low) / q > 100000:
        return (
            "Too many discrete points for quniform distribution. Use larger q or uniform instead."
        )
    return None


class HyperParameterSampling:
    """Base of all samplers: a validated parameter space plus algorithm properties (v1).

    ``supported_distributions`` (expression names; ``None`` = all) and ``distributions_validators``
    (name → function returning an error message or ``None``) restrict the space; violations raise
    :class:`~trainyard.exceptions.HyperDriveConfigException`.

    Example::

        HyperParameterSampling("RANDOM", {"--lr": uniform(0, 1)}).to_json()
        # {'name': 'RANDOM', 'parameter_space': {'--lr': ['uniform', [0, 1]]}}
    """

    SAMPLING_NAME: ClassVar[str] = ""
    SUPPORTS_EARLY_TERMINATION: ClassVar[bool] = True

    def __init__(
        self,
        sampling_method_name: str,
        parameter_space: Mapping[str, Any],
        properties: Mapping[str, Any] | None = None,
        supported_distributions: set[str] | None = None,
        distributions_validators: Mapping[str, Callable[[list[Any]], str | None]] | None = None,
    ) -> None:
        if not isinstance(parameter_space, Mapping) or not parameter_space:
            raise HyperDriveConfigException(
                f"{type(self).__name__} needs a non-empty parameter_space dict, "
                f"got {parameter_space!r}."
            )
        space: dict[str, list[Any]] = {}
        for key, expr in parameter_space.items():
            if not isinstance(key, str) or not key:
                raise HyperDriveConfigException(f"Parameter names must be non-empty str: {key!r}.")
            try:
                space[key] = validate_expression(expr)
            except HyperDriveConfigException as err:
                raise HyperDriveConfigException(f"Parameter {key!r}: {err.message}") from err
            name = space[key][0]
            if supported_distributions is not None and name not in supported_distributions:
                allowed = ", ".join(sorted(supported_distributions))
                raise HyperDriveConfigException(
                    f"Parameter {key!r}: {sampling_method_name} sampling supports only [{allowed}], "
                    f"not {name!r}."
                )
            validator = (distributions_validators or {}).get(name)
            problem = validator(space[key]) if validator else None
            if problem:
                raise HyperDriveConfigException(f"Parameter {key!r}: {problem}")
        self._sampling_method_name = sampling_method_name
        self._parameter_space = space
        self._properties = dict(properties) if properties else None

    @property
    def parameter_space(self) -> dict[str, list[Any]]:
        """The validated space, ``{key: expression}`` (a copy)."""
        return {k: list(v) for k, v in self._parameter_space.items()}

    @property
    def properties(self) -> dict[str, Any]:
        """Algorithm properties (a copy; empty if none)."""
        return dict(self._properties or {})

    def to_json(self) -> dict[str, Any]:
        """v1 wire form; ``properties`` only when set."""
        out: dict[str, Any] = {"name": self._sampling_method_name}
        out["parameter_space"] = self.parameter_space
        if self._properties:
            out["properties"] = dict(self._properties)
        return out

    def _seed(self, seed: int | None) -> int | None:
        if seed is not None:
            return _int_prop("seed", seed)
        value = (self._properties or {}).get("rngSeed")
        return None if value is None else _int_prop("rngSeed", value)

    def create_generator(
        self, goal: str = "maximize", seed: int | None = None
    ) -> SuggestionGenerator:
        """A fresh :class:`SuggestionGenerator`; ``seed`` overrides ``properties["rngSeed"]``.

        Example::

            gen = GridParameterSampling({"--bs": choice(16, 32)}).create_generator("minimize")
            gen.suggest(5)      # [(0, {'--bs': 16}), (1, {'--bs': 32})]
        """
        return SuggestionGenerator(self._parameter_space, goal, self._seed(seed))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HyperParameterSampling) or type(other) is not type(self):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()!r})"


def _int_prop(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HyperDriveConfigException(f"{name} must be an int >= 0, got {value!r}.")
    return value


def _with_seed(properties: Mapping[str, Any] | None, seed: int | None) -> dict[str, Any] | None:
    props = dict(properties or {})
    if seed is not None:
        if props.get("rngSeed", seed) != seed:
            raise HyperDriveConfigException("seed and properties['rngSeed'] disagree.")
        props["rngSeed"] = _int_prop("seed", seed)
    return props or None


class RandomParameterSampling(HyperParameterSampling):
    """Random sampling with v1's formulas; every expression allowed; early termination supported.

    Seedable with ``seed=`` or ``properties={"rngSeed": n}`` (stored in the wire form). A finite
    space is never sampled twice, so a sweep runs ``min(space size, max_total_runs)`` children.

    Example::

        RandomParameterSampling({"--lr": loguniform(-6, -1), "--bs": choice(16, 32)}, seed=7)
    """

    SAMPLING_NAME = "RANDOM"

    def __init__(
        self,
        parameter_space: Mapping[str, Any],
        properties: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(self.SAMPLING_NAME, parameter_space, _with_seed(properties, seed))
        self._seed(None)


class GridParameterSampling(HyperParameterSampling):
    """Exhaustive grid over ``choice`` expressions only (v1): the whole Cartesian product, once.

    Choice values must be int, str or float, all strings or none (v1's validator). Order: the
    space's key order, last key varying fastest.

    Example::

        GridParameterSampling({"--lr": choice(0.1, 1.0), "--bs": choice(16, 32)})   # 4 points
    """

    SAMPLING_NAME = "GRID"

    def __init__(
        self, parameter_space: Mapping[str, Any], properties: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(
            self.SAMPLING_NAME,
            parameter_space,
            properties,
            supported_distributions={"choice"},
            distributions_validators={"choice": _choice_validator},
        )

    def create_generator(
        self, goal: str = "maximize", seed: int | None = None
    ) -> SuggestionGenerator:
        """A generator walking the grid in order (``seed`` is accepted and unused)."""
        return GridGenerator(self._parameter_space, goal, self._seed(seed))


class BayesianParameterSampling(HyperParameterSampling):
    """v1 Bayesian optimisation over ``choice``, ``uniform`` and ``quniform`` (no early termination).

    v1's rules: ``quniform`` arguments are ints with ``(high - low) / q <= 100000``; ``choice``
    values are int/str/float, all strings or none. :meth:`validate_budget` gives v1's warnings.

    **Engine.** Optuna's TPE sampler through ask/tell (multivariate, with the constant-liar
    strategy so concurrent pending trials are not proposed again). The first ``min(10, max(4, 2·d))``
    trials (``d`` parameters) are random, then TPE models good vs bad regions. Chosen over
    ``GPSampler`` because that needs torch and scipy (far too heavy for this extra), and TPE
    handles categorical ``choice`` and mixed spaces natively and behaves well at the small trial
    counts typical of sweeps. An optional ``properties={"rngSeed": n}`` makes it reproducible.

    Example::

        BayesianParameterSampling({"--lr": uniform(0.05, 0.1), "--bs": choice(16, 32, 64)})
    """

    SAMPLING_NAME = "BayesianOptimization"
    SUPPORTS_EARLY_TERMINATION = False

    def __init__(
        self, parameter_space: Mapping[str, Any], properties: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(
            self.SAMPLING_NAME,
            parameter_space,
            properties,
            supported_distributions={"choice", "uniform", "quniform"},
            distributions_validators={
                "choice": _choice_validator,
                "quniform": _bayesian_quniform_validator,
            },
        )
        self._seed(None)

    def validate_budget(self, max_total_runs: int, max_concurrent_runs: int | None) -> list[str]:
        """v1's advice as messages (also emitted with ``warnings.warn``); ``[]`` when fine.

        Example::

            BayesianParameterSampling({"--x": uniform(0, 1)}).validate_budget(10, 4)
            # ['For best results with Bayesian Sampling … Recommended value:20.']
        """
        concurrent = max_total_runs if max_concurrent_runs is None else max_concurrent_runs
        recommended = RECOMMENDED_MIN_RUNS_PER_PARAMETER_BAYESIAN * len(self._parameter_space)
        messages = []
        if max_total_runs < recommended:
            messages.append(
                "For best results with Bayesian Sampling we recommend using a maximum number of runs "
                f"greater than or equal to {RECOMMENDED_MIN_RUNS_PER_PARAMETER_BAYESIAN} times the "
                f"number of hyperparameters being tuned. Current value for max_total_runs:"
                f"{max_total_runs}. Recommended value:{recommended}."
            )
        if concurrent > RECOMMENDED_MAX_CONCURRENT_RUNS_BAYESIAN:
            messages.append(
                f"We recommend using {RECOMMENDED_MAX_CONCURRENT_RUNS_BAYESIAN} max concurrent runs "
                "or fewer when using Bayesian sampling since a higher number might not provide the "
                f"best result. Current max concurrent runs:{concurrent}."
            )
        for message in messages:
            warnings.warn(message, UserWarning, stacklevel=2)
        return messages

    def create_generator(
        self, goal: str = "maximize", seed: int | None = None
    ) -> SuggestionGenerator:
        """A TPE-backed generator (see the class docstring)."""
        startup = min(10, max(4, 2 * len(self._parameter_space)))
        return OptunaGenerator(self._parameter_space, goal, self._seed(seed), startup)


class TPEParameterSampling(HyperParameterSampling):
    """**Trainyard extension:** Optuna's TPE over any expression, with early termination allowed.

    Unlike :class:`BayesianParameterSampling` it takes every expression (log and normal families
    are mapped as in ``_space``), accepts ``seed=``/``properties={"rngSeed": n}`` and
    ``properties={"n_startup_trials": k}`` (random trials before TPE takes over; default 10).
    Trials cancelled by a policy are told to Optuna as pruned with their best value.

    Example::

        TPEParameterSampling({"--lr": loguniform(-8, -2), "--layers": randint(4)}, seed=0)
    """

    SAMPLING_NAME = "TPE"

    def __init__(
        self,
        parameter_space: Mapping[str, Any],
        properties: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(self.SAMPLING_NAME, parameter_space, _with_seed(properties, seed))
        self._seed(None)
        self._startup = _int_prop("n_startup_trials", self.properties.get("n_startup_trials", 10))

    def create_generator(
        self, goal: str = "maximize", seed: int | None = None
    ) -> SuggestionGenerator:
        """A TPE-backed generator."""
        return OptunaGenerator(self._parameter_space, goal, self._seed(seed), self._startup)


_SAMPLERS: dict[str, type[HyperParameterSampling]] = {
    c.SAMPLING_NAME.lower(): c
    for c in (
        RandomParameterSampling,
        GridParameterSampling,
        BayesianParameterSampling,
        TPEParameterSampling,
    )
}


def sampling_from_json(data: Mapping[str, Any]) -> HyperParameterSampling:
    """Rebuild a sampler from its wire form (e.g. the parent run's ``generator_config`` tag).

    Example::

        sampling_from_json({"name": "GRID", "parameter_space": {"--bs": ["choice", [[16, 32]]]}})
    """
    if not isinstance(data, Mapping) or "parameter_space" not in data:
        raise HyperDriveConfigException(f"Not a sampling definition: {data!r}.")
    cls: Any = _SAMPLERS.get(str(data.get("name", "")).lower())
    if cls is None:
        raise HyperDriveConfigException(f"Unknown sampling method {data.get('name')!r}.")
    sampling: HyperParameterSampling = cls(data["parameter_space"], data.get("properties"))
    return sampling
