"""The one owner of trainyard's detached processes: how they start, heartbeat, end and are stopped.

Three kinds of process outlive the notebook that started them: a run's supervisor, a HyperDrive
sweep's controller and a web service's deployer. Each is an :class:`Entrypoint`
(``python -m <module> --workspace HOME <args>``) started by :func:`spawn` — in a new session, stdin
from ``/dev/null``, stdout and stderr appended to its log file, trainyard's run variables removed
from its environment — and each runs its body under :func:`run_daemon`, the fail-safe ``main`` that
opens the workspace context once, reports any crash through the entrypoint's ``on_crash`` hook and
never lets an exception escape without a record. :class:`Heartbeat` is the liveness thread the
supervisor and the controller share, and :func:`terminate_group` the one SIGTERM → grace → SIGKILL
sequence used for scripts, orphans and servers.

When a fork server is running (:mod:`trainyard._execution.forkserver`), :func:`spawn` asks it to fork
the process, which skips the interpreter start-up and imports (most of a supervisor's start-up); it
falls back to a cold start otherwise.

Example::

    ep = Entrypoint("trainyard._execution.supervisor", home, ("--run-id", run_id), log_path)
    pid = spawn(ep)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext

#: Variables that describe *a run*: a detached process started from inside a run (a notebook run
#: submitting a sweep, say) must not inherit them, or it would think it is that run.
_RUN_VARIABLE_PREFIXES = ("TRAINYARD_RUN_ID", "TRAINYARD_RUN_RELAY", "AZUREML_RUN_ID")
#: A team server's own configuration (its database URL) never reaches what it starts.
_SERVER_INTERNALS = ("TRAINYARD_SERVER_CONFIG",)
_POLL_S = 0.05


@dataclass(frozen=True)
class Entrypoint:
    """A detached trainyard process: ``python -m <module> --workspace <home> <args…>``.

    ``log`` receives its stdout and stderr (appended); ``cwd`` defaults to the workspace folder.
    """

    module: str
    home: Path
    args: tuple[str, ...]
    log: Path
    cwd: Path | None = None
    #: Variables added to the caller's environment for this process (e.g. a run token).
    env: tuple[tuple[str, str], ...] = ()

    def argv(self, python: str | None = None) -> list[str]:
        """The command line of a cold start."""
        return [
            python or sys.executable,
            "-m",
            self.module,
            "--workspace",
            str(self.home),
            *self.args,
        ]


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a detached process gets: the caller's, without run variables."""
    source = os.environ if base is None else base
    return {
        k: v
        for k, v in source.items()
        if not k.startswith(_RUN_VARIABLE_PREFIXES) and k not in _SERVER_INTERNALS
    }


def spawn(entrypoint: Entrypoint, env: Mapping[str, str] | None = None) -> int:
    """Start ``entrypoint`` detached and return its pid at once.

    Uses the warm fork server when one answers (see :mod:`trainyard._execution.forkserver`), else a
    cold ``subprocess.Popen`` in a new session.
    """
    entrypoint.log.parent.mkdir(parents=True, exist_ok=True)
    child_env = child_environment(env)
    child_env.update(dict(entrypoint.env))
    cwd = entrypoint.cwd or entrypoint.home
    from trainyard._execution import forkserver

    pid = forkserver.try_spawn(entrypoint, child_env, cwd)
    if pid is not None:
        return pid
    with open(entrypoint.log, "ab") as out:
        proc = subprocess.Popen(
            entrypoint.argv(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=cwd,
            env=child_env,
        )
    # Reap it when it ends, so it never lingers as a zombie that still "looks alive" to a pid
    # check while this process runs on.
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    return proc.pid


class Heartbeat:
    """Calls ``beat`` every ``period`` seconds from a daemon thread until :meth:`stop`.

    A stage can be silent for long (a download, another run's build of the same environment, a
    large upload) while the process is alive: the beat comes from a thread, not from the stage.
    ``on_error`` hears about a failed beat (a busy database); the next period tries again.
    """

    def __init__(
        self,
        beat: Callable[[], None],
        period: float,
        on_error: Callable[[BaseException], None] | None = None,
        name: str = "heartbeat",
    ) -> None:
        self._beat = beat
        self._period = period
        self._on_error = on_error
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self, beat_now: bool = True) -> Heartbeat:
        """Beat once now (unless told not to) and start the thread."""
        if beat_now:
            self._beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        """No more beats (the thread ends at once, or after the beat in progress)."""
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Beat from the thread now rather than at the end of the period (never blocks)."""
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._period)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._beat()
            except Exception as err:
                if self._on_error is not None:
                    self._on_error(err)


def terminate_group(
    pgid: int,
    grace: float,
    exited: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> bool:
    """SIGTERM to process group ``pgid``; SIGKILL to the group after ``grace`` seconds.

    ``exited`` says whether the group's leader has ended (default: the group is gone). Stragglers
    left in the group are killed either way. Returns whether the leader ended within the grace.
    """
    say = log or (lambda _msg: None)
    say(f"SIGTERM to process group {pgid}")
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    gone = exited or (lambda: not group_alive(pgid))
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if gone():
            break
        time.sleep(_POLL_S)
    ended = gone()
    if not ended:
        say(f"SIGKILL to process group {pgid}: still running {grace:g} s after SIGTERM")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    return ended


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is alive (signal 0)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_daemon(
    prog: str,
    body: Callable[[WorkspaceContext, argparse.Namespace], int],
    *,
    arguments: Sequence[tuple[str, bool]] = (),
    on_crash: Callable[[WorkspaceContext, argparse.Namespace, BaseException], None] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """The fail-safe ``main`` of a detached process.

    Parses ``--workspace HOME`` plus ``arguments`` (``(flag, required)`` pairs, e.g.
    ``("--run-id", True)``), opens the workspace context once, runs ``body(ctx, args)`` and returns
    its exit code. An exception that escapes ``body`` is printed (the process log is its stderr),
    handed to ``on_crash`` so the owner can record it (a run Failed with the reason), and ends the
    process with exit code 1 — never a silent death.
    """
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--workspace", required=True)
    for flag, required in arguments:
        parser.add_argument(flag, required=required, default=None)
    args = parser.parse_args(list(argv) if argv is not None else None)
    from trainyard._context import open_context

    try:
        ctx = open_context(Path(args.workspace))
    except Exception as err:
        print(f"{prog}: cannot open the workspace {args.workspace}: {err}", file=sys.stderr)
        return 2
    try:
        return body(ctx, args)
    except Exception as err:  # the last line of defence: record, then exit non-zero
        traceback.print_exc()
        if on_crash is not None:
            try:
                on_crash(ctx, args, err)
            except Exception:
                traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
