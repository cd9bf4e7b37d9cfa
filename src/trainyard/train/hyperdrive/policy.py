"""Early-termination policies (v1 names) and their pure decision functions.

A policy is configuration with a v1 wire form ``{"name": POLICY_NAME, "properties": {...}}`` and one
pure decision function the sweep controller calls whenever a child logs its primary metric::

    policy = BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=3)
    policy.should_terminate([0.5, 0.6, 0.7], {"HD_1": [0.8, 0.9, 0.95]}, 3, "maximize",
                            candidate_id=2)
    # (True, 'child 2 cancelled at interval 3: 0.7 < 0.95/1.1 (Bandit slack_factor=0.1)')

Vocabulary shared by every policy:

- A run's *series* is its logged primary-metric values in order; interval ``k`` is the k-th value
  (1-based). The candidate is evaluated at interval ``N`` only when
  :meth:`~EarlyTerminationPolicy.is_evaluation_interval` holds for ``N`` and it has ``N`` values.
- ``others`` maps the other runs (finished and running, not the candidate) to their series. For
  fairness a run is only ever compared on values up to ``N`` (``series[:N]``).
- *best* means the maximum for ``"maximize"`` and the minimum for ``"minimize"``; *worse* follows.
- The decision returns ``(terminate, reason)``; ``reason`` is empty when not terminating.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from trainyard.exceptions import HyperDriveConfigException

__all__ = [
    "AshaPolicy",
    "BanditPolicy",
    "EarlyTerminationPolicy",
    "MedianStoppingPolicy",
    "NoTerminationPolicy",
    "TruncationSelectionPolicy",
    "policy_from_json",
]


def _int(owner: str, name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HyperDriveConfigException(
            f"{owner}: `{name}` must be an int, got {type(value).__name__} {value!r}."
        )
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise HyperDriveConfigException(f"{owner}: `{name}` must be {bound}, got {value}.")
    return value


def _slack(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise HyperDriveConfigException(
            f"BanditPolicy: `{name}` must be a number >= 0, got {value!r}."
        )
    return float(value)


def _goal(goal: Any) -> bool:
    """True for maximize."""
    text = str(getattr(goal, "value", goal)).lower()
    if text not in ("maximize", "minimize"):
        raise HyperDriveConfigException(f"goal must be 'maximize' or 'minimize', got {goal!r}.")
    return text == "maximize"


def _f(x: float) -> str:
    return f"{x:.6g}"


class _Evaluation(NamedTuple):
    """One decision's inputs, already cut to intervals 1..n."""

    candidate: list[float]
    y: float  # the candidate's best over 1..n
    others: dict[str, list[float]]  # runs with at least one value
    n: int
    maximize: bool
    finished: set[str]


class EarlyTerminationPolicy:
    """Base of all policies: a name, JSON properties and the decision contract.

    Subclasses implement ``_decide`` for an interval already known to be evaluated.

    Example::

        EarlyTerminationPolicy("Custom", {"evaluation_interval": 2}).to_json()
        # {'name': 'Custom', 'properties': {'evaluation_interval': 2}}
    """

    POLICY_NAME: ClassVar[str] = ""

    def __init__(self, name: str, properties: Mapping[str, Any] | None = None) -> None:
        self._name = name
        self._properties = dict(properties) if properties is not None else None
        props = self._properties or {}
        self._evaluation_interval = int(props.get("evaluation_interval", 1))
        self._delay_evaluation = int(props.get("delay_evaluation", 0))

    @property
    def evaluation_interval(self) -> int:
        """How often (in logged values) the policy is applied."""
        return self._evaluation_interval

    @property
    def delay_evaluation(self) -> int:
        """No evaluation before this interval."""
        return self._delay_evaluation

    def to_json(self) -> dict[str, Any]:
        """v1 wire form; ``properties`` is left out when the policy has none (``Default``)."""
        out: dict[str, Any] = {"name": self._name}
        if self._properties is not None:
            out["properties"] = dict(self._properties)
        return out

    def is_evaluation_interval(self, k: int) -> bool:
        """``k % evaluation_interval == 0 and k >= delay_evaluation`` (v1)."""
        return k >= 1 and k % self._evaluation_interval == 0 and k >= self._delay_evaluation

    def should_terminate(
        self,
        candidate: Sequence[float],
        others: Mapping[str, Sequence[float]],
        interval: int,
        goal: str,
        *,
        candidate_id: str | int = "",
        finished: Collection[str] = (),
    ) -> tuple[bool, str]:
        """Decide whether to cancel the candidate at ``interval`` (see the module vocabulary).

        ``candidate_id`` only labels the reason; ``finished`` names the runs of ``others`` that
        have ended (used by ``TruncationSelectionPolicy(exclude_finished_jobs=True)``).
        """
        maximize = _goal(goal)
        n = _int(type(self).__name__, "interval", interval, 1)
        if not self.is_evaluation_interval(n) or len(candidate) < n:
            return False, ""
        mine = list(candidate[:n])
        pool = {name: list(s[:n]) for name, s in others.items() if len(s) > 0}
        ev = _Evaluation(mine, _best(mine, maximize), pool, n, maximize, set(finished))
        why = self._decide(ev)
        if not why:
            return False, ""
        label = f"child {candidate_id} " if str(candidate_id) != "" else ""
        return True, f"{label}cancelled at interval {n}: {why}"

    def _decide(self, ev: _Evaluation) -> str:
        """The reason to cancel at an evaluated interval, or ``""`` to keep the run."""
        return ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EarlyTerminationPolicy) or type(other) is not type(self):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()!r})"


