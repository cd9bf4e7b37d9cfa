"""Samplers: v1 wire forms and validation, and the suggestion-generator contract for each engine."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainyard.exceptions import HyperDriveConfigException, ValidationError
from trainyard.train.hyperdrive.parameter_expressions import (
    choice,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from trainyard.train.hyperdrive.sampling import (
    BayesianParameterSampling,
    GridParameterSampling,
    HyperParameterSampling,
    RandomParameterSampling,
    SuggestionGenerator,
    TPEParameterSampling,
    sampling_from_json,
)

ALL_EXPRESSIONS = {
    "--c": choice(16, 32, 64),
    "--r": randint(5),
    "--u": uniform(0.05, 0.1),
    "--qu": quniform(32, 512, 32),
    "--lu": loguniform(-6, -1),
    "--qlu": qloguniform(2, 6, 1),
    "--n": normal(10, 3),
    "--qn": qnormal(100, 10, 5),
    "--ln": lognormal(0, 1),
    "--qln": qlognormal(3, 1, 2),
}


def drain(gen: SuggestionGenerator, batch: int = 3, limit: int = 10_000) -> list[dict[str, Any]]:
    """Suggest until the generator runs dry, completing every trial."""
    out: list[dict[str, Any]] = []
    while len(out) < limit:
        got = gen.suggest(batch)
        if not got:
            break
        for number, hp in got:
            out.append(hp)
            gen.observe(number, float(len(out)), "completed")
    return out


def key(hp: dict[str, Any]) -> str:
    return json.dumps(sorted(hp.items()))


# ---------------------------------------------------------------------------- wire forms / JSON


def test_wire_forms_match_v1() -> None:
    space = {"--bs": choice(16, 32), "--lr": uniform(0.01, 0.1)}
    assert RandomParameterSampling(space).to_json() == {"name": "RANDOM", "parameter_space": space}
    assert RandomParameterSampling(space, seed=3).to_json()["properties"] == {"rngSeed": 3}
    assert GridParameterSampling({"--bs": choice(16, 32)}).to_json() == {
        "name": "GRID",
        "parameter_space": {"--bs": ["choice", [[16, 32]]]},
    }
    assert BayesianParameterSampling(space).to_json()["name"] == "BayesianOptimization"
    assert TPEParameterSampling(space, seed=1).to_json()["name"] == "TPE"


@pytest.mark.parametrize(
    "sampling",
    [
        RandomParameterSampling(ALL_EXPRESSIONS, seed=5),
        GridParameterSampling({"--a": choice(1, 2), "--b": choice("x", "y")}),
        BayesianParameterSampling(
            {"--a": choice(1, 2), "--u": uniform(0, 1), "--q": quniform(0, 10, 2)}
        ),
        TPEParameterSampling(ALL_EXPRESSIONS, properties={"n_startup_trials": 3}, seed=2),
    ],
)
def test_sampling_from_json_round_trips(sampling: HyperParameterSampling) -> None:
    rebuilt = sampling_from_json(json.loads(json.dumps(sampling.to_json())))
    assert type(rebuilt) is type(sampling) and rebuilt == sampling


def test_sampling_from_json_errors() -> None:
    with pytest.raises(HyperDriveConfigException):
        sampling_from_json({"name": "SOBOL", "parameter_space": {"--a": choice(1)}})
    with pytest.raises(HyperDriveConfigException):
        sampling_from_json({"name": "RANDOM"})
    with pytest.raises(HyperDriveConfigException):
        sampling_from_json({"name": "RANDOM", "parameter_space": {"--a": ["uniform", [1, 0]]}})


@pytest.mark.parametrize("space", [{}, None, {"": choice(1)}, {"--a": [1, 2]}, {"--a": "uniform"}])
def test_bad_spaces_raise(space: Any) -> None:
    with pytest.raises(HyperDriveConfigException):
        RandomParameterSampling(space)


def test_seed_and_rngseed_must_agree() -> None:
    with pytest.raises(HyperDriveConfigException):
        RandomParameterSampling({"--a": choice(1)}, properties={"rngSeed": 1}, seed=2)
    with pytest.raises(HyperDriveConfigException):
        RandomParameterSampling({"--a": choice(1)}, properties={"rngSeed": "x"})


# ---------------------------------------------------------------------------------------- grid


def test_grid_is_the_full_cartesian_product_in_order_without_repeats() -> None:
    space = {"--lr": choice(0.1, 1.0, 0.1), "--bs": choice(16, 32), "--act": choice("relu", "tanh")}
    got = drain(GridParameterSampling(space).create_generator("maximize"))
    expected = [
        {"--lr": lr, "--bs": bs, "--act": act}
        for lr, bs, act in itertools.product([0.1, 1.0], [16, 32], ["relu", "tanh"])
    ]
    assert got == expected


@pytest.mark.parametrize(
    "expr",
    [
        uniform(0, 1),
        randint(3),
        quniform(0, 10, 1),
        normal(0, 1),
        choice(True, False),
        choice([[1], [2]]),
    ],
)
def test_grid_rejects_everything_but_valid_choice(expr: list) -> None:
    with pytest.raises(HyperDriveConfigException):
        GridParameterSampling({"--x": expr})


def test_grid_rejects_mixed_string_choice() -> None:
    with pytest.raises(HyperDriveConfigException, match="all or none"):
        GridParameterSampling({"--x": choice("a", 1)})


def test_grid_skips_priors_and_exhausts() -> None:
    gen = GridParameterSampling({"--a": choice(1, 2, 3)}).create_generator()
    gen.add_prior({"--a": 2}, 0.5)
    assert [hp for _, hp in gen.suggest(10)] == [{"--a": 1}, {"--a": 3}]
    assert gen.is_exhausted() and gen.suggest(1) == []


# -------------------------------------------------------------------------------------- random


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    batch=st.integers(1, 7),
    seed=st.integers(0, 1000),
)
def test_random_finite_space_never_repeats_and_exhausts(
    sizes: list[int], batch: int, seed: int
) -> None:
    space: dict[str, Any] = {f"--p{i}": choice(*range(n)) for i, n in enumerate(sizes)}
    space["--seed"] = randint(2)
    total = math.prod(sizes) * 2
    gen = RandomParameterSampling(space, seed=seed).create_generator("minimize")
    got = drain(gen, batch=batch)
    assert len(got) == total
    assert len({key(hp) for hp in got}) == total
    assert gen.is_exhausted() and gen.suggest(3) == []


def test_random_quantised_finite_space_exhausts() -> None:
    space = {"--q": quniform(0, 10, 5), "--l": qloguniform(0, math.log(3), 1)}  # 3 x 3 points
    got = drain(RandomParameterSampling(space, seed=0).create_generator())
    assert len(got) == 9 and len({key(hp) for hp in got}) == 9


def test_random_is_reproducible_with_a_seed_and_values_are_plain_python() -> None:
    def run(sampling: RandomParameterSampling, seed: int | None = None) -> list:
        return sampling.create_generator("maximize", seed=seed).suggest(20)

    seeded = RandomParameterSampling(ALL_EXPRESSIONS, seed=11)
    same = RandomParameterSampling(ALL_EXPRESSIONS, properties={"rngSeed": 11})
    assert run(seeded) == run(same)
    assert run(seeded) != run(seeded, seed=12)
    for _, hp in run(seeded):
        assert list(hp) == list(ALL_EXPRESSIONS)
        assert all(type(v) in (int, float, str) for v in hp.values())
        assert hp["--c"] in (16, 32, 64) and 0 <= hp["--r"] < 5
        assert 0.05 <= hp["--u"] <= 0.1 and math.exp(-6) <= hp["--lu"] <= math.exp(-1)
        assert hp["--qu"] % 32 == 0 and hp["--qln"] % 2 == 0 and hp["--ln"] > 0


def test_random_continuous_space_is_not_exhausted() -> None:
    gen = RandomParameterSampling({"--u": uniform(0, 1)}, seed=0).create_generator()
    assert len(gen.suggest(50)) == 50 and not gen.is_exhausted()


# ------------------------------------------------------------------------------ generator API


def test_generator_contract_errors_and_idempotent_observe() -> None:
    gen = RandomParameterSampling({"--a": choice(1, 2, 3)}, seed=0).create_generator()
    with pytest.raises(ValidationError):
        gen.suggest(-1)
    with pytest.raises(ValidationError):
        gen.observe(0, 1.0, "completed")  # nothing handed out yet
    [(number, _)] = gen.suggest(1)
    with pytest.raises(ValidationError):
        gen.observe(number, 1.0, "running")
    gen.observe(number, 1.0, "Completed")
    gen.observe(number, 2.0, "completed")  # ignored
    with pytest.raises(HyperDriveConfigException):
        gen.add_prior({"--a": 4}, 0.1)
    with pytest.raises(HyperDriveConfigException):
        gen.add_prior({"--b": 1}, 0.1)
    with pytest.raises(HyperDriveConfigException):
        RandomParameterSampling({"--a": choice(1)}).create_generator(goal="up")


def test_add_pending_and_priors_rebuild_a_generator() -> None:
    space = {"--a": choice(1, 2, 3, 4), "--b": choice("x", "y")}
    first = RandomParameterSampling(space, seed=4).create_generator()
    history = first.suggest(5)
    rebuilt = RandomParameterSampling(space, seed=4).create_generator()
    for _, hp in history[:3]:
        rebuilt.add_prior(hp, 0.5)
    numbers = [rebuilt.add_pending(hp) for _, hp in history[3:]]
    assert numbers == [0, 1]
    rebuilt.observe(numbers[0], 0.7, "completed")
    rest = drain(rebuilt)
    assert len(rest) == 3
    assert {key(hp) for hp in rest}.isdisjoint({key(hp) for _, hp in history})


# ------------------------------------------------------------------------------------ bayesian


@pytest.mark.parametrize(
    "expr",
    [loguniform(0, 1), randint(3), normal(0, 1), qloguniform(0, 2, 1), lognormal(0, 1)],
)
def test_bayesian_accepts_only_choice_uniform_quniform(expr: list) -> None:
    with pytest.raises(HyperDriveConfigException, match="supports only"):
        BayesianParameterSampling({"--x": expr})


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (quniform(0.0, 10, 1), "int"),
        (quniform(0, 10, 2.0), "int"),
        (quniform(0, 200001, 2), "Too many discrete points"),
        (choice("a", 1), "all or none"),
        (choice([[1, 2], [3]]), "'int', 'string' or 'float'"),
    ],
)
def test_bayesian_v1_validators(expr: list, message: str) -> None:
    with pytest.raises(HyperDriveConfigException, match=message):
        BayesianParameterSampling({"--x": expr})


def test_bayesian_space_must_be_non_empty_and_has_no_early_termination() -> None:
    with pytest.raises(HyperDriveConfigException):
        BayesianParameterSampling({})
    assert BayesianParameterSampling.SUPPORTS_EARLY_TERMINATION is False
    assert RandomParameterSampling.SUPPORTS_EARLY_TERMINATION is True
    assert quniform(0, 200000, 2)  # exactly 100000 points is allowed
    BayesianParameterSampling({"--x": quniform(0, 200000, 2)})


def test_bayesian_budget_warnings() -> None:
    sampling = BayesianParameterSampling({"--a": uniform(0, 1), "--b": choice(1, 2)})
    with pytest.warns(UserWarning) as record:
        messages = sampling.validate_budget(max_total_runs=39, max_concurrent_runs=21)
    assert len(messages) == 2 and [str(w.message) for w in record] == messages
    assert "Recommended value:40" in messages[0] and "Current max concurrent runs:21" in messages[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sampling.validate_budget(40, 20) == []
    with pytest.warns(UserWarning):
        assert len(sampling.validate_budget(40, None)) == 1  # None means max_total_runs (40 > 20)


def objective(hp: dict[str, Any]) -> float:
    """A smooth synthetic objective (to maximise) with its optimum at x=0.7, y=40, c='b'."""
    score = -((hp["--x"] - 0.7) ** 2) - ((hp["--y"] - 40) / 100) ** 2
    return score + (0.1 if hp["--c"] == "b" else 0.0)


def run_sweep(gen: SuggestionGenerator, budget: int, concurrency: int, sign: float) -> list[float]:
    values: list[float] = []
    while len(values) < budget:
        for number, hp in gen.suggest(min(concurrency, budget - len(values))):
            value = objective(hp)
            values.append(value)
            gen.observe(number, sign * value, "completed")
    return values


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("goal", ["maximize", "minimize"])
def test_bayesian_improves_on_a_synthetic_objective(seed: int, goal: str) -> None:
    space = {"--x": uniform(0, 1), "--y": quniform(0, 100, 5), "--c": choice("a", "b", "c")}
    gen = BayesianParameterSampling(space).create_generator(goal, seed=seed)
    sign = 1.0 if goal == "maximize" else -1.0
    values = run_sweep(gen, budget=40, concurrency=2, sign=sign)
    first, last = values[:10], values[-10:]
    assert sum(last) / 10 > sum(first) / 10 + 0.05
    assert max(values) > -0.02 + 0.1  # close to the optimum (0.1)


@pytest.mark.parametrize("seed", [0, 1])
def test_tpe_improves_on_log_and_normal_expressions(seed: int) -> None:
    space = {"--lr": loguniform(-9, 0), "--m": normal(0, 1), "--k": randint(3)}
    sampling = TPEParameterSampling(space, properties={"n_startup_trials": 8}, seed=seed)
    gen = sampling.create_generator("minimize")
    losses = []
    for _ in range(40):
        [(number, hp)] = gen.suggest(1)
        loss = (math.log(hp["--lr"]) + 4) ** 2 + (hp["--m"] - 0.5) ** 2 + hp["--k"]
        losses.append(loss)
        gen.observe(number, loss, "completed")
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 1.0


def test_tpe_priors_steer_the_model() -> None:
    space = {"--x": uniform(0, 1)}
    gen = TPEParameterSampling(space, properties={"n_startup_trials": 5}, seed=0).create_generator()
    for i in range(40):
        x = (i + 0.5) / 40
        gen.add_prior({"--x": x}, -abs(x - 0.8))
    deviations = sorted(abs(hp["--x"] - 0.8) for _, hp in gen.suggest(10))
    assert deviations[5] < 0.08  # median; for uniform draws it would be about 0.3


def test_bayesian_finite_space_never_repeats_and_exhausts() -> None:
    space = {"--a": choice(1, 2, 3), "--q": quniform(0, 10, 5)}
    gen = BayesianParameterSampling(space).create_generator("maximize", seed=0)
    got = []
    while batch := gen.suggest(2):
        for number, hp in batch:
            got.append(hp)
            gen.observe(number, hp["--a"] + hp["--q"], "completed")
    assert len(got) == 9 and len({key(hp) for hp in got}) == 9 and gen.is_exhausted()


def test_optuna_generators_handle_failures_cancellations_priors_and_pending() -> None:
    space = {"--a": choice(1, 2, 3), "--u": uniform(0, 1)}
    for sampling in (BayesianParameterSampling(space), TPEParameterSampling(space, seed=0)):
        gen = sampling.create_generator("maximize", seed=3)
        gen.add_prior({"--a": 1, "--u": 0.5}, 0.3)
        gen.add_prior({"--a": 2, "--u": 0.5}, None)
        gen.add_prior({"--a": 2, "--u": 0.75}, 0.2, "canceled")
        gen.add_prior({"--a": 3, "--u": 0.75}, 0.1, "failed")
        with pytest.raises(ValidationError):
            gen.add_prior({"--a": 3, "--u": 0.5}, 0.1, "running")
        pending = gen.add_pending({"--a": 3, "--u": 0.25})
        batch = gen.suggest(4)
        assert len({key(hp) for _, hp in batch}) == 4
        outcomes = [
            (0.4, "completed"),
            (None, "failed"),
            (0.1, "canceled"),
            (float("nan"), "completed"),
        ]
        for (number, _), (value, state) in zip(batch, outcomes, strict=True):
            gen.observe(number, value, state)
        gen.observe(pending, 0.9, "completed")
        assert len(gen.suggest(3)) == 3


def test_tpe_accepts_every_expression_and_priors_from_its_own_suggestions() -> None:
    gen = TPEParameterSampling(
        ALL_EXPRESSIONS, properties={"n_startup_trials": 2}, seed=1
    ).create_generator()
    batch = gen.suggest(6)
    for number, hp in batch:
        assert list(hp) == list(ALL_EXPRESSIONS)
        assert all(type(v) in (int, float, str) for v in hp.values())
        gen.observe(number, hp["--u"], "completed")
    rebuilt = TPEParameterSampling(ALL_EXPRESSIONS, seed=1).create_generator()
    for _, hp in batch:
        rebuilt.add_prior(hp, hp["--u"])
    assert len(rebuilt.suggest(2)) == 2


def test_importing_samplers_and_policies_does_not_import_optuna_or_numpy() -> None:
    code = (
        "import sys, trainyard.train.hyperdrive.sampling, trainyard.train.hyperdrive.policy; "
        "print('optuna' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
