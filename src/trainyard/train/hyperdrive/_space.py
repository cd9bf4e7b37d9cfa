"""The engine under the samplers: space helpers, the Optuna value mapping, suggestion generators.

Private to :mod:`trainyard.train.hyperdrive` (``SuggestionGenerator`` is re-exported by
:mod:`~trainyard.train.hyperdrive.sampling`). A *configuration* is one ``{key: value}`` point of the
space; :func:`config_key` gives it a canonical identity so samplers never hand out a point twice.

Optuna mapping (used by the Bayesian and TPE samplers). Each expression becomes one Optuna
distribution over an *internal* value, mapped to the user's value by :func:`from_internal`:

=============  ===========================================  ==========================================
expression     Optuna distribution (internal)               user value
=============  ===========================================  ==========================================
choice         Categorical over option indices              ``options[i]``
randint(n)     Int[0, n-1]                                  the int
uniform        Float[min, max]                              the float
quniform       Int[round(min/q), round(max/q)]              ``k * q``
loguniform     Float[min, max] (the exponent)               ``exp(x)``
qloguniform    Float[min, max] (the exponent)               ``round(exp(x)/q) * q``
normal family  Float[1e-6, 1-1e-6] (a quantile u)           ``mu + sigma*Phi^-1(u)`` (exp'd, rounded)
=============  ===========================================  ==========================================

Example::

    space = {"--lr": uniform(0, 1), "--bs": choice(16, 32)}
    config_key(space, {"--lr": 0.5, "--bs": 16})   # '[["--lr", 0.5], ["--bs", 16]]'
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import warnings
from collections.abc import Iterator, Mapping
from statistics import NormalDist
from typing import Any

from trainyard.exceptions import HyperDriveConfigException, MissingExtraError, ValidationError
from trainyard.train.hyperdrive.parameter_expressions import (
    expression_size,
    quantised_range,
    require_numpy,
    sample_expression,
)

_U_EPS = 1e-6
_NORMAL_FAMILY = ("normal", "qnormal", "lognormal", "qlognormal")


def canonical(value: Any) -> str:
    """Canonical JSON text of one value (``1`` and ``1.0`` stay distinct)."""
    return json.dumps(value, sort_keys=True)


def config_key(space: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """Canonical identity of a configuration, in the space's key order."""
    return json.dumps([[k, config[k]] for k in space], sort_keys=True)


def expression_values(expr: list[Any]) -> list[Any] | None:
    """All distinct values of a finite expression in order; ``None`` when it is not finite."""
    name, args = expr[0], expr[1]
    if name == "choice":
        seen: dict[str, Any] = {}
        for v in args[0]:
            seen.setdefault(canonical(v), v)
        return list(seen.values())
    if name == "randint":
        return list(range(args[0]))
    krange = quantised_range(expr)
    if krange is not None:
        q = args[2]
        return [
            k * q if isinstance(q, int) else float(k * q) for k in range(krange[0], krange[1] + 1)
        ]
    return None


def space_size(space: Mapping[str, Any]) -> int | None:
    """Number of distinct configurations, or ``None`` if any expression is not finite."""
    total = 1
    for expr in space.values():
        n = expression_size(expr)
        if n is None:
            return None
        total *= n
    return total


