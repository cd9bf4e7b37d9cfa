"""A HyperDrive sweep from a YAML or JSON file: what ``trainyard sweep submit SPEC`` reads.

The file names the script and the sweep with the same words as the Python API::

    experiment: mnist-sweep            # required
    script: train.py                   # required, inside source_directory
    source_directory: .                # default: the spec file's folder
    arguments: [--epochs, 3]           # fixed arguments for every child
    compute_target: local
    environment: requirements.txt      # a conda .yml or a requirements file (optional)
    pip: [six==1.16.0]                 # more requirements (optional)
    max_run_duration_seconds: 3600     # per child (optional)
    sampling:
      type: random                     # random | grid | bayesian | tpe
      seed: 7                          # optional (random)
      parameters:
        --lr: {loguniform: [-6, -1]}   # one expression: {function: [its arguments]}
        --batchsize: [32, 64, 128]     # a plain list is choice(...)
    primary_metric: {name: accuracy, goal: maximize}
    policy: {type: bandit, slack_factor: 0.1, evaluation_interval: 1}   # optional
    max_total_runs: 8
    max_concurrent_runs: 2             # optional
    max_duration_minutes: 60           # optional
    tags: {team: vision}               # optional, on the sweep's run

Every mistake raises :class:`~trainyard.exceptions.HyperDriveConfigException` naming the key and
what it accepts; unknown keys are refused (a typo never silently drops a setting).

Example::

    from trainyard.train.hyperdrive.spec import load_spec

    spec = load_spec(Path("sweep.yml"))
    run = Experiment(ws, spec.experiment).submit(spec.config, tags=spec.tags)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainyard.exceptions import HyperDriveConfigException
from trainyard.train.hyperdrive import parameter_expressions as pe
from trainyard.train.hyperdrive.policy import EarlyTerminationPolicy, policy_from_json
from trainyard.train.hyperdrive.runconfig import HyperDriveConfig
from trainyard.train.hyperdrive.sampling import (
    BayesianParameterSampling,
    GridParameterSampling,
    HyperParameterSampling,
    RandomParameterSampling,
    TPEParameterSampling,
)

__all__ = ["SweepSpec", "load_spec", "spec_to_config"]

_TOP_KEYS = {
    "experiment",
    "script",
    "source_directory",
    "arguments",
    "compute_target",
    "environment",
    "pip",
    "max_run_duration_seconds",
    "sampling",
    "primary_metric",
    "policy",
    "max_total_runs",
    "max_concurrent_runs",
    "max_duration_minutes",
    "tags",
}
_SAMPLERS: dict[str, Callable[[dict[str, list[Any]]], HyperParameterSampling]] = {
    "random": RandomParameterSampling,
    "grid": GridParameterSampling,
    "bayesian": BayesianParameterSampling,
    "tpe": TPEParameterSampling,
}
_POLICY_NAMES = {
    "bandit": "Bandit",
    "median": "MedianStopping",
    "medianstopping": "MedianStopping",
    "truncation": "TruncationSelection",
    "truncationselection": "TruncationSelection",
    "asha": "ASHA",
    "none": "Default",
    "default": "Default",
}
_EXPRESSIONS: dict[str, Callable[..., list[Any]]] = {
    name: getattr(pe, name)
    for name in (
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
}


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file: the experiment to submit to, the config, the sweep run's tags."""

    experiment: str
    config: HyperDriveConfig
    tags: dict[str, str]


def _fail(message: str) -> HyperDriveConfigException:
    return HyperDriveConfigException(f"Sweep spec: {message}")