def _best(values: Sequence[float], maximize: bool) -> float:
    return max(values) if maximize else min(values)


def _mean(values: Sequence[float]) -> float:
    # fsum, then clamp: rounding must never put a constant series' average above its values.
    return min(max(math.fsum(values) / len(values), min(values)), max(values))


def _n_strictly_better(value: float, pool: list[float], maximize: bool) -> int:
    return sum(1 for v in pool if (v > value if maximize else v < value))


class BanditPolicy(EarlyTerminationPolicy):
    """Cancel runs that fall outside a slack of the best run (v1 ``Bandit``).

    At an evaluated interval N: *best* is the best value among all runs' values up to N (the
    candidate included) and *Y* the candidate's best over 1..N. MAXIMIZE cancels if
    ``Y < best / (1 + slack_factor)`` or ``Y < best - slack_amount``; MINIMIZE if
    ``Y > best * (1 + slack_factor)`` or ``Y > best + slack_amount``. The run holding *best* is
    never cancelled. ``slack_factor`` assumes a positive metric; use ``slack_amount`` otherwise.

    Example::

        BanditPolicy(slack_factor=0.2)   # best 0.8 -> cut-off 0.8 / 1.2 = 0.667
        BanditPolicy(slack_amount=0.2)   # best 0.8 -> cut-off 0.6
    """

    POLICY_NAME = "Bandit"

    def __init__(
        self,
        evaluation_interval: int = 1,
        slack_factor: float | None = None,
        slack_amount: float | None = None,
        delay_evaluation: int = 0,
    ) -> None:
        if (slack_factor is None) == (slack_amount is None):
            raise HyperDriveConfigException(
                "For bandit termination policy, specify either slack factor or slack amount with "
                "respect to the best performing run (exactly one of them)."
            )
        props: dict[str, Any] = {
            "evaluation_interval": _int(
                "BanditPolicy", "evaluation_interval", evaluation_interval, 1
            ),
            "delay_evaluation": _int("BanditPolicy", "delay_evaluation", delay_evaluation, 0),
        }
        self.slack_factor = None if slack_factor is None else _slack("slack_factor", slack_factor)
        self.slack_amount = None if slack_amount is None else _slack("slack_amount", slack_amount)
        if slack_factor is not None:
            props["slack_factor"] = slack_factor
        else:
            props["slack_amount"] = slack_amount
        super().__init__(self.POLICY_NAME, props)

    def _decide(self, ev: _Evaluation) -> str:
        y, hi = ev.y, ev.maximize
        best = _best([y, *(_best(s, hi) for s in ev.others.values())], hi)
        if y == best:
            return ""
        if self.slack_factor is not None:
            s = 1 + self.slack_factor
            cut, shown = (
                (best / s, f"{_f(best)}/{_f(s)}") if hi else (best * s, f"{_f(best)}*{_f(s)}")
            )
            rule = f"slack_factor={_f(self.slack_factor)}"
        else:
            a = self.slack_amount or 0.0
            cut, shown = (
                (best - a, f"{_f(best)} - {_f(a)}") if hi else (best + a, f"{_f(best)} + {_f(a)}")
            )
            rule = f"slack_amount={_f(a)}"
        if (y < cut) if hi else (y > cut):
            return f"{_f(y)} {'<' if hi else '>'} {shown} (Bandit {rule})"
        return ""


