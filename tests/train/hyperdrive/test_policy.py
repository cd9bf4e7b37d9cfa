"""Early-termination policies: v1 wire forms, validation, worked examples, and formula properties.

The property tests restate each rule of the reference (section 7.3) in the plainest form and check
the policy against it on generated metric histories.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainyard.exceptions import HyperDriveConfigException
from trainyard.train.hyperdrive.policy import (
    AshaPolicy,
    BanditPolicy,
    EarlyTerminationPolicy,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    TruncationSelectionPolicy,
    policy_from_json,
)

# ------------------------------------------------------------------ worked examples (reference)


def test_bandit_slack_factor_example_cutoff_0_667() -> None:
    policy = BanditPolicy(slack_factor=0.2)
    leader = {"best": [0.5, 0.8]}
    assert policy.should_terminate([0.6, 0.66], leader, 2, "maximize")[0] is True
    assert policy.should_terminate([0.6, 0.67], leader, 2, "maximize") == (False, "")


def test_bandit_slack_amount_example_cutoff_0_6() -> None:
    policy = BanditPolicy(slack_amount=0.2)
    leader = {"best": [0.8]}
    assert policy.should_terminate([0.59], leader, 1, "maximize")[0] is True
    assert policy.should_terminate([0.61], leader, 1, "maximize") == (False, "")


def test_bandit_reason_names_child_interval_and_cutoff() -> None:
    policy = BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=3)
    others = {"HD_1": [0.8, 0.9, 0.92, 0.91]}
    stop, reason = policy.should_terminate(
        [0.5, 0.7, 0.8, 0.81], others, 4, "maximize", candidate_id=3
    )
    assert stop
    assert reason.startswith("child 3 cancelled at interval 4: 0.81 < 0.92/1.1")


def test_notebook_bandit_waits_for_delay_evaluation() -> None:
    policy = BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=3)
    others = {"a": [0.9, 0.95, 0.97]}
    for n in (1, 2):
        assert policy.should_terminate([0.1] * n, others, n, "maximize") == (False, "")
    assert policy.should_terminate([0.1] * 3, others, 3, "maximize")[0]


def test_bandit_minimize_is_symmetric() -> None:
    factor, amount = BanditPolicy(slack_factor=0.2), BanditPolicy(slack_amount=0.2)
    leader = {"a": [0.5, 1.0]}
    assert factor.should_terminate([0.61], leader, 1, "minimize")[0]  # 0.61 > 0.5*1.2
    assert not factor.should_terminate([0.59], leader, 1, "minimize")[0]
    assert amount.should_terminate([0.71], leader, 1, "minimize")[0]  # 0.71 > 0.5+0.2
    stop, reason = amount.should_terminate([0.69, 0.8], leader, 2, "minimize")
    assert not stop and reason == ""


def test_bandit_compares_only_values_up_to_the_interval() -> None:
    policy = BanditPolicy(slack_amount=0.1)
    # The other run reaches 0.99 only at interval 3; at interval 2 its best is 0.6.
    others = {"a": [0.5, 0.6, 0.99]}
    assert policy.should_terminate([0.5, 0.55], others, 2, "maximize") == (False, "")


def test_bandit_never_cancels_the_leader_even_with_negative_metrics() -> None:
    policy = BanditPolicy(slack_factor=0.2)
    assert policy.should_terminate([-1.0], {"a": [-3.0]}, 1, "maximize") == (False, "")
    assert policy.should_terminate([-3.0], {"a": [-1.0]}, 1, "minimize") == (False, "")


def test_median_stopping_example() -> None:
    policy = MedianStoppingPolicy()
    others = {"a": [0.9, 0.9], "b": [0.8, 0.8], "short": [0.99]}
    # averages at N=2: a 0.9, b 0.8, candidate 0.5 -> median 0.8; "short" has not reached N.
    stop, reason = policy.should_terminate([0.4, 0.6], others, 2, "maximize", candidate_id=7)
    assert stop and "child 7 cancelled at interval 2" in reason and "median 0.8" in reason
    assert policy.should_terminate([0.4, 0.85], others, 2, "maximize") == (False, "")


def test_median_constant_series_is_not_cancelled_by_rounding() -> None:
    policy = MedianStoppingPolicy()
    same = [0.1, 0.1, 0.1]
    assert policy.should_terminate(same, {"a": same, "b": same}, 3, "maximize") == (False, "")
    assert policy.should_terminate(same, {"a": same, "b": same}, 3, "minimize") == (False, "")


def test_truncation_cuts_worst_percentage_using_values_up_to_n() -> None:
    policy = TruncationSelectionPolicy(truncation_percentage=50)
    others = {"a": [0.9, 0.9], "b": [0.2, 0.95], "c": [0.8, 0.8]}
    # At N=1: a .9, c .8, b .2, candidate .5 -> n=4, cut 2 -> candidate (3rd) is cut.
    stop, reason = policy.should_terminate([0.5], others, 1, "maximize")
    assert stop and "worst 50% (2 of 4 runs)" in reason
    assert not policy.should_terminate([0.85], others, 1, "maximize")[0]


def test_truncation_count_is_floored_and_can_be_zero() -> None:
    policy = TruncationSelectionPolicy(truncation_percentage=20)
    others = {"a": [0.9], "b": [0.8], "c": [0.7]}  # n=4 -> floor(0.8) = 0 runs cut
    assert policy.should_terminate([0.1], others, 1, "maximize") == (False, "")
    others["d"] = [0.6]  # n=5 -> 1 run cut
    assert policy.should_terminate([0.1], others, 1, "maximize")[0]


def test_truncation_exclude_finished_jobs() -> None:
    policy = TruncationSelectionPolicy(50, exclude_finished_jobs=True)
    others = {"done": [0.9], "live": [0.1]}
    assert policy.should_terminate([0.5], others, 1, "maximize", finished={"done"}) == (False, "")
    keep_all = TruncationSelectionPolicy(50)
    # With "done": n=3, cut 1 -> "live" is the worst, the candidate survives.
    assert not keep_all.should_terminate([0.5], others, 1, "maximize", finished={"done"})[0]
    assert keep_all.should_terminate([0.05], others, 1, "maximize", finished={"done"})[0]


def test_asha_rungs_and_promotion() -> None:
    policy = AshaPolicy(reduction_factor=3, min_intervals=1, max_intervals=27)
    assert [k for k in range(1, 40) if policy.is_evaluation_interval(k)] == [1, 3, 9]
    assert not policy.should_terminate([0.1], {}, 1, "maximize")[0]  # first at the rung continues
    others = {"a": [0.9], "b": [0.8]}
    # n=3 -> keep max(1, 1) = top 1
    stop, reason = policy.should_terminate([0.5], others, 1, "maximize")
    assert stop and "not in the top 1 of 3 runs at rung 1" in reason
    assert not policy.should_terminate([0.95], others, 1, "maximize")[0]
    assert not policy.should_terminate([0.5, 0.4], others, 2, "maximize")[0]  # 2 is not a rung


def test_asha_rungs_with_min_intervals() -> None:
    policy = AshaPolicy(reduction_factor=2, min_intervals=3)
    assert [k for k in range(1, 30) if policy.is_rung(k)] == [3, 6, 12, 24]


def test_no_termination_never_terminates() -> None:
    policy = NoTerminationPolicy()
    assert not any(policy.is_evaluation_interval(k) for k in range(1, 50))
    assert policy.should_terminate([0.0] * 5, {"a": [1.0] * 5}, 5, "maximize") == (False, "")


@pytest.mark.parametrize(
    ("interval", "delay", "expected"),
    [(1, 0, [1, 2, 3, 4, 5, 6]), (2, 0, [2, 4, 6]), (1, 5, [5, 6]), (2, 3, [4, 6]), (5, 5, [5])],
)
def test_is_evaluation_interval(interval: int, delay: int, expected: list[int]) -> None:
    policy = MedianStoppingPolicy(evaluation_interval=interval, delay_evaluation=delay)
    assert [k for k in range(1, 7) if policy.is_evaluation_interval(k)] == expected


def test_candidate_shorter_than_interval_is_not_evaluated() -> None:
    policy = BanditPolicy(slack_amount=0.0)
    assert policy.should_terminate([0.1], {"a": [0.9, 0.9]}, 2, "maximize") == (False, "")


# ----------------------------------------------------------------------------- validation & JSON


@pytest.mark.parametrize(
    "build",
    [
        lambda: BanditPolicy(),
        lambda: BanditPolicy(slack_factor=0.1, slack_amount=0.1),
        lambda: BanditPolicy(slack_factor=-0.1),
        lambda: BanditPolicy(slack_amount="0.1"),
        lambda: BanditPolicy(evaluation_interval=1.0, slack_factor=0.1),
        lambda: BanditPolicy(evaluation_interval=True, slack_factor=0.1),
        lambda: BanditPolicy(evaluation_interval=0, slack_factor=0.1),
        lambda: BanditPolicy(delay_evaluation=-1, slack_factor=0.1),
        lambda: BanditPolicy(delay_evaluation="3", slack_factor=0.1),
        lambda: MedianStoppingPolicy(evaluation_interval=2.5),
        lambda: TruncationSelectionPolicy(0),
        lambda: TruncationSelectionPolicy(100),
        lambda: TruncationSelectionPolicy(50.0),
        lambda: TruncationSelectionPolicy(50, exclude_finished_jobs="yes"),
        lambda: AshaPolicy(reduction_factor=1),
        lambda: AshaPolicy(min_intervals=0),
        lambda: AshaPolicy(min_intervals=3, max_intervals=3),
    ],
)
def test_invalid_policies_raise(build: Callable[[], object]) -> None:
    with pytest.raises(HyperDriveConfigException):
        build()


def test_wire_forms_match_v1() -> None:
    assert BanditPolicy(evaluation_interval=2, slack_factor=0.1, delay_evaluation=3).to_json() == {
        "name": "Bandit",
        "properties": {"evaluation_interval": 2, "delay_evaluation": 3, "slack_factor": 0.1},
    }
    assert BanditPolicy(slack_amount=0.2).to_json()["properties"] == {
        "evaluation_interval": 1,
        "delay_evaluation": 0,
        "slack_amount": 0.2,
    }
    assert MedianStoppingPolicy(delay_evaluation=5).to_json() == {
        "name": "MedianStopping",
        "properties": {"evaluation_interval": 1, "delay_evaluation": 5},
    }
    assert TruncationSelectionPolicy(20).to_json() == {
        "name": "TruncationSelection",
        "properties": {
            "evaluation_interval": 1,
            "delay_evaluation": 0,
            "truncation_percentage": 20,
            "exclude_finished_jobs": False,
        },
    }
    assert NoTerminationPolicy().to_json() == {"name": "Default"}
    assert AshaPolicy().to_json()["name"] == "ASHA"


@pytest.mark.parametrize(
    "policy",
    [
        BanditPolicy(evaluation_interval=2, slack_factor=0.1, delay_evaluation=3),
        BanditPolicy(slack_amount=0.5),
        MedianStoppingPolicy(1, 5),
        TruncationSelectionPolicy(30, 2, 4, exclude_finished_jobs=True),
        NoTerminationPolicy(),
        AshaPolicy(evaluation_interval=1, reduction_factor=4, min_intervals=2, max_intervals=64),
    ],
)
def test_policy_from_json_round_trips(policy: EarlyTerminationPolicy) -> None:
    rebuilt = policy_from_json(policy.to_json())
    assert rebuilt == policy and type(rebuilt) is type(policy)
    assert rebuilt.to_json() == policy.to_json()


def test_policy_from_json_none_and_errors() -> None:
    assert isinstance(policy_from_json(None), NoTerminationPolicy)
    assert isinstance(
        policy_from_json({"name": "bandit", "properties": {"slack_factor": 0.1}}), BanditPolicy
    )
    with pytest.raises(HyperDriveConfigException):
        policy_from_json({"name": "Nope"})
    with pytest.raises(HyperDriveConfigException):
        policy_from_json({"name": "Bandit", "properties": {"slack_factor": 0.1, "bogus": 1}})
    with pytest.raises(HyperDriveConfigException):
        policy_from_json({"properties": {}})


def test_bad_goal_or_interval_raise() -> None:
    with pytest.raises(HyperDriveConfigException):
        BanditPolicy(slack_factor=0.1).should_terminate([1.0], {}, 1, "up")
    with pytest.raises(HyperDriveConfigException):
        BanditPolicy(slack_factor=0.1).should_terminate([1.0], {}, 0, "maximize")


# ------------------------------------------------------------------- properties against formulas

# Dyadic values (multiples of 1/4) keep sums and means exact, so boundary cases are decided the
# same way by the policy and by the plain formulas below.
value = st.integers(-400, 400).map(lambda i: i / 4)
positive = st.integers(1, 400).map(lambda i: i / 4)
goal = st.sampled_from(["maximize", "minimize"])


@st.composite
def histories(draw: Any, values: st.SearchStrategy[float] = value) -> tuple:
    candidate = draw(st.lists(values, min_size=1, max_size=8))
    others = draw(
        st.dictionaries(
            st.text("abcdef", min_size=1, max_size=3), st.lists(values, max_size=10), max_size=6
        )
    )
    n = draw(st.integers(1, len(candidate)))
    return candidate, others, n


def best(values: list[float], g: str) -> float:
    return max(values) if g == "maximize" else min(values)


def worse(a: float, b: float, g: str) -> bool:
    return a < b if g == "maximize" else a > b


@settings(max_examples=300, deadline=None)
@given(h=histories(positive), g=goal, sf=st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0]))
def test_bandit_slack_factor_formula(h: tuple, g: str, sf: float) -> None:
    candidate, others, n = h
    y = best(candidate[:n], g)
    leader = best([y] + [best(s[:n], g) for s in others.values() if s], g)
    cutoff = leader / (1 + sf) if g == "maximize" else leader * (1 + sf)
    expected = worse(y, cutoff, g)
    assert BanditPolicy(slack_factor=sf).should_terminate(candidate, others, n, g)[0] == expected


@settings(max_examples=300, deadline=None)
@given(h=histories(), g=goal, sa=st.sampled_from([0.0, 0.25, 1.0, 5.0]), delay=st.integers(0, 4))
def test_bandit_slack_amount_formula(h: tuple, g: str, sa: float, delay: int) -> None:
    candidate, others, n = h
    y = best(candidate[:n], g)
    leader = best([y] + [best(s[:n], g) for s in others.values() if s], g)
    expected = n >= delay and worse(y, leader - sa if g == "maximize" else leader + sa, g)
    policy = BanditPolicy(slack_amount=sa, delay_evaluation=delay)
    assert policy.should_terminate(candidate, others, n, g)[0] == expected


@settings(max_examples=300, deadline=None)
@given(h=histories(), g=goal, every=st.integers(1, 3))
def test_median_stopping_formula(h: tuple, g: str, every: int) -> None:
    candidate, others, n = h
    reached = [candidate] + [s for s in others.values() if len(s) >= n]
    median = float(np.median([np.mean(s[:n]) for s in reached]))
    expected = n % every == 0 and worse(best(candidate[:n], g), median, g)
    policy = MedianStoppingPolicy(evaluation_interval=every)
    assert policy.should_terminate(candidate, others, n, g)[0] == expected


@settings(max_examples=300, deadline=None)
@given(h=histories(), g=goal, pct=st.integers(1, 99), exclude=st.booleans(), data=st.data())
def test_truncation_selection_formula(h: tuple, g: str, pct: int, exclude: bool, data: Any) -> None:
    candidate, others, n = h
    finished = data.draw(st.sets(st.sampled_from(sorted(others)))) if others else set()
    pool = [
        best(s[:n], g)
        for name, s in others.items()
        if len(s) >= n and not (exclude and name in finished)
    ]
    y = best(candidate[:n], g)
    ranked = sorted([*pool, y], reverse=(g == "maximize"))  # best first
    cut = math.floor(Fraction(pct, 100) * len(ranked))
    expected = cut > 0 and worse(y, ranked[len(ranked) - cut - 1], g)
    policy = TruncationSelectionPolicy(pct, exclude_finished_jobs=exclude)
    assert policy.should_terminate(candidate, others, n, g, finished=finished)[0] == expected


@settings(max_examples=300, deadline=None)
@given(h=histories(), g=goal, eta=st.integers(2, 4), low=st.integers(1, 2))
def test_asha_formula(h: tuple, g: str, eta: int, low: int) -> None:
    candidate, others, n = h
    rungs = {low * eta**i for i in range(10)}
    pool = [best(s[:n], g) for s in others.values() if len(s) >= n]
    y = best(candidate[:n], g)
    ranked = sorted([*pool, y], reverse=(g == "maximize"))
    keep = max(1, len(ranked) // eta)
    expected = n in rungs and worse(y, ranked[keep - 1], g)
    policy = AshaPolicy(reduction_factor=eta, min_intervals=low)
    assert policy.should_terminate(candidate, others, n, g)[0] == expected


POLICIES = [
    BanditPolicy(slack_amount=0.5),
    MedianStoppingPolicy(),
    TruncationSelectionPolicy(40),
    AshaPolicy(reduction_factor=2),
]


@settings(max_examples=200, deadline=None)
@given(h=histories(), index=st.integers(0, len(POLICIES) - 1))
def test_minimize_mirrors_maximize_on_negated_metrics(h: tuple, index: int) -> None:
    candidate, others, n = h
    policy = POLICIES[index]
    negated = {k: [-v for v in s] for k, s in others.items()}
    up = policy.should_terminate(candidate, others, n, "maximize")[0]
    down = policy.should_terminate([-v for v in candidate], negated, n, "minimize")[0]
    assert up == down


@settings(max_examples=200, deadline=None)
@given(h=histories(), index=st.integers(0, len(POLICIES) - 1), g=goal)
def test_reason_is_empty_exactly_when_not_terminating(h: tuple, index: int, g: str) -> None:
    candidate, others, n = h
    stop, reason = POLICIES[index].should_terminate(candidate, others, n, g, candidate_id=5)
    assert (reason == "") == (not stop)
    if stop:
        assert reason.startswith(f"child 5 cancelled at interval {n}: ")
