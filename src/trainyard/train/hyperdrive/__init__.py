"""HyperDrive: hyperparameter sweeps (v1: ``azureml.train.hyperdrive``).

Everything public is re-exported here; the v1 submodule paths (``.runconfig``, ``.sampling``,
``.policy``, ``.run``, ``.parameter_expressions``) work too.

Example::

    from trainyard.train.hyperdrive import (BanditPolicy, HyperDriveConfig, PrimaryMetricGoal,
                                             RandomParameterSampling, choice)

    sampling = RandomParameterSampling({"--batchsize": choice(128, 256),
                                        "--epochs": choice(5, 10, 20, 40)})
    config = HyperDriveConfig(run_config=src, hyperparameter_sampling=sampling,
                              primary_metric_name="Accuracy",
                              primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                              policy=BanditPolicy(evaluation_interval=1, slack_factor=0.1,
                                                  delay_evaluation=3),
                              max_total_runs=8, max_concurrent_runs=4)
    hyperdrive_run = experiment.submit(config)
"""

from __future__ import annotations

from trainyard.exceptions import HyperDriveConfigException
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
from trainyard.train.hyperdrive.policy import (
    AshaPolicy,
    BanditPolicy,
    EarlyTerminationPolicy,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    TruncationSelectionPolicy,
)
from trainyard.train.hyperdrive.run import HyperDriveRun
from trainyard.train.hyperdrive.runconfig import (
    HyperDriveConfig,
    HyperDriveRunConfig,
    PrimaryMetricGoal,
)
from trainyard.train.hyperdrive.sampling import (
    BayesianParameterSampling,
    GridParameterSampling,
    HyperParameterSampling,
    RandomParameterSampling,
    TPEParameterSampling,
)

__all__ = [
    "AshaPolicy",
    "BanditPolicy",
    "BayesianParameterSampling",
    "EarlyTerminationPolicy",
    "GridParameterSampling",
    "HyperDriveConfig",
    "HyperDriveConfigException",
    "HyperDriveRun",
    "HyperDriveRunConfig",
    "HyperParameterSampling",
    "MedianStoppingPolicy",
    "NoTerminationPolicy",
    "PrimaryMetricGoal",
    "RandomParameterSampling",
    "TPEParameterSampling",
    "TruncationSelectionPolicy",
    "choice",
    "lognormal",
    "loguniform",
    "normal",
    "qlognormal",
    "qloguniform",
    "qnormal",
    "quniform",
    "randint",
    "uniform",
]