class MedianStoppingPolicy(EarlyTerminationPolicy):
    """Cancel runs whose best value is worse than the median of running averages (v1).

    At an evaluated interval N, over the runs that reached N (the candidate included): take each
    run's average of its values 1..N, then the median of those averages (the mean of the middle two
    for an even count). Cancel if the candidate's best value over 1..N is worse than that median.
    The conservative setting is ``evaluation_interval=1, delay_evaluation=5``.

    Example::

        MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=5)
    """

    POLICY_NAME = "MedianStopping"

    def __init__(self, evaluation_interval: int = 1, delay_evaluation: int = 0) -> None:
        owner = "MedianStoppingPolicy"
        props = {
            "evaluation_interval": _int(owner, "evaluation_interval", evaluation_interval, 1),
            "delay_evaluation": _int(owner, "delay_evaluation", delay_evaluation, 0),
        }
        super().__init__(self.POLICY_NAME, props)

    def _decide(self, ev: _Evaluation) -> str:
        runs = [ev.candidate, *ev.others.values()]
        averages = [_mean(s) for s in runs if len(s) >= ev.n]
        median = statistics.median(averages)
        if (ev.y < median) if ev.maximize else (ev.y > median):
            return (
                f"best {_f(ev.y)} {'<' if ev.maximize else '>'} median {_f(median)} of running "
                f"averages over {len(averages)} runs (MedianStopping)"
            )
        return ""


class TruncationSelectionPolicy(EarlyTerminationPolicy):
    """Cancel the worst ``truncation_percentage`` % of runs at each evaluated interval (v1).

    At interval N the runs that reached N (the candidate included; with
    ``exclude_finished_jobs=True`` finished runs are left out) are ranked by their best value over
    1..N. With ``n`` runs, the worst ``floor(X% * n)`` are cut; ties favour the candidate (it is
    cut only if at least ``n - floor(X% * n)`` runs are strictly better).

    Example::

        TruncationSelectionPolicy(truncation_percentage=20, delay_evaluation=5)
    """

    POLICY_NAME = "TruncationSelection"

    def __init__(
        self,
        truncation_percentage: int,
        evaluation_interval: int = 1,
        delay_evaluation: int = 0,
        exclude_finished_jobs: bool = False,
    ) -> None:
        owner = "TruncationSelectionPolicy"
        if not isinstance(exclude_finished_jobs, bool):
            raise HyperDriveConfigException(f"{owner}: `exclude_finished_jobs` must be a bool.")
        props = {
            "evaluation_interval": _int(owner, "evaluation_interval", evaluation_interval, 1),
            "delay_evaluation": _int(owner, "delay_evaluation", delay_evaluation, 0),
            "truncation_percentage": _int(
                owner, "truncation_percentage", truncation_percentage, 1, 99
            ),
            "exclude_finished_jobs": exclude_finished_jobs,
        }
        self.truncation_percentage = truncation_percentage
        self.exclude_finished_jobs = exclude_finished_jobs
        super().__init__(self.POLICY_NAME, props)

    def _decide(self, ev: _Evaluation) -> str:
        skip = ev.finished if self.exclude_finished_jobs else set()
        pool = [
            _best(s, ev.maximize)
            for name, s in ev.others.items()
            if len(s) >= ev.n and name not in skip
        ]
        total = len(pool) + 1
        cut = self.truncation_percentage * total // 100
        if cut > 0 and _n_strictly_better(ev.y, pool, ev.maximize) >= total - cut:
            return (
                f"best {_f(ev.y)} is in the worst {self.truncation_percentage}% "
                f"({cut} of {total} runs) (TruncationSelection)"
            )
        return ""


class NoTerminationPolicy(EarlyTerminationPolicy):
    """No early termination (v1 ``Default``); ``policy=None`` means this.

    Example::

        NoTerminationPolicy().to_json()      # {'name': 'Default'}
    """

    POLICY_NAME = "Default"

    def __init__(self) -> None:
        super().__init__(self.POLICY_NAME)

    def is_evaluation_interval(self, k: int) -> bool:
        """Never: this policy does not evaluate."""
        return False


