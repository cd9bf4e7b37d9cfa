"""The one cancel path: request → the store (and v1's kill file) → the owner stops the work.

``request_cancel`` moves a run to CancelRequested (a compare-and-set through the lifecycle) and, for
a run executing on this machine, writes v1's local "kill file" so its supervisor sees the request
with a stat instead of a database read. The owner then ends the work — a supervisor sends SIGTERM
to the script's process group and SIGKILL after the grace period
(:func:`trainyard._execution.daemon.terminate_group`), a sweep controller cancels its children
through this same function — and records Canceled. ``Run.cancel``, ``HyperDriveRun.cancel``, the
controller's early termination and ``trainyard runs cancel`` / ``sweep cancel`` all come here
(through their compute backend).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from trainyard._execution.runfiles import RunPaths
from trainyard._lifecycle import RunStatus
from trainyard.exceptions import InvalidStatusTransition

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext


def request_cancel(ctx: WorkspaceContext, run_id: str, reason: str = "cancel requested") -> bool:
    """Ask the run's owner to cancel it; ``False`` when the run had already finished."""
    store = ctx.store
    if RunStatus.parse(store.get_run(run_id).status).is_terminal():
        return False
    try:
        store.update_run_status(run_id, RunStatus.CANCEL_REQUESTED.value, reason=reason)
    except InvalidStatusTransition:
        return not RunStatus.parse(store.get_run(run_id).status).is_terminal()
    # The database says CancelRequested (the contract); the file only makes it quick to see.
    with contextlib.suppress(OSError):
        paths = RunPaths(ctx.home, run_id)
        if paths.live.is_dir():
            paths.cancel_file.touch()
    return True
