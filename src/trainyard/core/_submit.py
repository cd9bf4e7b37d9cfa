"""``experiment.submit(ScriptRunConfig)``: validate everything, then store, snapshot and hand off.

Nothing is stored until every check passed: a missing source directory or script, an argument of
the wrong type, an unknown compute target or an environment that does not parse raises a typed
error and leaves no run row and no snapshot behind.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard._lifecycle import RunStatus
from trainyard.core.runconfig import (
    check_distribution,
    distribution_of_run_config,
    distribution_to_dict,
)
from trainyard.exceptions import (
    ComputeTargetException,
    TrainyardError,
    UserErrorException,
    ValidationError,
)

if TYPE_CHECKING:
    from trainyard.core.compute.target import ComputeTarget
    from trainyard.core.experiment import Experiment
    from trainyard.core.script_run import ScriptRun
    from trainyard.core.script_run_config import ScriptRunConfig

#: What ``DockerConfiguration(use_docker=True)`` gets: v1 samples set it everywhere; trainyard has no
#: container engine, so the run goes on in its environment's uv virtual environment.
DOCKER_WARNING = (
    "DockerConfiguration(use_docker=True): trainyard runs without a container engine; the run's "
    "environment is built and run as a uv virtual environment instead (the Docker base image and "
    "Docker arguments are recorded but not used)."
)

# Any number (numpy's int64 included) and paths are stringified, as v1 does.
_ARG_TYPES = (str, numbers.Number)


def normalize_arguments(arguments: list[Any], context: dict[str, Any] | None = None) -> list[str]:
    """argv strings: numbers, booleans and paths stringified; dataset placeholders kept as tokens."""
    out: list[str] = []
    for i, arg in enumerate(arguments):
        to_arg = getattr(arg, "_to_run_argument", None)
        if callable(to_arg):
            out.append(str(to_arg(context)))
        elif isinstance(arg, _ARG_TYPES):
            out.append(str(arg))
        elif isinstance(arg, os.PathLike):
            out.append(os.fsdecode(arg))
        else:
            raise ValidationError(
                f"Argument {i} ({arg!r}) is a {type(arg).__name__}; arguments must be strings, numbers, "
                "booleans or dataset placeholders (dataset.as_mount()).",
                index=i,
                type=type(arg).__name__,
            )
        if "\x00" in out[-1]:
            raise ValidationError(
                f"Argument {i} ({out[-1]!r}) contains a NUL character, which no process argument "
                "can hold (the operating system would cut it there). Remove it.",
                index=i,
            )
    return out


def _validate_source(config: ScriptRunConfig) -> tuple[Path, str | None]:
    if config.source_directory is None:
        raise UserErrorException("ScriptRunConfig needs a source_directory.")
    src = Path(config.source_directory).expanduser()
    if not src.is_dir():
        raise UserErrorException(
            f"source_directory {str(src)!r} does not exist or is not a folder.",
            source_directory=str(src),
        )
    if config.command:
        if config.script:
            raise UserErrorException("Give either script (+ arguments) or command, not both.")
        return src.resolve(), None
    if not config.script:
        raise UserErrorException("ScriptRunConfig needs a script (or a command) to run.")
    script = Path(config.script)
    if script.is_absolute() or ".." in script.parts:
        raise UserErrorException(
            f"script {config.script!r} must be a path relative to the source directory.",
            script=config.script,
        )
    if not (src / script).is_file():
        raise UserErrorException(
            f"Script {config.script!r} not found in source directory {str(src)!r}.",
            script=config.script,
        )
    return src.resolve(), script.as_posix()


def _validate_target(
    experiment: Experiment,
    config: ScriptRunConfig,
    target: ComputeTarget,
    definition: dict[str, Any],
) -> None:
    from trainyard._execution.backends import backend_for
    from trainyard._execution.distributed import Layout

    if config.docker_runtime_config is not None and config.docker_runtime_config.use_docker:
        warnings.warn(DOCKER_WARNING, UserWarning, stacklevel=4)
    if config.requires_gpu and target.gpu_count == 0:
        raise ComputeTargetException(
            f"use_gpu=True, but compute target {target.name!r} has no GPUs. Submit to a target with "
            "GPUs or set use_gpu=False.",
            target=target.name,
        )
    backend = backend_for(experiment.workspace.context, target.get_record())
    backend.check_run(definition)  # e.g. a cluster none of whose nodes could ever take it
    layout = Layout.from_definition(definition)
    if layout.ranked or layout.world_size > 1:
        # The target's backend says whether it can ever run this many ranks on these nodes.
        backend.check_layout(layout, target.gpu_count)


def _environment_dict(config: ScriptRunConfig) -> dict[str, Any]:
    env = config.environment
    if env is None:
        return {}
    validate = getattr(env, "validate", None)
    to_dict = getattr(env, "to_dict", None)
    if not callable(validate) or not callable(to_dict):
        raise ValidationError(
            f"environment must be a trainyard Environment, not {type(env).__name__}."
        )
    validate()
    out: dict[str, Any] = to_dict()
    return out


def build_definition(config: ScriptRunConfig) -> dict[str, Any]:
    """Validate the config and return the run definition (``get_details()['runDefinition']``)."""
    src, script = _validate_source(config)
    context: dict[str, Any] = {}
    arguments = normalize_arguments(list(config.arguments or []), context)
    dist = _distribution(config)
    env_dict = _environment_dict(config)
    limit = config.max_run_duration_seconds
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ValidationError(
            f"max_run_duration_seconds must be a positive integer or None, not {limit!r}."
        )
    definition: dict[str, Any] = {
        "script": script,
        "command": config.command,
        "arguments": arguments,
        "sourceDirectory": str(src),
        "environment": env_dict,
        "nodeCount": (dist or {}).get("node_count", 1),
        "distribution": dist,
        # v1's runDefinition fields (ScriptRunConfig wrote them from distributed_job_config).
        "framework": str(config.run_config.framework or "Python"),
        "communicator": "None" if dist is None else str(config.run_config.communicator),
        "mpi": {"processCountPerNode": int((dist or {}).get("process_count_per_node", 1))},
        "maxRunDurationSeconds": limit,
        "environmentVariables": dict(config.environment_variables),
        "datasets": context.get("datasets", {}),
    }
    if config.framework_info:
        definition["frameworkInfo"] = dict(config.framework_info)
    if config.requires_gpu:  # a cluster backend asks its node for GPUs
        definition["requiresGpu"] = True
    return definition


def _distribution(config: ScriptRunConfig) -> dict[str, Any] | None:
    """The wire form of the job's distribution: ``distributed_job_config``, else what a v1-style
    ``run_config`` says (``communicator``, ``mpi``, ``node_count``); counts validated."""
    cfg = config.distributed_job_config
    if cfg is None:
        cfg = distribution_of_run_config(config.run_config)
    dist = distribution_to_dict(cfg)
    if cfg is not None:
        check_distribution(cfg)
    return dist


def validate_submission(experiment: Experiment, config: ScriptRunConfig) -> dict[str, Any]:
    """Everything ``submit`` checks before storing anything; the definition with ``target`` set.

    Used by a plain submit and, once per sweep, for the sweep's template.
    """
    from trainyard.core.compute.target import resolve_target

    target = resolve_target(experiment.workspace, config.compute_target)
    definition = build_definition(config)
    _validate_target(experiment, config, target, definition)
    definition["target"] = target.name
    return definition


def submit_script_run(
    experiment: Experiment,
    config: ScriptRunConfig,
    tags: dict[str, str],
    **_: Any,
) -> ScriptRun:
    """Validate, snapshot, create the run Queued, start its supervisor; returns at once."""
    from trainyard._execution.snapshot import scan_source
    from trainyard._execution.snapshot_upload import take_snapshot

    ctx = experiment.workspace.context
    definition = validate_submission(experiment, config)
    settings = ctx.settings
    plan = scan_source(
        Path(definition["sourceDirectory"]),
        max_bytes=settings.snapshot_max_bytes,
        max_files=None if settings.snapshot_no_file_limit else settings.snapshot_max_files,
    )
    script = definition.get("script")
    if script and script not in {f.relpath for f in plan.files}:
        # An ignore file or a symlink leading outside the folder kept it out of the snapshot: the
        # run could only fail with "can't open file", so refuse it now.
        raise UserErrorException(
            f"Script {script!r} is excluded from the snapshot of {definition['sourceDirectory']!r} "
            f"(an ignore file matches it, or it is a symlink to a file outside the folder). Remove "
            "it from .trainyardignore/.amlignore/.gitignore or copy the file into the folder.",
            script=script,
            warnings=list(plan.warnings),
        )
    snap = take_snapshot(ctx, plan)
    return submit_definition(
        experiment,
        definition,
        snap.id,
        tags,
        warnings=[f"snapshot: {w}" for w in plan.warnings],
    )


def submit_definition(
    experiment: Experiment,
    definition: dict[str, Any],
    snapshot_id: str,
    tags: Mapping[str, str],
    *,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    properties: Mapping[str, str] | None = None,
    warnings: list[str] | None = None,
) -> ScriptRun:
    """Store a validated definition as a Queued run of snapshot ``snapshot_id`` and hand it to its
    target's backend. A plain submit comes here after validation; a sweep child comes here with
    the sweep's template definition (validated once at sweep submit) plus its sampled arguments,
    so datasets, environment, settings and distribution resolve exactly as for a single run."""
    from trainyard._execution.backends import backend_for
    from trainyard._store.entities import NewRun
    from trainyard.core.run import SCRIPT_RUN_TYPE, current_user, new_run_id
    from trainyard.core.script_run import ScriptRun

    ctx = experiment.workspace.context
    target = str(definition.get("target") or "local")
    props = {"ContentSnapshotId": snapshot_id, **(properties or {})}
    info = ctx.store.create_run(
        NewRun(
            run_id=run_id or new_run_id(experiment.name),
            experiment_id=experiment.id,
            run_type=SCRIPT_RUN_TYPE,
            status=RunStatus.NOT_STARTED.value,
            parent_run_id=parent_run_id,
            target=target,
            definition=definition,
            tags={k: str(v) for k, v in tags.items()},
            properties={k: str(v) for k, v in props.items()},
            snapshot_id=snapshot_id,
            submitted_by=current_user(),
        )
    )
    if warnings:  # what the snapshot skipped (outside symlinks …) shows in details["warnings"]
        ctx.store.update_run(info.run_id, runtime={"warnings": list(warnings)})
    ctx.store.update_run_status(info.run_id, RunStatus.QUEUED.value)
    try:
        backend_for(ctx, target).submit(info.run_id)
    except TrainyardError as err:  # e.g. a cluster that does not answer: the run never started
        with contextlib.suppress(TrainyardError):
            ctx.store.update_run_status(
                info.run_id,
                RunStatus.FAILED.value,
                error={"code": err.code, "message": err.message, "stage": "Queued"},
                reason="the compute target did not take the run",
            )
        raise
    return ScriptRun(experiment, info.run_id)
