"""Compute-target records as the execution layer needs them: the implicit ``local`` target, and
how many runs a target runs at once."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trainyard._store.entities import ComputeTargetRecord
from trainyard.exceptions import ComputeTargetNotFound

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext

LOCAL = "local"


def detect_gpus() -> int:
    """Number of NVIDIA GPUs visible on this machine."""
    return len(glob.glob("/dev/nvidia[0-9]*"))


def local_target(workspace_id: str) -> ComputeTargetRecord:
    """The default ``local`` target: this machine, one run per core at once."""
    return ComputeTargetRecord(
        workspace_id=workspace_id,
        name=LOCAL,
        target_type=LOCAL,
        config={"max_concurrent_runs": os.cpu_count() or 1, "gpus": detect_gpus()},
        created_at=0.0,
    )


def resolve_target_record(ctx: WorkspaceContext, name: str | None) -> ComputeTargetRecord:
    """The record of target ``name`` (``None`` → ``local``); raises ``ComputeTargetNotFound``."""
    name = name or LOCAL
    try:
        return ctx.store.get_compute_target(ctx.workspace_id, name)
    except ComputeTargetNotFound:
        if name == LOCAL:
            return local_target(ctx.workspace_id)
        raise


def capacity(config: Mapping[str, Any]) -> int:
    """How many runs a target with ``config`` runs at once."""
    return int(config.get("max_concurrent_runs") or os.cpu_count() or 1)
