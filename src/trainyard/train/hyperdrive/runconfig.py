"""``HyperDriveConfig``: what a sweep runs, what it optimises, and its budget (aml-reference §7.4).

Example::

    from trainyard.train.hyperdrive import (BanditPolicy, HyperDriveConfig, PrimaryMetricGoal,
                                             RandomParameterSampling, choice)

    config = HyperDriveConfig(
        run_config=src,                                    # a ScriptRunConfig (or estimator=...)
        hyperparameter_sampling=RandomParameterSampling(
            {"--batchsize": choice(128, 256), "--epochs": choice(5, 10, 20, 40)}),
        primary_metric_name="Accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        policy=BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=3),
        max_total_runs=8, max_concurrent_runs=4)
    hyperdrive_run = experiment.submit(config)             # a HyperDriveRun, returned at once

Validation follows v1: exactly one of ``estimator`` / ``run_config`` (``pipeline`` is refused);
``max_total_runs`` in 1..1000; ``max_concurrent_runs`` in 1..100 (``None`` → ``max_total_runs``);
``max_duration_minutes`` at most 10080 (larger values warn and are clamped); ``policy=None`` →
``NoTerminationPolicy``; Bayesian sampling refuses early termination and warns about small budgets;
``resume_from`` takes at most 5 HyperDrive runs. Violations raise ``HyperDriveConfigException``.

**Argument passing.** Sampled values are appended to each child's argv as ``key value`` pairs. With
an estimator template, ``script_params`` whose key matches a parameter-space key (compared after
``lstrip('-')``) are dropped, with a warning; a ``ScriptRunConfig`` template keeps its arguments and
the sampled pairs come after them (argparse's last value wins).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from trainyard.exceptions import HyperDriveConfigException
from trainyard.train.hyperdrive.policy import EarlyTerminationPolicy, NoTerminationPolicy
from trainyard.train.hyperdrive.sampling import HyperParameterSampling

if TYPE_CHECKING:
    from trainyard.core.experiment import Experiment
    from trainyard.core.run import Run
    from trainyard.core.script_run_config import ScriptRunConfig
    from trainyard.train.hyperdrive.run import HyperDriveRun

__all__ = ["HyperDriveConfig", "HyperDriveRunConfig", "PrimaryMetricGoal"]

#: v1 limits.
MAX_TOTAL_RUNS = 1000
MAX_CONCURRENT_RUNS = 100
MAX_DURATION_MINUTES = 10080
MAX_PARENT_RUNS = 5

#: Samplers that learn from earlier trials (their warm-start spaces must match).
_MODEL_BASED = ("BayesianOptimization", "TPE")
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,200}$")


class PrimaryMetricGoal(StrEnum):
    """Whether the primary metric is maximised or minimised (v1 values ``"MAXIMIZE"``/``"MINIMIZE"``).

    Example::

        PrimaryMetricGoal.MAXIMIZE.value        # 'MAXIMIZE'
        PrimaryMetricGoal.from_str("minimize")  # PrimaryMetricGoal.MINIMIZE
    """

    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"

    @classmethod
    def from_str(cls, goal: str | PrimaryMetricGoal) -> PrimaryMetricGoal:
        """The goal for ``"MAXIMIZE"``/``"maximize"`` (any case); raises for anything else."""
        if isinstance(goal, PrimaryMetricGoal):
            return goal
        text = str(goal).upper() if isinstance(goal, str) else ""
        if text not in cls.__members__:
            raise HyperDriveConfigException(
                f"primary_metric_goal must be PrimaryMetricGoal.MAXIMIZE or .MINIMIZE, got {goal!r}."
            )
        return cls[text]


def _int_in(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise HyperDriveConfigException(
            f"{name} must be an integer between {low} and {high}, got {value!r}.", name=name
        )
    return value


def _duration(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise HyperDriveConfigException(
            f"max_duration_minutes must be a positive number, got {value!r}."
        )
    if value <= 0:
        raise HyperDriveConfigException(
            f"max_duration_minutes must be a positive number, got {value!r}."
        )
    if value > MAX_DURATION_MINUTES:
        warnings.warn(
            f"max_duration_minutes={value} is above the maximum of {MAX_DURATION_MINUTES} "
            f"(7 days); using {MAX_DURATION_MINUTES}.",
            UserWarning,
            stacklevel=3,
        )
        return MAX_DURATION_MINUTES
    return value


class HyperDriveConfig:
    """Configuration of a HyperDrive sweep (v1 signature; see the module docstring).

    Submit it with ``experiment.submit(config)``; that returns a
    :class:`~trainyard.train.hyperdrive.run.HyperDriveRun` at once while a controller process
    starts the child runs.

    Example::

        HyperDriveConfig(run_config=src, hyperparameter_sampling=GridParameterSampling(
                             {"--lr": choice(0.01, 0.1)}),
                         primary_metric_name="loss", primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
                         max_total_runs=2)
    """

    def __init__(
        self,
        hyperparameter_sampling: HyperParameterSampling,
        primary_metric_name: str,
        primary_metric_goal: PrimaryMetricGoal | str,
        max_total_runs: int,
        max_concurrent_runs: int | None = None,
        max_duration_minutes: int | float = MAX_DURATION_MINUTES,
        policy: EarlyTerminationPolicy | None = None,
        estimator: Any = None,
        run_config: ScriptRunConfig | None = None,
        resume_from: Sequence[Run] | None = None,
        resume_child_runs: Sequence[Run] | None = None,
        pipeline: Any = None,
        debug_flag: Any = None,
        custom_run_id: str | None = None,
    ) -> None:
        if not isinstance(hyperparameter_sampling, HyperParameterSampling):
            raise HyperDriveConfigException(
                "hyperparameter_sampling must be a sampling object (RandomParameterSampling, "
                f"GridParameterSampling, BayesianParameterSampling …), got "
                f"{type(hyperparameter_sampling).__name__}."
            )
        if not isinstance(primary_metric_name, str) or not primary_metric_name.strip():
            raise HyperDriveConfigException(
                f"primary_metric_name must be the exact name the script logs, got "
                f"{primary_metric_name!r}."
            )
        self._sampling = hyperparameter_sampling
        self._metric_name = primary_metric_name
        self._goal = PrimaryMetricGoal.from_str(primary_metric_goal)
        self._max_total_runs = _int_in("max_total_runs", max_total_runs, 1, MAX_TOTAL_RUNS)
        self._max_concurrent_runs = (
            self._max_total_runs
            if max_concurrent_runs is None
            else _int_in("max_concurrent_runs", max_concurrent_runs, 1, MAX_CONCURRENT_RUNS)
        )
        self._max_duration_minutes = _duration(max_duration_minutes)
        self._policy = self._check_policy(policy)
        validate_budget = getattr(hyperparameter_sampling, "validate_budget", None)
        if callable(validate_budget):
            validate_budget(self._max_total_runs, max_concurrent_runs)
        self._dropped_params: list[str] = []
        self.estimator, self.run_config = self._check_template(estimator, run_config, pipeline)
        self.pipeline = None
        self.debug_flag = debug_flag
        self._resume_from = self._check_resume_from(resume_from)
        self._resume_child_runs = self._check_resume_child_runs(resume_child_runs)
        if custom_run_id is not None and (
            not isinstance(custom_run_id, str) or not _RUN_ID.match(custom_run_id)
        ):
            raise HyperDriveConfigException(
                f"custom_run_id {custom_run_id!r} must be 1-201 letters, digits, '_' or '-', "
                "starting with a letter or digit."
            )
        self.custom_run_id = custom_run_id

    # -- validation ---------------------------------------------------------------------------
    def _check_policy(self, policy: EarlyTerminationPolicy | None) -> EarlyTerminationPolicy:
        if policy is None:
            policy = NoTerminationPolicy()
        if not isinstance(policy, EarlyTerminationPolicy):
            raise HyperDriveConfigException(
                f"policy must be an early-termination policy (BanditPolicy, MedianStoppingPolicy, "
                f"TruncationSelectionPolicy, NoTerminationPolicy) or None, got "
                f"{type(policy).__name__}."
            )
        if not self._sampling.SUPPORTS_EARLY_TERMINATION and not isinstance(
            policy, NoTerminationPolicy
        ):
            raise HyperDriveConfigException(
                f"No early termination policy is currently supported with "
                f"{type(self._sampling).__name__}; use policy=None or NoTerminationPolicy()."
            )
        return policy

    def _check_template(self, estimator: Any, run_config: Any, pipeline: Any) -> tuple[Any, Any]:
        if pipeline is not None:
            raise HyperDriveConfigException(
                "HyperDriveConfig(pipeline=...) is not supported by trainyard (it was a preview in "
                "v1); give a ScriptRunConfig as run_config= or an estimator= instead."
            )
        if (estimator is None) == (run_config is None):
            raise HyperDriveConfigException(
                "HyperDriveConfig needs exactly one run template: estimator= or run_config= "
                "(a ScriptRunConfig)."
            )
        if run_config is not None:
            from trainyard.core.script_run_config import ScriptRunConfig

            if not isinstance(run_config, ScriptRunConfig):
                raise HyperDriveConfigException(
                    f"run_config must be a ScriptRunConfig, got {type(run_config).__name__}."
                )
            return None, run_config
        from trainyard.train.estimator import Estimator

        if not isinstance(estimator, Estimator):
            raise HyperDriveConfigException(
                f"estimator must be an Estimator (Chainer, PyTorch, …), got "
                f"{type(estimator).__name__}."
            )
        # The caller's estimator keeps its script_params: the template leaves the swept ones out.
        wanted = {k.lstrip("-") for k in self._sampling.parameter_space}
        removed = [k for k in estimator.script_params if str(k).lstrip("-") in wanted]
        self._dropped_params = removed
        if removed:
            warnings.warn(
                "The same input parameter(s) are specified in estimator script params and in the "
                "HyperDrive parameter space. The HyperDrive parameter space overrides these "
                f"duplicate entries: {removed} removed from script_params.",
                UserWarning,
                stacklevel=3,
            )
        return estimator, None

    def _check_resume_from(self, resume_from: Sequence[Run] | None) -> list[Run]:
        if resume_from is None:
            return []
        runs = list(resume_from)
        if len(runs) > MAX_PARENT_RUNS:
            raise HyperDriveConfigException(
                f"resume_from takes at most {MAX_PARENT_RUNS} HyperDrive runs, got {len(runs)}."
            )
        seen: set[str] = set()
        for run in runs:
            if getattr(run, "type", None) != "hyperdrive":
                raise HyperDriveConfigException(
                    f"resume_from must hold HyperDrive runs (experiment.submit(HyperDriveConfig) "
                    f"results), got {run!r}."
                )
            if run.id in seen:
                raise HyperDriveConfigException(f"resume_from lists {run.id!r} twice.")
            seen.add(run.id)
            if self._sampling.SAMPLING_NAME in _MODEL_BASED:
                self._check_same_space(run)
        return runs

    def _check_same_space(self, run: Run) -> None:
        # Model-based samplers learn from the earlier trials: their spaces must match (v1).
        raw = run.get_tags().get("generator_config")
        theirs = json.loads(raw).get("parameter_space", {}) if raw else {}
        if set(theirs) != set(self._sampling.parameter_space):
            raise HyperDriveConfigException(
                f"resume_from run {run.id!r} sampled {sorted(theirs)}, but this sweep samples "
                f"{sorted(self._sampling.parameter_space)}; the parameter spaces must match."
            )

    def _check_resume_child_runs(self, children: Sequence[Run] | None) -> list[Run]:
        if children is None:
            return []
        runs = list(children)
        if len(runs) > self._max_total_runs:
            raise HyperDriveConfigException(
                f"resume_child_runs has {len(runs)} runs, more than max_total_runs="
                f"{self._max_total_runs}."
            )
        ids = [getattr(r, "id", None) for r in runs]
        if len(set(ids)) != len(ids):
            raise HyperDriveConfigException("resume_child_runs lists the same run twice.")
        from trainyard.train.hyperdrive._history import child_hyperparameters

        for run in runs:
            if child_hyperparameters(run) is None:
                raise HyperDriveConfigException(
                    f"resume_child_runs: {getattr(run, 'id', run)!r} is not a child run of a "
                    "HyperDrive sweep (no recorded hyperparameters)."
                )
        return runs

    # -- read-only attributes ---------------------------------------------------------------
    @property
    def hyperparameter_sampling(self) -> HyperParameterSampling:
        """The sampler."""
        return self._sampling

    @property
    def primary_metric_name(self) -> str:
        """The metric the sweep optimises (must match the logged name exactly)."""
        return self._metric_name

    @property
    def primary_metric_goal(self) -> PrimaryMetricGoal:
        """MAXIMIZE or MINIMIZE."""
        return self._goal

    @property
    def primary_metric_config(self) -> dict[str, str]:
        """v1 wire form ``{"name": …, "goal": "maximize"}``."""
        return {"name": self._metric_name, "goal": self._goal.value.lower()}

    @property
    def max_total_runs(self) -> int:
        """Upper bound on child runs."""
        return self._max_total_runs

    @property
    def max_concurrent_runs(self) -> int:
        """Children running at once (``max_total_runs`` when not given)."""
        return self._max_concurrent_runs

    @property
    def max_duration_minutes(self) -> int | float:
        """Wall-clock budget of the sweep; running children are cancelled when it is reached."""
        return self._max_duration_minutes

    @property
    def policy(self) -> EarlyTerminationPolicy:
        """The early-termination policy (``NoTerminationPolicy`` when none was given)."""
        return self._policy

    @property
    def resume_from(self) -> list[Run]:
        """Earlier HyperDrive runs this sweep warm-starts from."""
        return list(self._resume_from)

    @property
    def resume_child_runs(self) -> list[Run]:
        """Earlier child runs re-run with their hyperparameters and ``--resume-from <path>``."""
        return list(self._resume_child_runs)

    @property
    def source_directory(self) -> str | None:
        """The template's source directory."""
        template = self.estimator if self.estimator is not None else self.run_config
        return getattr(template, "source_directory", None)

    # -- wire form ----------------------------------------------------------------------------
    def run_template(self) -> ScriptRunConfig:
        """The ScriptRunConfig every child is built from (an estimator's, without the
        ``script_params`` the parameter space overrides)."""
        if self.run_config is not None:
            template: ScriptRunConfig = self.run_config
            return template
        from trainyard.train.estimator import flatten_script_params

        config: ScriptRunConfig = self.estimator.run_config
        if self._dropped_params:
            kept = {
                k: v
                for k, v in self.estimator.script_params.items()
                if k not in self._dropped_params
            }
            config.arguments = flatten_script_params(kept)
        return config

    def parent_tags(self, platform_config: Mapping[str, Any]) -> dict[str, str]:
        """The parent's tags that rebuild this config (v1 names)."""
        return {
            "generator_config": json.dumps(self._sampling.to_json()),
            "primary_metric_config": json.dumps(self.primary_metric_config),
            "max_total_jobs": str(self._max_total_runs),
            "max_concurrent_jobs": str(self._max_concurrent_runs),
            "max_duration_minutes": str(self._max_duration_minutes),
            "policy_config": json.dumps(self._policy.to_json()),
            "platform_config": json.dumps(dict(platform_config)),
        }

    def _submit_to_experiment(
        self, experiment: Experiment, tags: dict[str, str], **kwargs: Any
    ) -> HyperDriveRun:
        """``experiment.submit(config)``: validate, store the parent, start the controller."""
        from trainyard.train.hyperdrive._submit import submit_sweep

        return submit_sweep(experiment, self, tags)

    def __repr__(self) -> str:
        return (
            f"HyperDriveConfig(sampling={self._sampling!r}, primary_metric="
            f"{self.primary_metric_config!r}, max_total_runs={self._max_total_runs}, "
            f"max_concurrent_runs={self._max_concurrent_runs}, policy={self._policy!r})"
        )


class HyperDriveRunConfig(HyperDriveConfig):
    """Deprecated v1 name of :class:`HyperDriveConfig` (the 2019 notebooks used it).

    Example::

        HyperDriveRunConfig(estimator=est, hyperparameter_sampling=sampling,
                            primary_metric_name="Accuracy",
                            primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=8)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn(
            "HyperDriveRunConfig is deprecated; use HyperDriveConfig (same arguments).",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(*args, **kwargs)