def load_spec(path: Path) -> SweepSpec:
    """Read a YAML (``.yml``/``.yaml``) or JSON sweep file; relative paths in it are relative to
    its folder.

    Example::

        load_spec(Path("sweep.yml")).config.max_total_runs
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise _fail(f"cannot read {str(path)!r}: {err.strerror or err}.") from None
    if path.suffix.lower() in (".yml", ".yaml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise _fail(f"{str(path)!r} is not valid YAML: {err}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise _fail(f"{str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(data, Mapping):
        raise _fail(f"{str(path)!r} must hold a mapping of settings, not {type(data).__name__}.")
    return spec_to_config(data, path.resolve().parent)


def _required(data: Mapping[str, Any], key: str, kind: type, where: str = "") -> Any:
    if key not in data:
        raise _fail(f"{where}{key!r} is required.")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _fail(f"{where}{key!r} must be a {kind.__name__}, not {value!r}.")
    return value


def _expression(name: str, value: Any) -> list[Any]:
    if isinstance(value, list):
        return pe.choice(*value)
    if isinstance(value, Mapping) and len(value) == 1:
        ((func, args),) = value.items()
        builder = _EXPRESSIONS.get(str(func))
        if builder is None:
            raise _fail(
                f"parameter {name!r}: unknown expression {func!r}; use one of "
                f"{', '.join(sorted(_EXPRESSIONS))}."
            )
        return builder(*(args if isinstance(args, list) else [args]))
    raise _fail(
        f"parameter {name!r} must be a list (choice) or one expression such as "
        f"{{uniform: [0.01, 0.1]}}, not {value!r}."
    )


def _sampling(data: Any) -> HyperParameterSampling:
    if not isinstance(data, Mapping):
        raise _fail("'sampling' must be a mapping with 'type' and 'parameters'.")
    unknown = set(data) - {"type", "parameters", "seed"}
    if unknown:
        raise _fail(f"unknown key(s) under 'sampling': {', '.join(sorted(map(str, unknown)))}.")
    kind = str(data.get("type", "random")).lower()
    cls = _SAMPLERS.get(kind)
    if cls is None:
        raise _fail(f"sampling type {kind!r} is not one of {', '.join(_SAMPLERS)}.")
    params = _required(data, "parameters", Mapping, "sampling.")
    space = {str(k): _expression(str(k), v) for k, v in params.items()}
    if "seed" in data:
        if cls is not RandomParameterSampling:
            raise _fail("'sampling.seed' applies to random sampling only.")
        return RandomParameterSampling(space, seed=int(data["seed"]))
    return cls(space)


def _policy(data: Any) -> EarlyTerminationPolicy | None:
    if data is None:
        return None
    if not isinstance(data, Mapping) or "type" not in data:
        raise _fail("'policy' must be a mapping with a 'type' (bandit, median, truncation, asha).")
    kind = str(data["type"]).lower().replace("_", "").replace("-", "").removesuffix("policy")
    name = _POLICY_NAMES.get(kind)
    if name is None:
        raise _fail(
            f"policy type {data['type']!r} is not one of bandit, median, truncation, asha, none."
        )
    return policy_from_json(
        {"name": name, "properties": {k: v for k, v in data.items() if k != "type"}}
    )


def spec_to_config(data: Mapping[str, Any], base_dir: Path) -> SweepSpec:
    """Build the :class:`HyperDriveConfig` a parsed spec describes (paths relative to
    ``base_dir``).

    Example::

        spec_to_config({"experiment": "e", "script": "train.py", ...}, Path("."))
    """
    from trainyard.core.environment_files import environment_from_file
    from trainyard.core.script_run_config import (
        DEFAULT_MAX_RUN_DURATION_SECONDS,
        ScriptRunConfig,
    )

    unknown = set(map(str, data)) - _TOP_KEYS
    if unknown:
        raise _fail(
            f"unknown key(s) {', '.join(sorted(unknown))}; the keys are "
            f"{', '.join(sorted(_TOP_KEYS))}."
        )
    experiment = _required(data, "experiment", str)
    script = _required(data, "script", str)
    source = base_dir / str(data.get("source_directory", "."))
    if not (source / script).is_file():
        raise _fail(f"script {script!r} is not a file in {str(source)!r}.")
    arguments = data.get("arguments", [])
    if not isinstance(arguments, list):
        raise _fail(f"'arguments' must be a list, not {arguments!r}.")
    pip = data.get("pip", [])
    if not isinstance(pip, list) or not all(isinstance(p, str) for p in pip):
        raise _fail(f"'pip' must be a list of requirement strings, not {pip!r}.")
    env_file = data.get("environment")
    environment = environment_from_file(
        f"{experiment}-env", base_dir / str(env_file) if env_file else None, pip
    )
    src = ScriptRunConfig(
        source_directory=str(source),
        script=script,
        arguments=[str(a) if not isinstance(a, (int, float)) else a for a in arguments],
        compute_target=data.get("compute_target"),
        environment=environment,
        max_run_duration_seconds=int(
            data.get("max_run_duration_seconds", DEFAULT_MAX_RUN_DURATION_SECONDS)
        ),
    )
    metric = _required(data, "primary_metric", Mapping)
    tags = data.get("tags") or {}
    if not isinstance(tags, Mapping):
        raise _fail(f"'tags' must be a mapping, not {tags!r}.")
    extra: dict[str, Any] = {}
    for key in ("max_concurrent_runs", "max_duration_minutes"):
        if key in data:
            extra[key] = data[key]
    config = HyperDriveConfig(
        run_config=src,
        hyperparameter_sampling=_sampling(data.get("sampling")),
        primary_metric_name=_required(metric, "name", str, "primary_metric."),
        primary_metric_goal=str(metric.get("goal", "maximize")).upper(),
        policy=_policy(data.get("policy")),
        max_total_runs=_required(data, "max_total_runs", int),
        **extra,
    )
    return SweepSpec(experiment, config, {str(k): str(v) for k, v in tags.items()})
