"""``experiment.submit(HyperDriveConfig)``: validate, store the parent run, start its controller.

Nothing is stored until the template passed every check a plain submit makes (script exists,
arguments are valid, target exists, environment parses) and its source folder was snapshotted
within the limits. Then the parent run (type ``hyperdrive``, id ``HD_<uuid4 hex>``) is created
Queued with the tags that rebuild the config, and a detached controller process
(:mod:`trainyard.train.hyperdrive._controller`) takes it from there.

Example::

    run = submit_sweep(experiment, hyperdrive_config, tags={})
    run.id        # 'HD_6f0c…'
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard._lifecycle import RunStatus
from trainyard.exceptions import UserErrorException
from trainyard.train.hyperdrive._history import (
    RESUMED_CHILD_PROPERTY,
    json_list,
    list_children,
)

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext
    from trainyard.core.experiment import Experiment
    from trainyard.train.hyperdrive.run import HyperDriveRun
    from trainyard.train.hyperdrive.runconfig import HyperDriveConfig

HYPERDRIVE_RUN_TYPE = "hyperdrive"
#: The parent's controller log, a run file (and, while it runs, a live file).
CONTROLLER_LOG = "system_logs/hyperdrive.txt"
#: Property of a continuation parent naming the dead sweep it continues (trainyard extension).
RESUMED_SWEEP_PROPERTY = "resumed_sweep"


def _json_or_null(ids: list[str]) -> str:
    return json.dumps(ids) if ids else "null"


#: The controller's module, started as a detached entrypoint through the target's backend.
CONTROLLER_MODULE = "trainyard.train.hyperdrive._controller"


def controller_log_path(workspace_home: Path, run_id: str) -> Path:
    """The live controller log (its stdout and stderr)."""
    from trainyard._execution.runfiles import RunPaths

    path = RunPaths(workspace_home, run_id).live_file(CONTROLLER_LOG)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def start_controller(ctx: WorkspaceContext, run_id: str, target: str | None) -> None:
    """Start the detached controller of sweep ``run_id`` through the target's backend."""
    from trainyard._execution.backends import backend_for
    from trainyard._execution.daemon import Entrypoint

    entrypoint = Entrypoint(
        CONTROLLER_MODULE, ctx.home, ("--run-id", run_id), controller_log_path(ctx.home, run_id)
    )
    backend_for(ctx, target).launch(entrypoint)


def _create_parent(
    experiment: Experiment,
    *,
    run_id: str,
    definition: Mapping[str, Any],
    snapshot_id: str,
    tags: Mapping[str, str],
    properties: Mapping[str, str],
) -> HyperDriveRun:
    from trainyard._store.entities import NewRun
    from trainyard.core.run import current_user
    from trainyard.train.hyperdrive.run import HyperDriveRun

    ctx = experiment.workspace.context
    target = str(definition.get("target") or "local")
    info = ctx.store.create_run(
        NewRun(
            run_id=run_id,
            experiment_id=experiment.id,
            run_type=HYPERDRIVE_RUN_TYPE,
            status=RunStatus.NOT_STARTED.value,
            target=target,
            definition=dict(definition),
            tags={k: str(v) for k, v in tags.items()},
            properties={"ContentSnapshotId": snapshot_id, **properties},
            snapshot_id=snapshot_id,
            submitted_by=current_user(),
        )
    )
    ctx.store.update_run_status(info.run_id, RunStatus.QUEUED.value, reason="sweep submitted")
    start_controller(ctx, info.run_id, target)
    return HyperDriveRun(experiment, info.run_id)


