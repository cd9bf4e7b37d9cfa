"""The sweep controller: a detached process that owns one HyperDrive parent run to its end.

``python -m trainyard.train.hyperdrive._controller --workspace HOME --run-id HD_…``, started
through the sweep target's backend (:mod:`trainyard._execution.daemon`).
It heartbeats the parent (so the reaper marks it Failed if the controller dies), moves it Queued →
Running, and then, every ``_TICK`` seconds:

1. reads the children's statuses and primary-metric series (interval k = the k-th logged value);
2. applies the early-termination policy at each new evaluation interval of every running child
   and cancels the losers, logging one line per decision
   (``child 3 cancelled at interval 4: 0.81 < 0.92/1.1 (Bandit slack_factor=0.1)``);
3. tells the generator each finished child's best value and keeps the parent's
   ``best_child_by_primary_metric`` table (a row whenever a new best child appears);
4. starts children ``<parent>_<i>`` (re-runs of ``resume_child_runs`` first, then sampled points)
   while fewer than ``max_concurrent_runs`` are active and ``max_total_runs`` is not used up;
5. stops creating at the budget, when the space is exhausted, when ``max_duration_minutes`` passed
   (running children are cancelled) or on ``cancel()`` (CancelRequested on the parent: every active
   child is cancelled; a SIGTERM to the controller requests exactly that cancel).

When nothing more will be created and every child is terminal it appends the final best row
(``final=True``), uploads its log as ``system_logs/hyperdrive.txt`` and ends the parent Completed
(Canceled after a cancel, Failed if the sweep itself could not run: the template cannot be
submitted any more, or the first ``min(5, max_total_runs)`` children all failed).

Warm start: children of ``resume_from`` sweeps feed the generator (``add_prior`` / ``add_pending``)
and are ``others`` for the policy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

from trainyard._execution.control import request_cancel
from trainyard._execution.daemon import Heartbeat, run_daemon
from trainyard._execution.processes import ExitWatcher, ProcessId
from trainyard._lifecycle import RunStatus
from trainyard.exceptions import (
    AlreadyExistsError,
    HyperDriveConfigException,
    InvalidStatusTransition,
    TrainyardError,
)
from trainyard.train.hyperdrive._children import OUTCOMES, TrackedChild
from trainyard.train.hyperdrive._history import (
    BEST_TABLE,
    HYPERPARAMETERS_PROPERTY,
    RESUMED_CHILD_PROPERTY,
    best_value,
    child_index,
    goal_of,
    hyperparameters_from,
    is_better,
    json_list,
    list_children,
    metric_names,
    primary_series,
    tag_key,
    unmatched_metric_error,
)
from trainyard.train.hyperdrive._submit import CONTROLLER_LOG, controller_log_path

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext

_TICK = 0.1
_LOG_UPLOAD_SECONDS = 3.0
#: The sweep fails when this many of its first finished children (or all, if fewer) failed.
_FIRST_FAILURES = 5
_RESERVED_PROPERTIES = {"ContentSnapshotId", HYPERPARAMETERS_PROPERTY, RESUMED_CHILD_PROPERTY}


class _SweepFailed(Exception):
    """The sweep itself cannot go on (not one child's failure)."""


class Controller:
    """Owns one sweep. Construct in the controller process only."""

    def __init__(self, ctx: WorkspaceContext, run_id: str) -> None:
        from trainyard.core.run import run_from_id
        from trainyard.core.workspace import Workspace

        self.ctx = ctx
        self.ws = Workspace.from_context(ctx)
        self.store = ctx.store
        self.settings = ctx.settings
        self.run_id = run_id
        self.parent = run_from_id(self.ws, run_id, in_job=True)
        self.experiment = self.parent.experiment
        self.log_path = controller_log_path(ctx.home, run_id)
        self.children: dict[str, TrackedChild] = {}
        self.reruns: list[str] = []
        self.next_index = 0
        self.stop_reason = ""
        self.exhausted = False
        self.failure: dict[str, Any] | None = None
        self.best: tuple[str, float] | None = None
        self.finish_order: list[str] = []
        self._metric_checked = False
        self._heartbeat = Heartbeat(
            lambda: self.store.heartbeat(self.run_id),
            self.settings.heartbeat_seconds,
            on_error=lambda err: self.log(f"heartbeat failed: {err}"),
            name="hyperdrive-heartbeat",
        )
        self._exits = ExitWatcher()
        self._last_upload = 0.0
        self._last_reap = 0.0
        self._started: float | None = None
        self._sigterm = False

    # -- small helpers ------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        """One line of the parent's log (stdout is the live log file)."""
        print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}", flush=True)

    def upload_log(self, force: bool = False) -> None:
        """Copy the live log into the parent's files (at most every few seconds unless forced)."""
        now = time.monotonic()
        if not force and now - self._last_upload < _LOG_UPLOAD_SECONDS:
            return
        self._last_upload = now
        sys.stdout.flush()
        if self.log_path.is_file():
            with contextlib.suppress(Exception):
                self.ctx.artifacts.write_file(f"runs/{self.run_id}/{CONTROLLER_LOG}", self.log_path)

    def parent_status(self) -> RunStatus:
        """The parent's current status."""
        return RunStatus.parse(self.store.get_run(self.run_id).status)

    # -- setup --------------------------------------------------------------------------------
    def load(self) -> None:
        """Read the config from the parent's tags and rebuild the sweep's state from history."""
        from trainyard.train.hyperdrive.policy import policy_from_json
        from trainyard.train.hyperdrive.sampling import sampling_from_json

        info = self.store.get_run(self.run_id)
        tags = dict(info.tags)
        try:
            self.sampling = sampling_from_json(json.loads(tags["generator_config"]))
            self.policy = policy_from_json(json.loads(tags.get("policy_config") or "null"))
            self.metric, self.goal = goal_of(tags["primary_metric_config"])
            self.max_total = int(tags["max_total_jobs"])
            self.max_concurrent = max(1, int(tags["max_concurrent_jobs"]))
            self.max_seconds = float(tags["max_duration_minutes"]) * 60.0
        except (KeyError, ValueError, TypeError) as err:
            raise _SweepFailed(
                f"The sweep's configuration tags are missing or broken: {err!r}"
            ) from err
        self.definition = dict(info.definition)
        if not info.snapshot_id:
            raise _SweepFailed("The sweep has no source snapshot.")
        self.snapshot_id = info.snapshot_id
        self.generator = self.sampling.create_generator(goal=self.goal)
        for earlier in json_list(info.properties.get("resume_from")):
            self._load_earlier_sweep(earlier)
        done = self._load_own_children(tags)
        self.reruns = [
            c for c in json_list(info.properties.get("resume_child_runs")) if c not in done
        ]
        self.log(
            f"sweep {self.run_id}: {self.sampling.SAMPLING_NAME} sampling, policy "
            f"{self.policy.to_json()['name']}, primary metric {self.metric!r} ({self.goal}), "
            f"max_total_runs={self.max_total}, max_concurrent_runs={self.max_concurrent}, "
            f"max_duration_minutes={self.max_seconds / 60:g}"
        )

    def _register(self, child: TrackedChild) -> None:
        """Tell the generator about a child that exists already (finished or running)."""
        hp = child.hyperparameters
        if hp is None:
            return
        try:
            if child.terminal:
                state = OUTCOMES[RunStatus.parse(child.status).value]
                self.generator.add_prior(hp, best_value(child.series, self.goal), state)
                child.observed = True
            else:
                child.trial = self.generator.add_pending(hp)
        except HyperDriveConfigException as err:
            self.log(f"{child.run_id}: not used as a prior ({err.message})")

    def _load_earlier_sweep(self, parent_id: str) -> None:
        try:
            parent_tags = dict(self.store.get_run(parent_id).tags)
        except TrainyardError as err:
            self.log(f"resume_from {parent_id}: skipped ({err})")
            return
        count = 0
        for info in list_children(self.store, parent_id):
            child = TrackedChild(
                run_id=info.run_id,
                hyperparameters=hyperparameters_from(info, parent_tags),
                status=info.status,
                foreign=True,
                series=primary_series(self.store, info.run_id, self.metric),
            )
            self._register(child)
            self.children[child.run_id] = child
            count += 1
        self.log(f"warm start: {count} child runs of {parent_id}")

    def _load_own_children(self, tags: dict[str, str]) -> set[str]:
        """Children this sweep created before (a restarted controller); returns the ids of the
        ``resume_child_runs`` they already re-ran."""
        infos = list_children(self.store, self.run_id)
        rerun_done: set[str] = set()
        for info in infos:
            source = info.properties.get(RESUMED_CHILD_PROPERTY)
            if source:
                rerun_done.add(source)
            index = child_index(self.run_id, info.run_id)
            child = TrackedChild(
                run_id=info.run_id,
                hyperparameters=hyperparameters_from(info, tags),
                status=info.status,
                index=index,
                series=primary_series(self.store, info.run_id, self.metric),
            )
            self._register(child)
            self.children[child.run_id] = child
            if index is not None:
                self.next_index = max(self.next_index, index + 1)
        # A tag whose child was never created (the controller died in between) is dropped.
        existing = {i.run_id for i in infos}
        dangling = [
            k
            for k in tags
            if k.startswith(tag_key(f"{self.run_id}_")) and k[len(tag_key("")) :] not in existing
        ]
        if dangling:
            self.store.remove_tags(self.run_id, dangling)
        return rerun_done

    # -- the loop -----------------------------------------------------------------------------
    def own(self) -> list[TrackedChild]:
        """This sweep's children (not those of ``resume_from`` sweeps)."""
        return [c for c in self.children.values() if not c.foreign]

    def active(self) -> list[TrackedChild]:
        """This sweep's children that are not terminal yet."""
        return [c for c in self.own() if not c.terminal]

    def refresh(self) -> None:
        """Statuses and series of every unfinished child; policy decisions; observations."""
        for child in list(self.children.values()):
            if child.terminal and child.observed:
                continue
            try:
                info = self.store.get_run(child.run_id)
            except TrainyardError:
                continue
            child.status = info.status
            if child.terminal:
                self._exits.unwatch(child.run_id)
            elif not child.foreign:
                self._exits.watch(child.run_id, ProcessId.from_dict(info.runtime.get("supervisor")))
            child.series = primary_series(self.store, child.run_id, self.metric)
            if not child.foreign:
                self._update_best(child)
                if not child.terminal and not child.cancel_sent:
                    self._evaluate(child)
            if child.terminal and not child.observed:
                self._finished(child)

    def _evaluate(self, child: TrackedChild) -> None:
        for k in range(child.evaluated + 1, len(child.series) + 1):
            child.evaluated = k
            if not self.policy.is_evaluation_interval(k):
                continue
            others = {
                c.run_id: c.series for c in self.children.values() if c is not child and c.series
            }
            finished = {c.run_id for c in self.children.values() if c.terminal}
            stop, reason = self.policy.should_terminate(
                child.series,
                others,
                k,
                self.goal,
                candidate_id=child.index if child.index is not None else child.run_id,
                finished=finished,
            )
            if stop:
                self.log(reason)
                self._cancel(child)
                return

    def _cancel(self, child: TrackedChild) -> None:
        from trainyard._execution.backends import backend_for

        if child.cancel_sent or child.terminal:
            return
        child.cancel_sent = True
        try:
            backend_for(self.ctx, self.definition.get("target")).cancel(child.run_id)
        except TrainyardError as err:
            self.log(f"cancelling {child.run_id} failed: {err}")

    def _update_best(self, child: TrackedChild) -> None:
        value = best_value(child.series, self.goal)
        if value is None:
            return
        if self.best is None or is_better(value, self.best[1], self.goal):
            self.best = (child.run_id, value)
            self.parent.log_row(BEST_TABLE, run_id=child.run_id, metric_value=value, final=False)
            self.parent.flush()
            self.log(f"new best child {child.run_id}: {self.metric}={value:.6g}")

    def _finished(self, child: TrackedChild) -> None:
        child.observed = True
        value = best_value(child.series, self.goal)
        if child.trial is not None:
            self.generator.observe(
                child.trial, value, OUTCOMES[RunStatus.parse(child.status).value]
            )
        if child.foreign:
            return
        shown = "no value" if value is None else f"best {self.metric}={value:.6g}"
        self.log(f"child {child.index} ({child.run_id}) {child.status}: {shown}")
        if child.status == RunStatus.COMPLETED.value and not self._metric_checked:
            self._metric_checked = True  # the first completed child tells whether the name matches
            if value is None and self.best is None and self.failure is None:
                logged = metric_names(self.store, child.run_id)
                self.failure = unmatched_metric_error(self.metric, child.run_id, logged)
                self.stop(self.failure["message"])
        self.finish_order.append(child.status)
        first = self.finish_order[: min(_FIRST_FAILURES, self.max_total)]
        if (
            self.failure is None
            and len(first) == min(_FIRST_FAILURES, self.max_total)
            and all(s == RunStatus.FAILED.value for s in first)
        ):
            self.failure = {
                "code": "ChildRunsFailed",
                "message": f"The first {len(first)} child runs all failed, so the sweep stopped; "
                f"see the log of {child.run_id} (user_logs/std_log.txt) for the error.",
            }
            self.stop(f"the first {len(first)} child runs failed", cancel_active=False)

    def stop(self, reason: str, cancel_active: bool = True) -> None:
        """Create no more children; cancel the active ones unless told otherwise."""
        if not self.stop_reason:
            self.stop_reason = reason
            self.log(f"no more child runs: {reason}")
        if cancel_active:
            for child in self.active():
                self._cancel(child)

    def launch(self) -> None:
        """Start children while there is budget and a free concurrency slot."""
        while not self.stop_reason and len(self.active()) < self.max_concurrent:
            if len(self.own()) >= self.max_total:
                self.stop(f"max_total_runs={self.max_total} reached", cancel_active=False)
                return
            if self.reruns:
                self._launch_rerun(self.reruns.pop(0))
                continue
            suggestion = self.generator.suggest(1)
            if not suggestion:
                self.exhausted = True
                self.stop("the parameter space is exhausted", cancel_active=False)
                return
            trial, hp = suggestion[0]
            self._launch(hp, trial)

    def _launch_rerun(self, old_id: str) -> None:
        from trainyard.core.run import Run

        try:
            old = Run.get(self.ws, old_id)
            info = old.get_info()
            parent_tags = (
                dict(self.store.get_run(info.parent_run_id).tags) if info.parent_run_id else {}
            )
        except TrainyardError as err:
            self.log(f"resume_child_runs: {old_id} skipped ({err})")
            return
        hp = hyperparameters_from(info, parent_tags)
        if hp is None:
            self.log(f"resume_child_runs: {old_id} skipped (no recorded hyperparameters)")
            return
        folder = self.ctx.runs_dir / self.run_id / "resume" / old_id
        old.download_files(prefix="outputs", output_directory=folder)
        (folder / "outputs").mkdir(parents=True, exist_ok=True)
        trial: int | None
        try:
            trial = self.generator.add_pending(hp)
        except HyperDriveConfigException:
            trial = None
        self._launch(hp, trial, resume_path=str((folder / "outputs").resolve()), rerun_of=old_id)

    def _launch(
        self,
        hp: dict[str, Any],
        trial: int | None,
        resume_path: str | None = None,
        rerun_of: str | None = None,
    ) -> None:
        from trainyard.core._submit import submit_definition
        from trainyard.train.hyperdrive._template import child_definition

        text = json.dumps(hp)
        properties = {k: str(v) for k, v in hp.items() if k not in _RESERVED_PROPERTIES}
        properties[HYPERPARAMETERS_PROPERTY] = text
        if rerun_of is not None:
            properties[RESUMED_CHILD_PROPERTY] = rerun_of
        definition = child_definition(self.definition, hp, resume_path)
        while True:
            index = self.next_index
            self.next_index += 1
            child_id = f"{self.run_id}_{index}"
            self.store.set_tags(self.run_id, {tag_key(child_id): text})
            try:
                run = submit_definition(
                    self.experiment,
                    definition,
                    self.snapshot_id,
                    {},
                    run_id=child_id,
                    parent_run_id=self.run_id,
                    properties=properties,
                )
                break
            except AlreadyExistsError:
                continue  # an id left by an earlier controller: take the next index
            except TrainyardError as err:
                self.store.remove_tags(self.run_id, [tag_key(child_id)])
                raise _SweepFailed(f"Cannot submit child run {child_id}: {err}") from err
        child = TrackedChild(
            run_id=run.id,
            hyperparameters=hp,
            status=RunStatus.QUEUED.value,
            trial=trial,
            index=index,
        )
        self.children[child.run_id] = child
        what = f" (re-run of {rerun_of}, --resume-from {resume_path})" if rerun_of else ""
        self.log(f"child {index} ({child_id}) started with {text}{what}")

    def tick(self) -> bool:
        """One round; True when the sweep is over."""
        status = self.parent_status()
        if status.is_terminal():
            raise _SweepFailed(f"The parent run became {status.value} under the controller.")
        if self._sigterm and status != RunStatus.CANCEL_REQUESTED:  # SIGTERM: v1's cancel()
            request_cancel(self.ctx, self.run_id, reason="the sweep controller received SIGTERM")
            status = self.parent_status()
        if status == RunStatus.CANCEL_REQUESTED:
            self.stop("the sweep was cancelled")
        self._maybe_reap()
        self.refresh()
        if not self.stop_reason:
            if self._started is None:
                self._started = self.store.get_run(self.run_id).start_time or time.time()
            if time.time() - self._started > self.max_seconds:
                self.stop(f"max_duration_minutes={self.max_seconds / 60:g} reached")
            else:
                self.launch()
        self.upload_log()
        return bool(self.stop_reason) and not self.active()

    def _maybe_reap(self) -> None:
        from trainyard._execution.reaper import reap_stale_runs

        now = time.monotonic()
        if now - self._last_reap > self.settings.heartbeat_timeout / 2:
            self._last_reap = now
            reap_stale_runs(self.ctx)

    def finish(self) -> None:
        """Final best row, log upload and the parent's terminal status."""
        for child in self.own():
            child.series = primary_series(self.store, child.run_id, self.metric)
            self._update_best(child)
        if self.best is not None:
            run_id, value = self.best
            self.parent.log_row(BEST_TABLE, run_id=run_id, metric_value=value, final=True)
            self.log(f"best child: {run_id} with {self.metric}={value:.6g}")
        elif self.own():
            self.log(
                f"no child run logged a numeric {self.metric!r}: primary_metric_name must match "
                "the name the script logs exactly"
            )
        self.parent.flush()
        counts: dict[str, int] = {}
        for child in self.own():
            counts[child.status] = counts.get(child.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no child runs"
        status = self.parent_status()
        if status == RunStatus.CANCEL_REQUESTED:
            final, reason, error = RunStatus.CANCELED, "sweep cancelled", None
        elif self.failure is not None:
            final, reason, error = RunStatus.FAILED, self.failure["message"], self.failure
        else:
            final, reason, error = RunStatus.COMPLETED, self.stop_reason, None
        self.log(f"sweep {final.value} ({summary})")
        self._cleanup()
        self.upload_log(force=True)
        self.store.update_run_status(self.run_id, final.value, error=error, reason=reason)

    def _cleanup(self) -> None:
        """Every child is terminal: the template copy and re-run inputs are not needed any more
        (each child has its own snapshot)."""
        import shutil

        root = self.ctx.runs_dir / self.run_id
        for name in ("template", "resume"):
            shutil.rmtree(root / name, ignore_errors=True)

    def fail(self, message: str, code: str = "SweepFailed") -> None:
        """End the parent Failed with ``message`` after cancelling the active children."""
        self.log(f"sweep failed: {message}")
        for child in self.active():
            self._cancel(child)
        with contextlib.suppress(Exception):
            self.parent.flush()
        self.upload_log(force=True)
        with contextlib.suppress(InvalidStatusTransition):
            self.store.update_run_status(
                self.run_id,
                RunStatus.FAILED.value,
                error={"code": code, "message": message},
                reason="sweep failed",
            )

    def main(self) -> int:
        """Drive the sweep to its end; returns the process exit code."""
        self.store.heartbeat(self.run_id)
        self.store.update_run(
            self.run_id,
            runtime={"controller_pid": os.getpid(), "host": socket.gethostname()},
        )
        self._heartbeat.start(beat_now=False)
        signal.signal(signal.SIGTERM, lambda _s, _f: setattr(self, "_sigterm", True))
        try:
            self.store.update_run_status(
                self.run_id,
                RunStatus.RUNNING.value,
                reason="controller started",
                only_from=[RunStatus.QUEUED.value, RunStatus.NOT_STARTED.value],
            )
            self.load()
            while not self.tick():
                # Wakes at once when a child's supervisor exits (its slot is free), else polls.
                self._exits.wait(_TICK)
            self.finish()
            return 0
        except _SweepFailed as err:
            if self.parent_status().is_terminal():
                self.log(str(err))
                for child in self.active():
                    self._cancel(child)
                self.upload_log(force=True)
                return 1
            self.fail(str(err))
            return 1
        except Exception as err:  # never leave the parent Running with nobody driving it
            self.log(traceback.format_exc())
            msg = err.message if isinstance(err, TrainyardError) else f"{type(err).__name__}: {err}"
            self.fail(f"The sweep controller crashed: {msg}", code="SystemError")
            return 1
        finally:
            self._heartbeat.stop()
            self._exits.close()


def _record_crash(ctx: WorkspaceContext, args: argparse.Namespace, err: BaseException) -> None:
    """The controller could not start: end the sweep Failed with the reason."""
    message = err.message if isinstance(err, TrainyardError) else f"{type(err).__name__}: {err}"
    error = {"code": "SystemError", "message": f"The sweep controller crashed: {message}"}
    with contextlib.suppress(TrainyardError):
        ctx.store.update_run_status(str(args.run_id), "Failed", error=error, reason="sweep failed")


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m trainyard.train.hyperdrive._controller --workspace H --run-id ID``."""
    return run_daemon(
        "trainyard-hyperdrive-controller",
        lambda ctx, args: Controller(ctx, str(args.run_id)).main(),
        arguments=(("--run-id", True),),
        on_crash=_record_crash,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