def iter_grid(space: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every configuration of a finite space, in Cartesian-product order (last key fastest)."""
    keys = list(space)
    columns = [expression_values(space[k]) or [] for k in keys]
    for combo in itertools.product(*columns):
        yield dict(zip(keys, combo, strict=True))


# Enumerating what is left is only worth it once the space is small; rejection sampling is exact
# and cheap while most of a large space is still free.
_ENUMERATE_LIMIT = 1_000_000


def draw_unused(
    space: Mapping[str, Any], used: set[str], rng: Any, *, attempts: int = 200
) -> dict[str, Any] | None:
    """One configuration not in ``used``, drawn with v1's formulas; ``None`` if none is left.

    Rejection sampling first (so values follow the expressions' distributions); if that keeps
    hitting used points and the space is finite, a uniform pick among the remaining points.
    """
    size = space_size(space)
    if size is not None and len(used) >= size:
        return None
    for _ in range(attempts):
        config = {k: sample_expression(expr, rng) for k, expr in space.items()}
        if config_key(space, config) not in used:
            return config
    if size is None or size > _ENUMERATE_LIMIT:
        return None
    remaining = [c for c in iter_grid(space) if config_key(space, c) not in used]
    if not remaining:
        return None
    return remaining[int(rng.integers(len(remaining)))]


def in_support(expr: list[Any], value: Any) -> bool:
    """Whether ``value`` is a value the expression can produce (used to check warm-start priors)."""
    name, args = expr[0], expr[1]
    if name == "choice":
        return canonical(value) in {canonical(v) for v in args[0]}
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    if name == "randint":
        return isinstance(value, int) and 0 <= value < args[0]
    if name == "uniform":
        return bool(args[0] <= value <= args[1])
    if name == "loguniform":
        return bool(math.exp(args[0]) * (1 - 1e-9) <= value <= math.exp(args[1]) * (1 + 1e-9))
    if name == "lognormal":
        return value > 0
    if name == "normal":
        return True
    k = value / args[2]
    if abs(k - round(k)) > 1e-9:
        return False
    krange = quantised_range(expr)
    if krange is not None:
        return bool(krange[0] <= round(k) <= krange[1])
    return bool(name == "qnormal" or value >= 0)


# ---------------------------------------------------------------------------------------- Optuna
def to_distribution(expr: list[Any]) -> Any:
    """The Optuna distribution of an expression's internal value (see the module table)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    name, args = expr[0], expr[1]
    if name == "choice":
        return CategoricalDistribution(tuple(range(len(args[0]))))
    if name == "randint":
        return IntDistribution(0, args[0] - 1)
    if name == "quniform":
        lo, hi = quantised_range(expr) or (0, 0)
        return IntDistribution(lo, hi)
    if name in ("uniform", "loguniform", "qloguniform"):
        return FloatDistribution(float(args[0]), float(args[1]))
    return FloatDistribution(_U_EPS, 1 - _U_EPS)


def from_internal(expr: list[Any], x: Any) -> Any:
    """User value of an internal Optuna value (plain Python types)."""
    name, args = expr[0], expr[1]
    if name == "choice":
        return args[0][int(x)]
    if name == "randint":
        return int(x)
    if name == "quniform":
        q = args[2]
        return int(x) * q if isinstance(q, int) else float(int(x) * q)
    if name == "uniform":
        return float(x)
    if name in _NORMAL_FAMILY:
        mu, sigma = args[0], args[1]
        x = mu + sigma * NormalDist().inv_cdf(float(x)) if sigma > 0 else float(mu)
    if name in ("loguniform", "qloguniform", "lognormal", "qlognormal"):
        x = math.exp(x)
    if name.startswith("q"):
        q = args[2]
        k = round(float(x) / q)  # Python's round is half-to-even, like numpy's
        return k * q if isinstance(q, int) else float(k * q)
    return float(x)


def to_internal(expr: list[Any], value: Any) -> Any:
    """Internal Optuna value for a user value known to be in the expression's support."""
    name, args = expr[0], expr[1]
    if name == "choice":
        wanted = canonical(value)
        return next(i for i, v in enumerate(args[0]) if canonical(v) == wanted)
    if name == "randint":
        return int(value)
    if name == "quniform":
        return round(value / args[2])
    if name == "uniform":
        return float(value)
    if name in ("loguniform", "qloguniform"):
        x = math.log(value) if value > 0 else float(args[0])
        return min(max(x, float(args[0])), float(args[1]))
    mu, sigma = args[0], args[1]
    x = float(value)
    if name in ("lognormal", "qlognormal"):
        x = math.log(value) if value > 0 else mu - 10 * max(sigma, 1.0)
    u = NormalDist(mu, sigma).cdf(x) if sigma > 0 else 0.5
    return min(max(u, _U_EPS), 1 - _U_EPS)


# ------------------------------------------------------------------------------- generators
_STATES = {"completed": "completed", "failed": "failed", "canceled": "canceled"}
_STATES["cancelled"] = "canceled"


def _state(state: str) -> str:
    kind = _STATES.get(str(state).lower())
    if kind is None:
        raise ValidationError(f"state must be completed, failed or canceled, got {state!r}.")
    return kind


def _goal(goal: Any) -> str:
    text = str(getattr(goal, "value", goal)).lower()
    if text not in ("maximize", "minimize"):
        raise HyperDriveConfigException(f"goal must be 'maximize' or 'minimize', got {goal!r}.")
    return text


class SuggestionGenerator:
    """Stateful source of configurations for one sweep; built by ``sampler.create_generator``.

    Contract (identical for every sampler; not thread-safe, the controller owns it):

    - ``suggest(n)`` returns up to ``n`` new ``(trial_number, hyperparameters)`` pairs. Trial numbers
      are this generator's handles, 0, 1, 2 … in the order handed out (``add_pending`` takes one
      too); they are not child indices. ``hyperparameters`` maps the space's keys (``"--lr"``) to
      plain ``int``/``float``/``str`` values. Fewer (or ``[]``) only when no unused point is left
      (or, in a degenerate space such as ``qnormal(0, 0.01, 1)``, none could be found).
    - ``observe(n, value, state)`` reports the outcome of trial ``n``: ``value`` is its best
      primary-metric value (``None`` or non-finite if it logged none), ``state`` is ``"completed"``,
      ``"failed"`` or ``"canceled"``. Unknown numbers raise ``ValidationError``; a second observe
      of the same trial is ignored.
    - ``add_prior(hyperparameters, value, state="completed")`` records a finished trial (from
      earlier sweeps, or from this sweep before a restart): the configuration is never suggested
      again and, for model-based samplers, a non-``None`` value trains the model (as a pruned trial
      when ``state`` is ``"canceled"``). Hyperparameters outside the space raise
      ``HyperDriveConfigException``.
    - ``add_pending(hyperparameters)`` records a configuration that is already running (a resumed
      controller's live children) and returns a trial number to ``observe`` later.

    **Rebuilding.** A generator holds nothing that is not derivable from the sweep's history. A
    restarted controller calls ``create_generator`` with the same goal and seed, then ``add_prior``
    for every finished child and ``add_pending`` for every live one. The rebuilt generator never
    repeats a configuration and (for Bayesian/TPE) has the same model; its later random draws are
    not bit-identical to those an uninterrupted controller would have made.
    """

    def __init__(self, space: Mapping[str, Any], goal: str, seed: int | None) -> None:
        np = require_numpy()
        self._space = dict(space)
        self.goal = _goal(goal)
        self._rng = np.random.default_rng(seed)
        self._used: set[str] = set()
        self._handles: dict[int, Any] = {}
        self._observed: set[int] = set()
        self._size = space_size(self._space)

    # -- hooks for subclasses
    def _propose(self) -> tuple[dict[str, Any], Any] | None:
        """Next unused configuration and an engine handle, or ``None`` when none is left."""
        config = draw_unused(self._space, self._used, self._rng)
        return None if config is None else (config, None)

    def _tell(self, handle: Any, value: float | None, state: str) -> None:
        """Pass an outcome to the engine (nothing to do for model-free samplers)."""

    def _prior(self, config: dict[str, Any], value: float | None, state: str) -> None:
        """Pass a finished trial from the history to the engine."""

    def _running(self, config: dict[str, Any]) -> Any:
        """Register an already-running configuration with the engine; returns its handle."""
        return None

    # -- public API
    def suggest(self, n: int) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``n`` new ``(trial_number, hyperparameters)`` pairs (see the class contract)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValidationError(f"suggest(n) needs an int n >= 0, got {n!r}.")
        out: list[tuple[int, dict[str, Any]]] = []
        while len(out) < n and not self.is_exhausted():
            got = self._propose()
            if got is None:
                break
            config, handle = got
            out.append((self._register(config, handle), dict(config)))
        return out

    def observe(self, trial_number: int, value: float | None, state: str) -> None:
        """Report trial ``trial_number``'s final primary-metric value and terminal state."""
        if trial_number not in self._handles:
            raise ValidationError(f"Unknown trial number {trial_number!r}.")
        kind = _state(state)
        if trial_number in self._observed:
            return
        self._observed.add(trial_number)
        self._tell(self._handles[trial_number], _finite(value), kind)

    def add_prior(
        self, hyperparameters: Mapping[str, Any], value: float | None, state: str = "completed"
    ) -> None:
        """Record a finished trial (its best value, or ``None``) so it is not repeated."""
        config = self._check(hyperparameters)
        kind = _state(state)
        self._used.add(config_key(self._space, config))
        self._prior(config, _finite(value), kind)

    def add_pending(self, hyperparameters: Mapping[str, Any]) -> int:
        """Record a configuration that is already running; returns its trial number."""
        config = self._check(hyperparameters)
        return self._register(config, self._running(config))

    def is_exhausted(self) -> bool:
        """True once every point of a finite space has been handed out or recorded."""
        return self._size is not None and len(self._used) >= self._size

    def _register(self, config: dict[str, Any], handle: Any) -> int:
        number = len(self._handles)
        self._handles[number] = handle
        self._used.add(config_key(self._space, config))
        return number

    def _check(self, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
        if set(hyperparameters) != set(self._space):
            raise HyperDriveConfigException(
                f"Hyperparameters {sorted(hyperparameters)} do not match the parameter space "
                f"{sorted(self._space)}."
            )
        for key, expr in self._space.items():
            if not in_support(expr, hyperparameters[key]):
                raise HyperDriveConfigException(
                    f"Value {hyperparameters[key]!r} of {key!r} is outside {expr!r}."
                )
        return {k: hyperparameters[k] for k in self._space}


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


class GridGenerator(SuggestionGenerator):
    def __init__(self, space: Mapping[str, Any], goal: str, seed: int | None) -> None:
        super().__init__(space, goal, seed)
        self._grid: Iterator[dict[str, Any]] = iter_grid(self._space)

    def _propose(self) -> tuple[dict[str, Any], Any] | None:
        for config in self._grid:
            if config_key(self._space, config) not in self._used:
                return config, None
        return None


@contextlib.contextmanager
def quiet_optuna() -> Iterator[Any]:
    """Optuna without its per-trial INFO lines and experimental-feature warnings."""
    try:
        import optuna
    except ImportError as err:
        raise MissingExtraError.for_extra(
            "hyperdrive", "Bayesian and TPE sampling", "optuna"
        ) from err
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield optuna
    finally:
        optuna.logging.set_verbosity(level)


class OptunaGenerator(SuggestionGenerator):
    """Ask/tell bridge to an in-memory Optuna study (see ``_space`` for the value mapping)."""

    _RETRIES = 10

    def __init__(
        self, space: Mapping[str, Any], goal: str, seed: int | None, n_startup_trials: int
    ) -> None:
        super().__init__(space, goal, seed)
        with quiet_optuna() as optuna:
            sampler = optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=n_startup_trials,
                multivariate=True,
                constant_liar=True,
            )
            self._study = optuna.create_study(direction=self.goal, sampler=sampler)
        self._dists = {k: to_distribution(e) for k, e in self._space.items()}

    def _internal(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {k: to_internal(e, config[k]) for k, e in self._space.items()}

    def _propose(self) -> tuple[dict[str, Any], Any] | None:
        with quiet_optuna() as optuna:
            for _ in range(self._RETRIES):
                trial = self._study.ask(self._dists)
                config = {k: from_internal(e, trial.params[k]) for k, e in self._space.items()}
                if config_key(self._space, config) not in self._used:
                    return config, trial
                # The model keeps proposing a point already handed out: drop it, try again, and
                # in the end fall back to an unused point drawn at random.
                self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        fallback = draw_unused(self._space, self._used, self._rng)
        return None if fallback is None else (fallback, self._running(fallback))

    def _running(self, config: dict[str, Any]) -> Any:
        with quiet_optuna():
            self._study.enqueue_trial(self._internal(config))
            return self._study.ask(self._dists)

    def _tell(self, handle: Any, value: float | None, state: str) -> None:
        with quiet_optuna() as optuna:
            if value is not None and state == "completed":
                self._study.tell(handle, value)
            elif value is not None and state == "canceled":
                handle.report(value, step=0)  # TPE ranks pruned trials by their last report
                self._study.tell(handle, state=optuna.trial.TrialState.PRUNED)
            else:
                self._study.tell(handle, state=optuna.trial.TrialState.FAIL)

    def _prior(self, config: dict[str, Any], value: float | None, state: str) -> None:
        if value is None or state == "failed":
            return  # marked as used; nothing for the model to learn
        with quiet_optuna() as optuna:
            params = self._internal(config)
            if state == "canceled":
                trial = optuna.trial.create_trial(
                    params=params,
                    distributions=self._dists,
                    state=optuna.trial.TrialState.PRUNED,
                    intermediate_values={0: value},
                )
            else:
                trial = optuna.trial.create_trial(
                    params=params, distributions=self._dists, value=value
                )
            self._study.add_trial(trial)