class AshaPolicy(EarlyTerminationPolicy):
    """**Trainyard extension:** asynchronous successive halving (ASHA, Li et al. 2018), stopping form.

    Rungs sit at intervals ``min_intervals * reduction_factor**i`` (i = 0, 1, …), below
    ``max_intervals`` when it is set; ``evaluation_interval`` and ``delay_evaluation`` further
    filter them (keep the defaults for textbook ASHA). When the candidate reaches a rung N it is
    compared, by best value over 1..N, with every run that has reached N so far (the candidate
    included, ``n`` runs). It continues ("is promoted") if it is among the top
    ``max(1, floor(n / reduction_factor))`` (ties favour it) and is cancelled otherwise. Decisions
    are asynchronous: early arrivals compete with fewer runs, so the first run at a rung always
    continues (same rule as Optuna's ``SuccessiveHalvingPruner``).

    Example::

        AshaPolicy(reduction_factor=3, min_intervals=1)    # rungs at intervals 1, 3, 9, 27, …
    """

    POLICY_NAME = "ASHA"

    def __init__(
        self,
        evaluation_interval: int = 1,
        delay_evaluation: int = 0,
        reduction_factor: int = 3,
        min_intervals: int = 1,
        max_intervals: int | None = None,
    ) -> None:
        owner = "AshaPolicy"
        self.reduction_factor = _int(owner, "reduction_factor", reduction_factor, 2)
        self.min_intervals = _int(owner, "min_intervals", min_intervals, 1)
        if max_intervals is not None:
            _int(owner, "max_intervals", max_intervals, min_intervals + 1)
        self.max_intervals = max_intervals
        props = {
            "evaluation_interval": _int(owner, "evaluation_interval", evaluation_interval, 1),
            "delay_evaluation": _int(owner, "delay_evaluation", delay_evaluation, 0),
            "reduction_factor": reduction_factor,
            "min_intervals": min_intervals,
            "max_intervals": max_intervals,
        }
        super().__init__(self.POLICY_NAME, props)

    def is_rung(self, k: int) -> bool:
        """Whether interval ``k`` is a rung of the ladder."""
        if k < self.min_intervals or (self.max_intervals is not None and k >= self.max_intervals):
            return False
        if k % self.min_intervals:
            return False
        ratio = k // self.min_intervals
        while ratio % self.reduction_factor == 0:
            ratio //= self.reduction_factor
        return ratio == 1

    def is_evaluation_interval(self, k: int) -> bool:
        """The base rule, restricted to rungs."""
        return super().is_evaluation_interval(k) and self.is_rung(k)

    def _decide(self, ev: _Evaluation) -> str:
        pool = [_best(s, ev.maximize) for s in ev.others.values() if len(s) >= ev.n]
        total = len(pool) + 1
        keep = max(1, total // self.reduction_factor)
        if _n_strictly_better(ev.y, pool, ev.maximize) >= keep:
            return (
                f"best {_f(ev.y)} is not in the top {keep} of {total} runs at rung {ev.n} "
                f"(ASHA reduction_factor={self.reduction_factor})"
            )
        return ""


_POLICIES: dict[str, type[EarlyTerminationPolicy]] = {
    c.POLICY_NAME.lower(): c
    for c in (
        BanditPolicy,
        MedianStoppingPolicy,
        TruncationSelectionPolicy,
        NoTerminationPolicy,
        AshaPolicy,
    )
}


def policy_from_json(data: Mapping[str, Any] | None) -> EarlyTerminationPolicy:
    """Rebuild a policy from its wire form (``None`` gives :class:`NoTerminationPolicy`).

    Example::

        policy_from_json({"name": "Bandit", "properties": {"evaluation_interval": 1,
                          "delay_evaluation": 0, "slack_factor": 0.1}})
    """
    if data is None:
        return NoTerminationPolicy()
    if not isinstance(data, Mapping) or "name" not in data:
        raise HyperDriveConfigException(f"Not an early-termination policy definition: {data!r}.")
    cls = _POLICIES.get(str(data["name"]).lower())
    if cls is None:
        raise HyperDriveConfigException(f"Unknown early-termination policy {data['name']!r}.")
    props = dict(data.get("properties") or {})
    try:
        return cls(**props)
    except TypeError as err:
        raise HyperDriveConfigException(
            f"Bad properties for policy {data['name']!r}: {err}"
        ) from err
