"""``wait_for_completion``: poll a run's status and stream its log from an offset (v1's algorithm).

1. Print ``RunId:`` and ``Web View:``. 2. While the run is in the running set or Finalizing, poll;
the interval grows from ``polling_interval_min`` to ``…_max``. Without ``wait_post_processing`` the
wait ends in Finalizing once the outputs are uploaded (a failing run is always followed to Failed).
3. Stream the highest-priority log that exists (``user_logs/std_log.txt`` over the environment build
log), printing ``Streaming <name>`` and a rule, then only new bytes; switch when a higher-priority
log appears. 4. Print an ``Execution Summary``. 5. ``Failed`` raises ``ActivityFailedException``
unless ``raise_on_error=False``. Ctrl-C stops the streaming, never the run.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from trainyard._execution.runfiles import BUILD_LOG, STD_LOG, rank_log
from trainyard._lifecycle import RunStatus
from trainyard.exceptions import ActivityFailedException

if TYPE_CHECKING:
    from trainyard.core.script_run import ScriptRun as Run

#: Logs in priority order (v1 streams the script's log, or rank 0's in a distributed run; the
#: build log shows while Preparing).
LOG_PRIORITY = (STD_LOG, rank_log(0), BUILD_LOG)
#: How long a wait that may end in Finalizing still waits for the terminal status.
_EARLY_GRACE = 3.0


def _interval(elapsed: float, lo: float, hi: float) -> float:
    """Sigmoid from ``lo`` to ``hi`` over the first minute, as v1 grows its poll interval."""
    return lo + (hi - lo) / (1 + math.exp(-(elapsed - 30.0) / 6.0))


def wait_for_completion(
    run: Run,
    *,
    show_output: bool = False,
    wait_post_processing: bool = False,
    raise_on_error: bool = True,
    out: IO[str] | None = None,
) -> dict[str, Any]:
    """Block until the run is terminal (streaming its log if asked) and return its details."""
    stream = out or sys.stdout
    settings = run.experiment.workspace.context.settings
    started = time.monotonic()
    if show_output:
        stream.write(f"RunId: {run.id}\nWeb View: {run.get_portal_url()}\n\n")
        stream.flush()
    current: str | None = None
    offset = 0
    early_deadline: float | None = None
    try:
        while True:
            status = RunStatus.parse(run.get_status())
            if show_output:
                current, offset = _stream_once(run, stream, current, offset)
            # Stop during Finalizing only once the outputs are uploaded (v1 stops when Finalizing
            # reports success); a failing run (its error is already recorded) is followed to Failed.
            info = run.get_info(refresh=False)
            early = (
                status == RunStatus.FINALIZING
                and not wait_post_processing
                and not info.error
                and bool(info.runtime.get("outputs_uploaded"))
            )
            # The supervisor's last steps after the outputs (log upload, final status) take
            # milliseconds: give them a moment so callers usually see the terminal status.
            if early and early_deadline is None:
                early_deadline = time.monotonic() + _EARLY_GRACE
            if status.is_terminal() or (
                early_deadline is not None and time.monotonic() >= early_deadline
            ):
                break
            lo, hi = settings.polling_interval_min, settings.polling_interval_max
            time.sleep(_interval(time.monotonic() - started, lo, hi) if not show_output else lo)
        if show_output:
            _stream_once(run, stream, current, offset, final=True)
    except KeyboardInterrupt:
        stream.write(
            f"\nStopped watching run {run.id}; it keeps running. Follow it again with "
            f"run.wait_for_completion(show_output=True) or `trainyard runs logs {run.id} -f`.\n"
        )
        stream.flush()
        raise
    details = run.get_details()
    if show_output:
        stream.write("\nExecution Summary\n=================\n")
        stream.write(f"RunId: {run.id}\nWeb View: {run.get_portal_url()}\n")
        for w in details.get("warnings") or []:
            stream.write(f"Warning: {w}\n")
        stream.write("\n")
        stream.flush()
    if details["status"] == RunStatus.FAILED.value:
        error = details.get("error") or {}
        # The streamed log already showed the traceback: with show_output it is not repeated.
        text = failure_text(run.id, error, with_traceback=not show_output)
        if raise_on_error:
            raise ActivityFailedException(
                text, error_details=json.dumps(error, indent=2), run_id=run.id
            )
        if show_output:
            stream.write(text + "\n")
    return details


def failure_text(run_id: str, error: dict[str, Any], with_traceback: bool) -> str:
    """``Run <id> failed: <Type>: <whole message>`` plus the last frames, or a pointer to them."""
    text = f"Run {run_id} failed: {error.get('message', 'unknown error')}"
    if error.get("cause"):
        text += f"\n(raised while handling {error['cause']})"
    if "exitCode" in error:
        text += f"\nExit code: {error['exitCode']}."
    log = str(error.get("logFile") or STD_LOG)
    if error.get("traceback"):
        # Only rank 0's log is streamed: another rank's traceback is printed here.
        if with_traceback or error.get("rank", 0) != 0:
            text += f"\n{error['traceback']}\n(from {log})"
        else:
            text += f" The traceback is above and in {log}."
    return text


def _stream_once(
    run: Run,
    stream: IO[str],
    current: str | None,
    offset: int,
    final: bool = False,
) -> tuple[str | None, int]:
    names = run.get_log_names()
    best = next((n for n in LOG_PRIORITY if n in names), None)
    if best is not None and best != current:
        if current is not None and current in names:
            # finish the lower-priority log first (it is complete: its stage is over)
            _drain(run, stream, current, offset, final=True)
        current, offset = best, 0
        stream.write(f"Streaming {best}\n{'=' * (10 + len(best))}\n\n")
    if current is not None:
        offset = _drain(run, stream, current, offset, final=final)
    return current, offset


def _drain(run: Run, stream: IO[str], name: str, offset: int, final: bool = False) -> int:
    """Print the log's complete lines from ``offset``; ``final`` (the log is complete) prints a
    last partial line too."""
    chunk = run.read_log_lines(name, offset, final=final)
    if chunk:
        text = chunk.decode("utf-8", "replace")
        stream.write(text + "\n" if final and not text.endswith("\n") else text)
        stream.flush()
    return offset + len(chunk)
