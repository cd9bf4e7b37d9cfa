"""The per-run supervisor: a detached process that owns one run from Queued to its terminal status.

``python -m trainyard._execution.supervisor --workspace HOME --run-id ID`` (started by
:func:`trainyard._execution.daemon.spawn` through the local backend)

Queued (waits for a slot, FIFO) → Preparing (environment built or reused; its log is
``system_logs/environment_build.txt``) → Running (the script in a fresh working copy of the snapshot,
``./outputs`` and ``./logs`` created, stdout+stderr to ``user_logs/std_log.txt``, ``./logs`` synced;
a distributed run starts its ranks through :mod:`trainyard._execution.launch`, each logging to
``user_logs/std_log_process_<rank>.txt``) →
Finalizing (``./outputs`` uploaded) → Completed | Failed (exit code, message, traceback tail) |
Canceled (``run.cancel()`` or ``max_run_duration_seconds``: SIGTERM to the script's process group,
SIGKILL after a grace period). It heartbeats throughout; see :mod:`trainyard._execution.reaper`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from trainyard._context import relay_description
from trainyard._execution import launch, runfiles
from trainyard._execution.daemon import Heartbeat, run_daemon
from trainyard._execution.distributed import Layout
from trainyard._execution.inputs import build_argv
from trainyard._execution.processes import ProcessId
from trainyard._execution.slots import slot_dir, try_acquire
from trainyard._execution.sysmetrics import SYSTEM_METRICS_LOG, SystemSampler
from trainyard._lifecycle import RunStatus
from trainyard._store.relay import StoreRelay
from trainyard.exceptions import InvalidStatusTransition, StoreError, TrainyardError

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext

_TICK = 0.1
#: The supervisor's loop while the script runs: its exit wakes the wait at once (pidfd), so this
#: only bounds how soon a cancel or time limit is acted on; longer ticks cost the script less CPU.
_RUN_TICK = 0.25
#: How often a running script's supervisor reads the run's status for a cancel request (seconds).
_CANCEL_POLL = 2.0


class _Canceled(Exception):
    """The run was cancelled (by the user or a time limit) before or while it ran."""

    def __init__(self, reason: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class Supervisor:
    """Owns one run. Construct in the supervisor process only."""

    def __init__(self, ctx: WorkspaceContext, run_id: str) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.settings = ctx.settings
        self.run_id = run_id
        self.info = self.store.get_run(run_id)
        self.definition: dict[str, Any] = self.info.definition
        self.paths = runfiles.RunPaths(ctx.home, run_id)
        self.paths.live.mkdir(parents=True, exist_ok=True)
        self.syslog: IO[str] = open(self.paths.supervisor_log, "a", buffering=1)  # noqa: SIM115
        self._cancel_signal = False
        self._heartbeat = Heartbeat(
            lambda: self.store.heartbeat(self.run_id),
            self.settings.heartbeat_seconds,
            on_error=lambda err: self.log(f"heartbeat failed: {type(err).__name__}: {err}"),
        )
        #: How the script's processes are laid out (one, or MPI / PyTorch ranks).
        self.layout = Layout.from_definition(self.definition)
        #: The script's processes while it runs (see :mod:`trainyard._execution.launch`).
        self.ranks: launch.Ranks | None = None
        #: Seconds Preparing took when recording the environment waits until the script started
        #: (see :meth:`prepare`); ``None`` otherwise.
        self._deferred_prepare: float | None = None

    # -- small helpers ------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        # A full disk must not turn a run's real failure into a crash of its owner: the line is lost.
        with contextlib.suppress(OSError):
            self.syslog.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}\n")

    def status(self) -> str:
        return self.store.get_run(self.run_id).status

    def move(self, status: RunStatus, **kw: Any) -> None:
        """Change status; a concurrent cancel turns into :class:`_Canceled`."""
        try:
            self.store.update_run_status(self.run_id, status.value, **kw)
        except InvalidStatusTransition:
            current = self.status()
            if current == RunStatus.CANCEL_REQUESTED.value:
                raise _Canceled("Canceled by user request.") from None
            raise
        self.log(f"status -> {status.value}")

    def check_cancel(self, read_store: bool = True) -> None:
        """Raise :class:`_Canceled` after SIGTERM or (``read_store``) a recorded cancel request."""
        if self._cancel_signal or (
            read_store and self.status() == RunStatus.CANCEL_REQUESTED.value
        ):
            raise _Canceled("Canceled by user request.")

    # -- stages -------------------------------------------------------------------------------
    def wait_for_slot(self) -> Any:
        """Queued: FIFO among this target's queued runs, then a free slot."""
        from trainyard._execution.reaper import reap_stale_runs
        from trainyard._execution.targets import capacity, resolve_target_record

        target = resolve_target_record(self.ctx, self.info.target)
        sdir = slot_dir(self.ctx.home, target.name)
        last_reap = 0.0
        first = True
        while True:
            # A run that starts at once needs no read here: moving it to Preparing fails on a
            # cancel recorded meanwhile (CancelRequested → Preparing is not a transition).
            self.check_cancel(read_store=not first)
            first = False
            if self._is_head(target.name):
                slot = try_acquire(sdir, capacity(target.config))
                if slot is not None:
                    self.log(f"acquired slot {slot.index} of {target.name}")
                    return slot
            # Waiting: a dead run ahead in the queue would block it forever, so reap (at once, then
            # every half timeout). A run that starts straight away skips this query.
            if time.time() - last_reap > self.settings.heartbeat_timeout / 2:
                reap_stale_runs(self.ctx)
                last_reap = time.time()
                continue
            time.sleep(_TICK)

    def _is_head(self, target: str) -> bool:
        queued, _ = self.store.list_runs(
            workspace_id=self.ctx.workspace_id,
            statuses=[RunStatus.QUEUED.value],
            include_children=True,
            limit=1000,
        )
        mine = sorted(
            (r for r in queued if (r.target or "local") == target),
            key=lambda r: (r.created_at, r.number),
        )
        return not mine or mine[0].run_id == self.run_id

    def prepare(self) -> tuple[str, dict[str, str]]:
        """Preparing: build or reuse the environment; returns (python, extra env).

        A user-managed environment on this interpreter (the default) is known at once: the script
        starts with it, and :meth:`record_deferred_environment` lists and records its packages after.
        """
        from trainyard._execution.prepare import current_interpreter

        started = time.monotonic()
        env_def = self.definition.get("environment") or {}
        current = current_interpreter(env_def)
        if current is not None:
            self._deferred_prepare = time.monotonic() - started
            return current
        return self._prepare_environment(env_def, started)

    def record_deferred_environment(self) -> None:
        """After the script started: record the environment :meth:`prepare` did not wait for (its
        build-log line and its installed packages). A failure here is logged, never fatal."""
        seconds, self._deferred_prepare = self._deferred_prepare, None
        if seconds is None:
            return
        try:
            env_def = self.definition.get("environment") or {}
            self._prepare_environment(env_def, time.monotonic(), seconds=seconds)
        except Exception as err:
            self.log(f"recording the environment failed: {type(err).__name__}: {err}")

    @property
    def extra_requirements(self) -> tuple[str, ...]:
        """What the job adds to a built environment: ChainerMN and other MPI scripts import
        ``mpi4py``, so an MPI job's environment has it."""
        return ("mpi4py",) if self.layout.kind == "mpi" else ()

    def _prepare_environment(
        self, env_def: dict[str, Any], started: float, seconds: float | None = None
    ) -> tuple[str, dict[str, str]]:
        from trainyard._execution.prepare import prepare_environment

        with open(self.paths.build_log, "a", buffering=1) as blog:
            prepared = prepare_environment(
                env_def,
                self.settings,
                blog.write,
                extra_requirements=self.extra_requirements,
            )
        if seconds is None:
            seconds = time.monotonic() - started
        self.store.update_run(
            self.run_id,
            runtime={
                "environment_hash": prepared.spec_hash,
                "environment_cached": prepared.cached,
                "prepare_seconds": round(seconds, 3),
                "python": prepared.python,
                "resolved_packages": prepared.resolved,
            },
        )
        self.log(
            f"environment ready in {seconds:.2f}s (cached={prepared.cached}) python={prepared.python}"
        )
        return prepared.python, prepared.env

    def run_script(self, python: str, env_extra: dict[str, str]) -> int:
        """Running: start the script in its own process group, supervise it, return its exit code."""
        wd = self.paths.workdir
        from trainyard._execution.snapshot import SnapshotStore

        if wd.exists():
            shutil.rmtree(wd)
        SnapshotStore(self.ctx.snapshots_dir).restore(str(self.info.snapshot_id), wd)
        (wd / "outputs").mkdir(exist_ok=True)
        (wd / "logs").mkdir(exist_ok=True)
        argv = build_argv(self.ctx.artifacts, python, self.definition, wd)
        env = runfiles.script_env(self.ctx, self.info, self.definition, python, env_extra)
        limit = self.definition.get("maxRunDurationSeconds")
        self.log(f"starting: {argv}")
        self.move(RunStatus.RUNNING)
        ranks = self.ranks = self.start_ranks(argv, env, wd)
        leader = ranks.pgid
        runtime: dict[str, Any] = {
            "script_pid": leader,
            "script_pgid": leader,
            "script": ProcessId.of(leader).to_dict(),
            "host": socket.gethostname(),
        }
        if self.layout.ranked:
            runtime.update(
                launcher=self.layout.kind, world_size=self.layout.world_size, rank_pids=ranks.pids
            )
        self.store.update_run(self.run_id, runtime=runtime)
        started = time.monotonic()
        # The script's CPU, memory and I/O, beside its own metrics (every rank is in its session).
        sampler = SystemSampler(
            self.paths.live_file(SYSTEM_METRICS_LOG), leader, self.settings.system_metrics_seconds
        )
        sampler.start()
        try:
            return self._supervise(ranks, wd, limit, started)
        finally:
            sampler.stop()

    def start_ranks(self, argv: list[str], env: dict[str, str], wd: Path) -> launch.Ranks:
        """Start the script's processes (one, or this machine's ranks)."""
        return launch.start(
            self.layout,
            argv,
            env,
            wd,
            self.paths,
            run_id=self.run_id,
            grace=self.settings.cancel_grace_seconds,
            log=self.log,
        )

    def _supervise(self, ranks: launch.Ranks, wd: Path, limit: Any, started: float) -> int:
        """Wait for the script while syncing its logs and acting on a cancel or its time limit."""
        self.record_deferred_environment()
        syncer = runfiles.LogSyncer(self.ctx.artifacts, self.run_id, self.paths, wd)
        next_sync = 0.0
        next_cancel_check = 0.0
        cancel_file = self.paths.cancel_file
        while True:
            returncode = ranks.wait(_RUN_TICK)
            if returncode is not None:
                rc = returncode
                break
            if time.monotonic() >= next_sync:
                with contextlib.suppress(StoreError):  # a server away: the next tick tries again
                    syncer.sync()
                next_sync = time.monotonic() + 2.0
            cancel: _Canceled | None = None
            if self._cancel_signal or cancel_file.exists() or time.monotonic() >= next_cancel_check:
                # A local cancel also writes the kill file (a stat, checked every tick); the
                # database is read every _CANCEL_POLL for cancels made elsewhere; SIGTERM is seen
                # at the next tick.
                next_cancel_check = time.monotonic() + _CANCEL_POLL
                try:
                    self.check_cancel()
                except _Canceled as c:
                    cancel = c
                except StoreError as err:  # the store is away: keep running, ask again later
                    self.log(f"cancel check failed: {err}")
            if cancel is None and limit and time.monotonic() - started > float(limit):
                msg = f"The run exceeded max_run_duration_seconds={limit} and was canceled."
                cancel = _Canceled(msg, {"code": "MaxRunDurationExceeded", "message": msg})
            if cancel is not None:
                ranks.close()
                ranks.terminate()
                syncer.sync()
                raise cancel
        ranks.close()
        ranks.kill_stragglers()
        syncer.sync()
        return rc

    def ship_script_spool(self) -> None:
        """Send what the script spooled for a team server but could not send before it exited
        (killed, or the server was away): its records land before the run leaves Running."""
        from trainyard._store.rest.spooling import SpoolingRestStore

        if isinstance(self.store, SpoolingRestStore):
            files, records = self.store.sync_sibling(
                self.run_id,
                timeout=self.settings.spool_exit_seconds,
                on_refused=lambda seq, op, err: self.log(f"server refused a {op} record: {err}"),
            )
            if records:
                self.log(f"sent {records} record(s) the script left in {files} spool file(s)")

    def finalize(self, upload_outputs: bool) -> None:
        """Upload outputs (if asked) and the final logs."""
        wd = self.paths.workdir
        if upload_outputs and (wd / "outputs").is_dir():
            runfiles.upload_tree(self.ctx.artifacts, self.run_id, wd / "outputs", "outputs", wd)
        if (wd / "logs").is_dir():
            runfiles.upload_tree(self.ctx.artifacts, self.run_id, wd / "logs", "logs", wd)
        if upload_outputs:
            # v1's "The activity completed successfully. Finalizing run...": from here on the run's
            # files are in place, so wait_for_completion (without wait_post_processing) may return.
            self.store.update_run(self.run_id, runtime={"outputs_uploaded": True})
        runfiles.upload_live_logs(self.ctx.artifacts, self.run_id, self.paths)

    # -- main ---------------------------------------------------------------------------------
    def main(self) -> int:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self._heartbeat.start()
        slot = None
        stage = "Queued"
        try:
            slot = self.wait_for_slot()
            stage = "Preparing"
            self.move(RunStatus.PREPARING)
            self.store.update_run(
                self.run_id, runtime={"supervisor": ProcessId.of(os.getpid()).to_dict()}
            )
            python, env_extra = self.prepare()
            # Moving to Running fails on a cancel recorded meanwhile; SIGTERM is checked here.
            self.check_cancel(read_store=False)
            stage = "Running"
            # The script's records go through this process (see trainyard._store.relay), so its
            # environment needs no database driver and trainyard pins nothing in it.
            with StoreRelay(
                self.store, self.ctx.artifacts, describe=relay_description(self.ctx)
            ) as relay:
                rc = self.run_script(python, {**env_extra, **relay.env})
            self.ship_script_spool()
            stage = "Finalizing"
            # A failure is recorded as the run enters Finalizing: a watcher that stops at
            # Finalizing (wait_post_processing=False) must see it, not report success.
            error = self.ranks.failure(rc) if rc != 0 and self.ranks is not None else None
            self.move(RunStatus.FINALIZING, error=error)
            self.finalize(upload_outputs=True)
            if error is None:
                self.move(RunStatus.COMPLETED)
            else:
                self.move(RunStatus.FAILED, error=error, reason=f"exit code {rc}")
            return 0
        except _Canceled as c:
            self.log(c.reason)
            with contextlib.suppress(Exception):
                self.ship_script_spool()
            with contextlib.suppress(Exception):
                self.finalize(upload_outputs=stage in ("Running", "Finalizing"))
            with contextlib.suppress(InvalidStatusTransition):
                if self.status() != RunStatus.CANCEL_REQUESTED.value:
                    self.store.update_run_status(
                        self.run_id, RunStatus.CANCEL_REQUESTED.value, reason=c.reason
                    )
                self.store.update_run_status(
                    self.run_id, RunStatus.CANCELED.value, error=c.error, reason=c.reason
                )
            return 0
        except (
            Exception
        ) as err:  # anything else fails the run with the reason, never leaves it hanging
            tb = traceback.format_exc()
            self.log(tb)
            msg = err.message if isinstance(err, TrainyardError) else f"{type(err).__name__}: {err}"
            code = (
                getattr(err, "code", "SystemError")
                if isinstance(err, TrainyardError)
                else "SystemError"
            )
            with contextlib.suppress(Exception):
                self.finalize(upload_outputs=False)
            self.record_failure(
                {"code": code, "message": msg, "stage": stage}, f"failed in {stage}"
            )
            return 1
        finally:
            self._heartbeat.stop()
            if slot is not None:
                slot.release()
            with contextlib.suppress(Exception):
                shutil.rmtree(self.paths.workdir, ignore_errors=True)
            with contextlib.suppress(OSError):  # its last line may not fit on a full disk
                self.syslog.close()

    def record_failure(self, error: dict[str, Any], reason: str) -> None:
        """End the run Failed with ``error``, the real cause. A full disk (the usual reason an
        upload failed) refuses this write too: the run's working copy is removed to make room (it
        is removed at the end anyway) and the write retried for up to half the heartbeat timeout,
        so the run never ends as a lost supervisor or a crash at the wrong stage."""
        deadline = time.monotonic() + self.settings.heartbeat_timeout / 2
        freed = False
        while True:
            try:
                self.store.update_run_status(
                    self.run_id, RunStatus.FAILED.value, error=error, reason=reason
                )
                return
            except InvalidStatusTransition:
                return  # ended meanwhile (a cancel)
            except StoreError as err:
                with contextlib.suppress(OSError):
                    self.log(f"recording the failure failed: {err}")
                if not freed:
                    shutil.rmtree(self.paths.workdir, ignore_errors=True)
                    freed = True
                    continue
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._cancel_signal = True


def record_crash(ctx: WorkspaceContext, args: argparse.Namespace, err: BaseException) -> None:
    """The supervisor could not even start owning the run: end it Failed with the reason."""
    message = err.message if isinstance(err, TrainyardError) else f"{type(err).__name__}: {err}"
    with contextlib.suppress(TrainyardError):
        ctx.store.update_run_status(
            str(args.run_id),
            RunStatus.FAILED.value,
            error={"code": "SupervisorCrashed", "message": message, "stage": "Queued"},
            reason="the supervisor crashed",
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m trainyard._execution.supervisor --workspace HOME --run-id ID``."""
    return run_daemon(
        "trainyard-supervisor",
        lambda ctx, args: Supervisor(ctx, str(args.run_id)).main(),
        arguments=(("--run-id", True),),
        on_crash=record_crash,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