def submit_sweep(
    experiment: Experiment, config: HyperDriveConfig, tags: Mapping[str, str]
) -> HyperDriveRun:
    """Validate the template, snapshot its source, create the parent Queued, start the controller."""
    from trainyard._execution.snapshot import scan_source
    from trainyard._execution.snapshot_upload import take_snapshot
    from trainyard.train.hyperdrive._template import validate_template

    ws = experiment.workspace
    definition = validate_template(experiment, config.run_template())
    settings = ws.context.settings
    plan = scan_source(
        Path(definition["sourceDirectory"]),
        max_bytes=settings.snapshot_max_bytes,
        max_files=None if settings.snapshot_no_file_limit else settings.snapshot_max_files,
    )
    snap = take_snapshot(ws.context, plan)
    run_id = config.custom_run_id or f"HD_{uuid.uuid4().hex}"
    platform_config = {
        "WorkspaceName": ws.name,
        "ExperimentName": experiment.name,
        "Definition": {
            "Overrides": definition,
            "SnapshotId": snap.id,
            "TargetDetails": {"name": definition["target"]},
        },
    }
    all_tags = {**{str(k): str(v) for k, v in tags.items()}, **config.parent_tags(platform_config)}
    properties = {
        "resume_from": _json_or_null([r.id for r in config.resume_from]),
        "resume_child_runs": _json_or_null([r.id for r in config.resume_child_runs]),
        "platform": "local",
        "runTemplate": "HyperDrive",
        "azureml.runsource": HYPERDRIVE_RUN_TYPE,
    }
    return _create_parent(
        experiment,
        run_id=run_id,
        definition=definition,
        snapshot_id=snap.id,
        tags=all_tags,
        properties=properties,
    )


_SYSTEM_TAGS = (
    "generator_config",
    "primary_metric_config",
    "max_total_jobs",
    "max_concurrent_jobs",
    "max_duration_minutes",
    "policy_config",
    "platform_config",
)


def resume_sweep(run: HyperDriveRun) -> HyperDriveRun:
    """Continue a sweep whose controller died (Failed) or that was cancelled.

    Terminal statuses are final, so the continuation is a new HyperDrive run with the same
    template, sampler, policy and goal, ``resume_from`` = the old sweep (plus the old sweep's own
    ``resume_from``), and the budget the old sweep had left; its children never repeat the old
    sweep's points, the policy sees their metric series, and ``get_best_run_by_primary_metric``
    considers them. Old ``resume_child_runs`` not re-run yet are carried over.
    """
    info = run.get_info()
    status = RunStatus.parse(info.status)
    if not status.is_terminal():
        raise UserErrorException(
            f"HyperDrive run {run.id} is {status.value} and its controller is alive (it "
            "heartbeats); there is nothing to resume. Cancel it first to stop it.",
            run_id=run.id,
        )
    if status == RunStatus.COMPLETED:
        raise UserErrorException(
            f"HyperDrive run {run.id} completed; there is nothing to resume. To explore further, "
            "submit a new HyperDriveConfig(..., resume_from=[run]).",
            run_id=run.id,
        )
    tags = dict(info.tags)
    missing = [t for t in _SYSTEM_TAGS if t not in tags]
    if missing or not info.snapshot_id:
        raise UserErrorException(
            f"HyperDrive run {run.id} cannot be resumed: its configuration tags {missing} or its "
            "snapshot are missing.",
            run_id=run.id,
        )
    children = list_children(run.experiment.workspace.context.store, run.id)
    budget = int(tags["max_total_jobs"]) - len(children)
    done = {c.properties.get(RESUMED_CHILD_PROPERTY) for c in children}
    reruns = [c for c in json_list(info.properties.get("resume_child_runs")) if c not in done]
    if budget <= 0:
        raise UserErrorException(
            f"HyperDrive run {run.id} already created all {tags['max_total_jobs']} child runs; "
            "there is no budget left to resume.",
            run_id=run.id,
        )
    tags["max_total_jobs"] = str(budget)
    reruns = reruns[:budget]
    earlier = [run.id, *json_list(info.properties.get("resume_from"))]
    properties = {
        "resume_from": _json_or_null(earlier),
        "resume_child_runs": _json_or_null(reruns),
        "platform": info.properties.get("platform", "local"),
        "runTemplate": "HyperDrive",
        "azureml.runsource": HYPERDRIVE_RUN_TYPE,
        RESUMED_SWEEP_PROPERTY: run.id,
    }
    return _create_parent(
        run.experiment,
        run_id=f"HD_{uuid.uuid4().hex}",
        definition=info.definition,
        snapshot_id=info.snapshot_id,
        tags=tags,
        properties=properties,
    )
