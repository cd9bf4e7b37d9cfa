"""``HyperDriveConfig``: v1's validation rules, argument de-duplication, and submit-time checks.

Nothing here starts a process: the submit tests fail validation before anything is stored.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

import trainyard.train.hyperdrive as hyperdrive
from trainyard.core import Experiment, ScriptRunConfig, Workspace
from trainyard.core.run import _RUN_TYPES
from trainyard.core.runconfig import RunConfiguration
from trainyard.exceptions import HyperDriveConfigException, UserErrorException
from trainyard.testing.fixtures import unique_name
from trainyard.train.dnn import Chainer
from trainyard.train.estimator import Estimator
from trainyard.train.hyperdrive import (
    BanditPolicy,
    BayesianParameterSampling,
    GridParameterSampling,
    HyperDriveConfig,
    HyperDriveRunConfig,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    PrimaryMetricGoal,
    RandomParameterSampling,
    choice,
    uniform,
)
from trainyard.train.hyperdrive.runconfig import MAX_DURATION_MINUTES

SPACE = {"--batchsize": choice(128, 256), "--epochs": choice(5, 10, 20, 40)}


@pytest.fixture
def src(tmp_path: Path) -> ScriptRunConfig:
    (tmp_path / "train.py").write_text("print('hi')\n")
    return ScriptRunConfig(
        source_directory=tmp_path, script="train.py", arguments=["--batchsize", 128, "--lr", 0.1]
    )


def make(template: ScriptRunConfig, **overrides: Any) -> HyperDriveConfig:
    kwargs: dict[str, Any] = {
        "run_config": template,
        "hyperparameter_sampling": RandomParameterSampling(SPACE),
        "primary_metric_name": "Accuracy",
        "primary_metric_goal": PrimaryMetricGoal.MAXIMIZE,
        "max_total_runs": 8,
    }
    kwargs.update(overrides)
    return HyperDriveConfig(**kwargs)


# ---------------------------------------------------------------------------------------------
# goal, defaults, wire form


def test_primary_metric_goal_values_and_parsing() -> None:
    assert PrimaryMetricGoal.MAXIMIZE.value == "MAXIMIZE"
    assert PrimaryMetricGoal.MINIMIZE == "MINIMIZE"
    assert PrimaryMetricGoal.from_str("minimize") is PrimaryMetricGoal.MINIMIZE
    with pytest.raises(HyperDriveConfigException):
        PrimaryMetricGoal.from_str("up")


def test_notebook_config_defaults_and_wire_form(src: ScriptRunConfig) -> None:
    policy = BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=3)
    config = make(src, policy=policy, max_concurrent_runs=4)
    assert config.primary_metric_config == {"name": "Accuracy", "goal": "maximize"}
    assert (config.max_total_runs, config.max_concurrent_runs) == (8, 4)
    assert config.max_duration_minutes == MAX_DURATION_MINUTES == 10080
    assert config.policy is policy and config.run_config is src and config.estimator is None
    tags = config.parent_tags({"k": "v"})
    assert json.loads(tags["generator_config"])["name"] == "RANDOM"
    assert json.loads(tags["primary_metric_config"]) == {"name": "Accuracy", "goal": "maximize"}
    assert json.loads(tags["policy_config"])["name"] == "Bandit"
    assert (tags["max_total_jobs"], tags["max_concurrent_jobs"]) == ("8", "4")
    assert json.loads(tags["platform_config"]) == {"k": "v"}


def test_minimize_goal_accepts_strings(src: ScriptRunConfig) -> None:
    config = make(src, primary_metric_goal="minimize")
    assert config.primary_metric_goal is PrimaryMetricGoal.MINIMIZE
    assert config.primary_metric_config["goal"] == "minimize"


def test_max_concurrent_none_means_max_total(src: ScriptRunConfig) -> None:
    assert make(src, max_total_runs=30).max_concurrent_runs == 30


def test_policy_none_is_no_termination(src: ScriptRunConfig) -> None:
    assert isinstance(make(src).policy, NoTerminationPolicy)


# ---------------------------------------------------------------------------------------------
# limits


@pytest.mark.parametrize("value", [0, 1001, -1, 2.5, True, "8"])
def test_max_total_runs_must_be_1_to_1000(src: ScriptRunConfig, value: Any) -> None:
    with pytest.raises(HyperDriveConfigException, match="max_total_runs"):
        make(src, max_total_runs=value)


@pytest.mark.parametrize("value", [1, 1000])
def test_max_total_runs_bounds_are_inclusive(src: ScriptRunConfig, value: int) -> None:
    assert make(src, max_total_runs=value).max_total_runs == value


@pytest.mark.parametrize("value", [0, 101, 1.5, False])
def test_max_concurrent_runs_must_be_1_to_100(src: ScriptRunConfig, value: Any) -> None:
    with pytest.raises(HyperDriveConfigException, match="max_concurrent_runs"):
        make(src, max_concurrent_runs=value)


def test_long_duration_warns_and_is_clamped(src: ScriptRunConfig) -> None:
    with pytest.warns(UserWarning, match="max_duration_minutes=20000"):
        config = make(src, max_duration_minutes=20000)
    assert config.max_duration_minutes == 10080


@pytest.mark.parametrize("value", [0, -5, float("nan"), "60"])
def test_duration_must_be_positive(src: ScriptRunConfig, value: Any) -> None:
    with pytest.raises(HyperDriveConfigException, match="max_duration_minutes"):
        make(src, max_duration_minutes=value)


def test_primary_metric_name_must_be_given(src: ScriptRunConfig) -> None:
    with pytest.raises(HyperDriveConfigException, match="primary_metric_name"):
        make(src, primary_metric_name=" ")


def test_sampling_must_be_a_sampler(src: ScriptRunConfig) -> None:
    with pytest.raises(HyperDriveConfigException, match="hyperparameter_sampling"):
        make(src, hyperparameter_sampling=SPACE)


def test_custom_run_id_is_checked(src: ScriptRunConfig) -> None:
    assert make(src, custom_run_id="my-sweep_1").custom_run_id == "my-sweep_1"
    with pytest.raises(HyperDriveConfigException, match="custom_run_id"):
        make(src, custom_run_id="../evil")


# ---------------------------------------------------------------------------------------------
# policy and sampler combinations


def test_bayesian_refuses_early_termination(src: ScriptRunConfig) -> None:
    bayes = BayesianParameterSampling({"--lr": uniform(0.01, 0.1)})
    with (
        pytest.raises(HyperDriveConfigException, match="No early termination policy"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        make(src, hyperparameter_sampling=bayes, policy=MedianStoppingPolicy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = make(src, hyperparameter_sampling=bayes, policy=NoTerminationPolicy())
    assert isinstance(config.policy, NoTerminationPolicy)


def test_bayesian_budget_warnings(src: ScriptRunConfig) -> None:
    bayes = BayesianParameterSampling({"--lr": uniform(0.01, 0.1), "--bs": choice(16, 32)})
    with pytest.warns(UserWarning) as caught:
        make(src, hyperparameter_sampling=bayes, max_total_runs=10, max_concurrent_runs=30)
    text = " ".join(str(w.message) for w in caught)
    assert "Recommended value:40" in text and "Current max concurrent runs:30" in text


def test_policy_must_be_a_policy(src: ScriptRunConfig) -> None:
    with pytest.raises(HyperDriveConfigException, match="policy"):
        make(src, policy="bandit")


# ---------------------------------------------------------------------------------------------
# templates and argument passing


def test_exactly_one_template(src: ScriptRunConfig, tmp_path: Path) -> None:
    est = Estimator(source_directory=tmp_path, entry_script="train.py")
    with pytest.raises(HyperDriveConfigException, match="exactly one"):
        make(src, estimator=est)
    with pytest.raises(HyperDriveConfigException, match="exactly one"):
        make(None)  # type: ignore[arg-type]
    with pytest.raises(HyperDriveConfigException, match="not supported"):
        make(None, pipeline=object())  # type: ignore[arg-type]
    with pytest.raises(HyperDriveConfigException, match="ScriptRunConfig"):
        make(RunConfiguration())  # type: ignore[arg-type]
    with pytest.raises(HyperDriveConfigException, match="Estimator"):
        make(None, estimator=object())  # type: ignore[arg-type]


def test_estimator_duplicates_are_dropped_with_a_warning(tmp_path: Path) -> None:
    est = Chainer(
        source_directory=tmp_path,
        entry_script="train.py",
        script_params={"--epochs": 10, "batchsize": 128, "--output_dir": "./outputs"},
        compute_target="local",
    )
    with pytest.warns(UserWarning, match="HyperDrive parameter space overrides") as caught:
        config = HyperDriveConfig(
            estimator=est,
            hyperparameter_sampling=RandomParameterSampling(SPACE),
            primary_metric_name="Accuracy",
            primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
            max_total_runs=8,
        )
    assert "batchsize" in str(caught[0].message) and "--epochs" in str(caught[0].message)
    assert config.run_template().arguments == ["--output_dir", "./outputs"]
    assert est.script_params == {"--epochs": 10, "batchsize": 128, "--output_dir": "./outputs"}


def test_script_run_config_template_keeps_its_arguments(src: ScriptRunConfig) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = make(src)
    assert config.run_template() is src
    assert src.arguments == ["--batchsize", 128, "--lr", 0.1]


def test_deprecated_alias_still_works(src: ScriptRunConfig) -> None:
    with pytest.warns(DeprecationWarning, match="HyperDriveRunConfig is deprecated"):
        config = HyperDriveRunConfig(
            run_config=src,
            hyperparameter_sampling=GridParameterSampling(SPACE),
            primary_metric_name="Accuracy",
            primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
            max_total_runs=8,
        )
    assert isinstance(config, HyperDriveConfig)


# ---------------------------------------------------------------------------------------------
# warm start arguments (checked against real runs of a workspace)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws")


def test_resume_from_takes_at_most_five_hyperdrive_runs(
    ws: Workspace, src: ScriptRunConfig
) -> None:
    interactive = Experiment(ws, "e").start_logging()
    with pytest.raises(HyperDriveConfigException, match="at most 5"):
        make(src, resume_from=[interactive] * 6)
    with pytest.raises(HyperDriveConfigException, match="HyperDrive runs"):
        make(src, resume_from=[interactive])


def test_resume_child_runs_must_be_sweep_children(ws: Workspace, src: ScriptRunConfig) -> None:
    run = Experiment(ws, "e").start_logging()
    with pytest.raises(HyperDriveConfigException, match="more than max_total_runs"):
        make(src, max_total_runs=1, resume_child_runs=[run, run])
    with pytest.raises(HyperDriveConfigException, match="twice"):
        make(src, resume_child_runs=[run, run])
    with pytest.raises(HyperDriveConfigException, match="not a child run"):
        make(src, resume_child_runs=[run])


# ---------------------------------------------------------------------------------------------
# submit validates the template before storing anything


def test_submit_with_a_missing_script_stores_nothing(ws: Workspace, tmp_path: Path) -> None:
    template = ScriptRunConfig(source_directory=tmp_path, script="missing.py")
    exp = Experiment(ws, "nothing")
    with pytest.raises(UserErrorException, match=r"missing\.py"):
        exp.submit(make(template))
    assert list(exp.get_runs(include_children=True)) == []


def test_submit_with_a_bad_argument_stores_nothing(ws: Workspace, src: ScriptRunConfig) -> None:
    src.arguments.append(object())
    exp = Experiment(ws, "nothing")
    with pytest.raises(UserErrorException, match="Argument 4"):
        exp.submit(make(src))
    assert list(exp.get_runs(include_children=True)) == []


# ---------------------------------------------------------------------------------------------
# package surface


def test_package_exports_are_sorted_and_importable() -> None:
    assert hyperdrive.__all__ == sorted(hyperdrive.__all__)
    for name in hyperdrive.__all__:
        assert getattr(hyperdrive, name) is not None
    from trainyard.train.hyperdrive.run import HyperDriveRun
    from trainyard.train.hyperdrive.run import PrimaryMetricGoal as FromRun

    assert FromRun is PrimaryMetricGoal

    assert _RUN_TYPES["hyperdrive"] is HyperDriveRun
