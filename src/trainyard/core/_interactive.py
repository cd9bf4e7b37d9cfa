"""Interactive runs owned by this process (``start_logging``, ``child_run``): liveness and ends.

An interactive run lives in the user's process, so that process is its owner: while the run is
open, one daemon thread per process heartbeats every open run (the reaper fails a run whose
heartbeat stopped: the process was killed with ``kill -9`` or its machine went down). On a team
server workspace the heartbeat goes straight to the server, never through the spool.

When the process is interrupted with a run still open, its buffered points are flushed and the run
is ended as v1 ends an interrupted interactive run (the reference is silent on signals, so the
choice follows its context manager): ``KeyboardInterrupt`` (SIGINT) → ``Canceled``; SIGTERM →
``Failed``, with the signal in the error. SIGTERM is caught only where its handler is still the
default one (:func:`trainyard._tracking.buffer.install_sigterm_flush`): a user's handler wins.
A process that exits normally without ending its run leaves that to the reaper (another library,
MLflow's exit hook for one, may still end it).
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainyard._tracking.buffer import install_sigterm_flush, on_termination

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext
    from trainyard._execution.daemon import Heartbeat
    from trainyard._store.base import TrackingStore
    from trainyard.core.run import Run

#: The error code of an interactive run whose process was terminated by a signal.
TERMINATED_CODE = "ProcessTerminated"


@dataclass(frozen=True)
class _Owned:
    run: Run
    store: TrackingStore


_lock = threading.Lock()
_open: dict[str, _Owned] = {}
_heartbeat: Heartbeat | None = None
_hooked = False


def own_run(run: Run, store: TrackingStore, period: float) -> None:
    """Heartbeat ``run`` (through its ``store``) every ``period`` seconds from this process until
    :func:`release_run`; end it with :func:`end_interrupted` if the process is interrupted first."""
    global _heartbeat, _hooked
    run_id = run.id
    with _lock:
        _open[run_id] = _Owned(run, store)
        if not _hooked:
            atexit.register(_at_exit)  # after the buffers' exit flush was registered: runs first
            on_termination(_end_open)
            _hooked = True
        start = _heartbeat is None
        if start:
            from trainyard._execution.daemon import Heartbeat

            _heartbeat = Heartbeat(_beat_all, period, name="trainyard-interactive-heartbeat")
    if _heartbeat is not None:
        if start:
            _heartbeat.start(beat_now=False)
        # The first beat comes from the thread at once: never from here, where a team server
        # that is away would hold up start_logging (its records go through the spool).
        _heartbeat.wake()
    install_sigterm_flush()


def end_interrupted(run: Run, signum: int) -> None:
    """End ``run`` (flushing its points) as v1 ends an interrupted one: Canceled after SIGINT,
    Failed with the signal after any other."""
    if signum == signal.SIGINT:
        run.cancel()
        return
    name = signal.Signals(signum).name
    run.fail(
        error_details=(
            f"The run's process received {name} (signal {signum}) and was terminated before the "
            "run was completed; its logged metrics were flushed."
        ),
        error_code=TERMINATED_CODE,
    )


def release_run(run_id: str) -> None:
    """The run ended (or is being ended): no more heartbeats, nothing to do at an interruption."""
    with _lock:
        _open.pop(run_id, None)


def is_owned(run_id: str) -> bool:
    """Whether this process owns (heartbeats) the interactive run ``run_id``."""
    with _lock:
        return run_id in _open


_last_reap = 0.0
#: ``get_status`` of an interactive run owned elsewhere runs the reaper at most this often.
REAP_EVERY_S = 2.0


def reap_unowned(ctx: WorkspaceContext, run_id: str) -> None:
    """Run the reaper (throttled) unless this process owns ``run_id``: a run whose process died
    is ended by whoever looks at it."""
    global _last_reap
    now = time.monotonic()
    if is_owned(run_id) or now - _last_reap < REAP_EVERY_S:
        return
    _last_reap = now
    from trainyard._execution.reaper import reap_stale_runs

    reap_stale_runs(ctx)


def _beat(run_id: str, store: TrackingStore) -> None:
    try:
        store.heartbeat(run_id)
    except Exception:  # a busy database, an unreachable server: the next period tries again
        pass


def _beat_all() -> None:
    with _lock:
        owned = list(_open.items())
    for run_id, entry in owned:
        _beat(run_id, entry.store)


def _end_open(signum: int) -> None:
    with _lock:
        owned = list(_open.items())
    for run_id, entry in owned:
        try:
            end_interrupted(entry.run, signum)
        except Exception as err:
            print(
                f"trainyard: could not end interactive run {run_id} after signal {signum}: "
                f"{type(err).__name__}: {err}",
                file=sys.stderr,
            )
        release_run(run_id)


def _at_exit() -> None:
    last = getattr(sys, "last_type", None)  # set when an uncaught exception ends the interpreter
    if isinstance(last, type) and issubclass(last, KeyboardInterrupt):
        _end_open(signal.SIGINT)
    if _heartbeat is not None:
        _heartbeat.stop()
