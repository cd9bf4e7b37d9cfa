"""The sweep's run template: validate it at submit, and rebuild one child's config from it.

A sweep stores its template once, as the parent run's ``runDefinition`` (the dict
:func:`trainyard.core._submit.build_definition` returns, plus ``target``), and its source folder
as the parent's snapshot. The controller turns that into each child's definition, with the sampled ``key value``
pairs appended after the template's arguments (aml-reference §7.5), and submits it with the
parent's snapshot::

    child = child_definition(parent_definition, {"--lr": 0.1, "--bs": 32})
    child["arguments"]   # [*template arguments, '--lr', '0.1', '--bs', '32']

:func:`config_from_definition` rebuilds a user-facing ``ScriptRunConfig`` from a stored template
(``HyperDriveRun.hyperdrive_config``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard.exceptions import HyperDriveConfigException

if TYPE_CHECKING:
    from trainyard.core.experiment import Experiment
    from trainyard.core.script_run_config import ScriptRunConfig


def sampled_arguments(hyperparameters: Mapping[str, Any]) -> list[str]:
    """``{"--lr": 0.1, "--bs": 32}`` → ``['--lr', '0.1', '--bs', '32']`` (keys verbatim, ``str()``)."""
    out: list[str] = []
    for key, value in hyperparameters.items():
        out.extend([str(key), str(value)])
    return out


def validate_template(experiment: Experiment, config: ScriptRunConfig) -> dict[str, Any]:
    """Everything ``submit`` would check for one child, without storing anything.

    Returns the template definition with ``target`` set. Raises the same typed errors as a plain
    ``experiment.submit(config)`` (missing script, bad arguments, unknown target, …).
    """
    from trainyard.core._submit import validate_submission

    return validate_submission(experiment, config)


def _distribution(data: Mapping[str, Any] | None) -> Any:
    from trainyard.core.runconfig import (
        MpiConfiguration,
        PyTorchConfiguration,
        TensorflowConfiguration,
    )

    if not data:
        return None
    kinds: dict[str, Any] = {
        "mpi": MpiConfiguration,
        "pytorch": PyTorchConfiguration,
        "tensorflow": TensorflowConfiguration,
    }
    kind = kinds.get(str(data.get("type")))
    if kind is None:
        raise HyperDriveConfigException(f"Unknown distribution in the sweep template: {data!r}.")
    return kind(**{k: v for k, v in data.items() if k != "type"})


def config_from_definition(
    definition: Mapping[str, Any],
    source_directory: str | Path | None = None,
    extra_arguments: Sequence[str] = (),
) -> ScriptRunConfig:
    """A ``ScriptRunConfig`` equivalent to a stored template definition.

    ``source_directory`` overrides the recorded one (the controller uses its restored snapshot);
    ``extra_arguments`` go after the template's arguments, or after a ``command``.
    """
    from trainyard.core.environment import Environment
    from trainyard.core.script_run_config import ScriptRunConfig

    env = definition.get("environment") or None
    command = definition.get("command")
    arguments = [*list(definition.get("arguments") or [])]
    if command:
        if isinstance(command, str):
            command = " ".join([command, *(shlex.quote(a) for a in extra_arguments)])
        else:
            command = [*command, *extra_arguments]
    else:
        arguments.extend(extra_arguments)
    config = ScriptRunConfig(
        source_directory=str(source_directory or definition.get("sourceDirectory")),
        script=definition.get("script"),
        arguments=arguments,
        compute_target=definition.get("target"),
        environment=Environment.from_dict(env) if env else None,
        distributed_job_config=_distribution(definition.get("distribution")),
        max_run_duration_seconds=definition.get("maxRunDurationSeconds"),
        command=command or None,
    )
    config.environment_variables = {
        str(k): str(v) for k, v in (definition.get("environmentVariables") or {}).items()
    }
    framework = definition.get("frameworkInfo")
    if framework:
        config.framework_info = dict(framework)
        config.requires_gpu = bool(framework.get("use_gpu", False))
    return config


def child_definition(
    definition: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    resume_from_path: str | None = None,
) -> dict[str, Any]:
    """One child's run definition: the template's (datasets, environment, settings and
    distribution unchanged) with the sampled pairs (and ``--resume-from <path>``) appended after
    its arguments, or after its command."""
    extra = sampled_arguments(hyperparameters)
    if resume_from_path is not None:
        extra.extend(["--resume-from", resume_from_path])
    child = dict(definition)
    command = child.get("command")
    if command:
        if isinstance(command, str):
            child["command"] = " ".join([command, *(shlex.quote(a) for a in extra)])
        else:
            child["command"] = [*command, *extra]
    else:
        child["arguments"] = [*list(child.get("arguments") or []), *extra]
    return child
