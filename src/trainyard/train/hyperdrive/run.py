"""``HyperDriveRun``: the parent run of a sweep (``run.type == "hyperdrive"``; aml-reference §7.8).

Example::

    hyperdrive_run = experiment.submit(hyperdrive_config)
    hyperdrive_run.wait_for_completion(show_output=True)       # live table of the children
    best_run = hyperdrive_run.get_best_run_by_primary_metric()
    print(best_run.get_details()["runDefinition"]["arguments"])
    hyperdrive_run.get_children_sorted_by_primary_metric(top=3)
    # [{'run_id': 'HD_…_2', 'hyperparameters': '{"--lr": 0.1}', 'best_primary_metric': 0.93,
    #   'status': 'Completed'}, …]
"""

from __future__ import annotations

import json
import time
import warnings
from typing import IO, Any

from trainyard._lifecycle import RunStatus
from trainyard._tracking.codec import decode
from trainyard.core.run import Run, register_run_type
from trainyard.exceptions import ActivityFailedException, UserErrorException
from trainyard.train.hyperdrive._history import (
    BEST_TABLE,
    TAG_PREFIX,
    best_value,
    goal_of,
    is_better,
    json_list,
    list_children,
    primary_series,
)
from trainyard.train.hyperdrive._submit import CONTROLLER_LOG, HYPERDRIVE_RUN_TYPE
from trainyard.train.hyperdrive.runconfig import (
    MAX_PARENT_RUNS,
    HyperDriveConfig,
    PrimaryMetricGoal,
)

__all__ = ["HyperDriveRun", "PrimaryMetricGoal"]


class HyperDriveRun(Run):
    """A sweep's parent run. It runs no user code: a controller process creates its children.

    Status: Queued → Running → Completed (budget or duration used, every child terminal) | Failed
    (the sweep itself could not go on, or its controller died) | Canceled (after :meth:`cancel`).

    Example::

        run = experiment.submit(config)          # HyperDriveRun
        run.wait_for_completion()
        run.get_best_run_by_primary_metric().id  # 'HD_…_3'
    """

    _last_reap = 0.0

    # -- status -------------------------------------------------------------------------------
    def get_status(self) -> str:
        """The v1 status string; a parent whose controller died is marked Failed first (the
        reaper runs at most every few seconds from here)."""
        now = time.monotonic()
        if now - HyperDriveRun._last_reap > 2.0:
            from trainyard._execution.reaper import reap_stale_runs

            reap_stale_runs(self._ctx)
            HyperDriveRun._last_reap = now
        return self._refresh().status

    # -- configuration ------------------------------------------------------------------------
    def primary_metric(self) -> tuple[str, str]:
        """The primary metric's name and goal (``"maximize"`` / ``"minimize"``)."""
        return goal_of(self._info.tags.get("primary_metric_config"))

    def _goal(self) -> tuple[str, str]:
        return self.primary_metric()

    @property
    def hyperdrive_config(self) -> HyperDriveConfig:
        """The sweep's :class:`HyperDriveConfig`, rebuilt from the parent's tags and template."""
        from trainyard.train.hyperdrive._template import config_from_definition
        from trainyard.train.hyperdrive.policy import policy_from_json
        from trainyard.train.hyperdrive.sampling import sampling_from_json

        info = self._refresh()
        tags = info.tags
        name, goal = goal_of(tags.get("primary_metric_config"))
        duration = float(tags.get("max_duration_minutes", "10080"))
        # A chain of resumed sweeps can list more earlier sweeps than a user config may (5).
        earlier = json_list(info.properties.get("resume_from"))[:MAX_PARENT_RUNS]
        resume_from = [Run.get(self._workspace, r) for r in earlier]
        children = [
            Run.get(self._workspace, r) for r in json_list(info.properties.get("resume_child_runs"))
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return HyperDriveConfig(
                hyperparameter_sampling=sampling_from_json(json.loads(tags["generator_config"])),
                primary_metric_name=name,
                primary_metric_goal=PrimaryMetricGoal.from_str(goal),
                max_total_runs=max(1, int(tags["max_total_jobs"])),
                max_concurrent_runs=min(100, int(tags["max_concurrent_jobs"])),
                max_duration_minutes=int(duration) if duration.is_integer() else duration,
                policy=policy_from_json(json.loads(tags.get("policy_config") or "null")),
                run_config=config_from_definition(info.definition),
                resume_from=resume_from,
                resume_child_runs=children[: max(1, int(tags["max_total_jobs"]))],
            )

    # -- children -----------------------------------------------------------------------------
    def get_hyperparameters(self) -> dict[str, str]:
        """``{child_run_id: json_str}`` read from the parent's tags (v1 names).

        Example::

            run.get_hyperparameters()   # {'HD_…_0': '{"--batchsize": 128, "--epochs": 5}', …}
        """
        out: dict[str, str] = {}
        for key, value in self.get_tags().items():
            if key.startswith(f"{TAG_PREFIX}{self.id}_"):
                out[key[len(TAG_PREFIX) :]] = value
            elif key.startswith(f"{self.id}_") and key[len(self.id) + 1 :].isdigit():
                out.setdefault(key, value)  # legacy v1 tag form
        return out

    def _child_rows(
        self, include_failed: bool = True, include_canceled: bool = True
    ) -> list[dict[str, Any]]:
        name, goal = self._goal()
        hyperparameters = self.get_hyperparameters()
        rows = []
        for info in list_children(self._store, self.id):
            if info.status == RunStatus.FAILED.value and not include_failed:
                continue
            if info.status == RunStatus.CANCELED.value and not include_canceled:
                continue
            rows.append(
                {
                    "run_id": info.run_id,
                    "hyperparameters": hyperparameters.get(info.run_id),
                    "best_primary_metric": best_value(
                        primary_series(self._store, info.run_id, name), goal
                    ),
                    "status": info.status,
                }
            )
        return rows

    def _sort(self, rows: list[dict[str, Any]], reverse: bool = False) -> list[dict[str, Any]]:
        _, goal = self._goal()
        with_metric = [r for r in rows if r["best_primary_metric"] is not None]
        without = [r for r in rows if r["best_primary_metric"] is None]
        with_metric.sort(
            key=lambda r: r["best_primary_metric"], reverse=(goal == "maximize") != reverse
        )
        return with_metric + without

    def get_children_sorted_by_primary_metric(
        self, top: int = 0, reverse: bool = False, discard_no_metric: bool = False
    ) -> list[dict[str, Any]]:
        """Children best first for the goal: ``[{"run_id", "hyperparameters",
        "best_primary_metric", "status"}, …]``.

        Children without the metric come last unless ``discard_no_metric``; ``top=0`` means all;
        ``reverse`` puts the worst first.

        Example::

            run.get_children_sorted_by_primary_metric(top=1)[0]["run_id"]
        """
        rows = self._sort(self._child_rows(), reverse)
        if discard_no_metric:
            rows = [r for r in rows if r["best_primary_metric"] is not None]
        return rows[:top] if top and top > 0 else rows

    def _best_table(self) -> list[dict[str, Any]]:
        """Rows of ``best_child_by_primary_metric`` in logged order."""
        self.flush()
        decoded = decode(self._store.get_metric_chunks(self.id, [BEST_TABLE]))
        _, points = decoded.get(BEST_TABLE, ("row", []))
        return [p.value for p in points if isinstance(p.value, dict)]

    def _best_own(
        self, include_failed: bool, include_canceled: bool
    ) -> tuple[str, float | None] | None:
        """(child id, value) of this sweep's best child, table first (see the public method)."""

        def allowed(status: str) -> bool:
            return (status != RunStatus.FAILED.value or include_failed) and (
                status != RunStatus.CANCELED.value or include_canceled
            )

        terminal = RunStatus.parse(self._refresh().status).is_terminal()
        rows = self._best_table()
        if terminal:
            rows = [r for r in rows if r.get("final")]
        if rows:
            child_id = str(rows[-1].get("run_id"))
            value = rows[-1].get("metric_value")
            if allowed(self._store.get_run(child_id).status):
                return child_id, float(value) if isinstance(value, int | float) else None
        ranked = self._sort(self._child_rows(include_failed, include_canceled))
        ranked = [r for r in ranked if r["best_primary_metric"] is not None]
        if not ranked:
            return None
        return str(ranked[0]["run_id"]), float(ranked[0]["best_primary_metric"])

    def get_best_run_by_primary_metric(
        self,
        include_failed: bool = True,
        include_canceled: bool = True,
        include_resume_from_runs: bool = True,
    ) -> Run | None:
        """The child with the best primary metric (exactly one, even on ties), or ``None``.

        Reads the ``best_child_by_primary_metric`` table first: on a finished sweep its ``final``
        row is trusted if the status flags allow that child; otherwise the children are sorted by
        their logged metric. With ``include_resume_from_runs`` the best runs of the ``resume_from``
        sweeps compete too.

        Example::

            best = run.get_best_run_by_primary_metric(include_canceled=False)
        """
        found = self._best_own(include_failed, include_canceled)
        if include_resume_from_runs:
            _, goal = self._goal()
            for earlier in json_list(self._refresh().properties.get("resume_from")):
                parent = Run.get(self._workspace, earlier)
                if not isinstance(parent, HyperDriveRun):
                    continue
                theirs = parent._best_own(include_failed, include_canceled)
                if theirs is None or theirs[1] is None:
                    continue
                if found is None or found[1] is None or is_better(theirs[1], found[1], goal):
                    found = theirs
        return None if found is None else Run.get(self._workspace, found[0])

    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        """**The children's metrics**, keyed by child run id (v1), not the parent's own.

        Example::

            run.get_metrics()   # {'HD_…_0': {'Accuracy': [0.8, 0.9]}, 'HD_…_1': {…}}
        """
        out: dict[str, Any] = {}
        for child in self.get_children():
            out[child.id] = child.get_metrics(name, recursive=recursive, run_type=run_type)
        return out

    # -- control ------------------------------------------------------------------------------
    def cancel(self) -> bool:
        """Cancel the sweep: its active children are cancelled and it ends Canceled.

        Returns ``True`` once the cancel is requested (``False`` if the sweep had finished).

        Example::

            run.cancel()     # True
        """
        from trainyard._execution.backends import backend_for
        from trainyard._execution.control import request_cancel

        info = self._refresh()
        if not request_cancel(self._ctx, self.id):
            return False
        # The controller cancels the children too; doing it here as well makes a cancel work
        # even while the controller is between two rounds (or gone).
        for child in list_children(self._store, self.id):
            if not RunStatus.parse(child.status).is_terminal():
                backend_for(self._ctx, child.target).cancel(child.run_id)
        stale = (
            time.time() - (info.heartbeat_at or info.created_at)
        ) > self._settings.heartbeat_timeout
        if stale:
            self._store.update_run_status(
                self.id,
                RunStatus.CANCELED.value,
                reason="cancelled; the controller was not running",
                only_from=[RunStatus.CANCEL_REQUESTED.value],
            )
        return True

    def resume(self) -> HyperDriveRun:
        """**Trainyard extension:** continue a sweep whose controller died or that was cancelled.

        Finished statuses are final, so this submits a continuation sweep (same template, sampler,
        policy and goal) with the budget left, ``resume_from`` = this sweep: it never repeats this
        sweep's points, its policy sees their metrics, and its best run considers them. Returns
        the new :class:`HyperDriveRun`; raises ``UserErrorException`` for a sweep that is still
        running, completed, or has no budget left.

        Example::

            if run.get_status() == "Failed":
                run = run.resume()
                run.wait_for_completion()
        """
        from trainyard.train.hyperdrive._submit import resume_sweep

        self.get_status()
        return resume_sweep(self)

    def fail(
        self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True
    ) -> None:
        """Not implemented for HyperDrive runs (v1); use :meth:`cancel`."""
        raise UserErrorException("fail is not implemented for HyperDriveRun; use cancel().")

    def get_diagnostics(self) -> Any:
        """Not implemented for HyperDrive runs (v1)."""
        raise UserErrorException("get_diagnostics is not implemented for HyperDriveRun.")

    def complete(self, _set_status: bool = True) -> None:
        """A sweep's status comes from its controller; this only flushes."""
        self.flush()

    # -- watching -----------------------------------------------------------------------------
    def wait_for_completion(
        self,
        show_output: bool = False,
        wait_post_processing: bool = False,
        raise_on_error: bool = True,
        _out: IO[str] | None = None,
    ) -> dict[str, Any]:
        """Block until the sweep ends and return its details dict.

        With ``show_output`` a live table of the children (run id, status, hyperparameters, best
        primary metric) is shown, in a terminal or notebook with ``rich``, elsewhere as plain
        lines together with the controller's decisions. Raises ``ActivityFailedException`` if the
        sweep ends Failed (unless ``raise_on_error=False``). Ctrl-C stops watching, not the sweep.

        Example::

            details = run.wait_for_completion(show_output=True)
            details["status"]     # 'Completed'
        """
        from trainyard.train.hyperdrive._display import watch

        watch(self, show_output=show_output, out=_out)
        details = self.get_details()
        if details["status"] == RunStatus.FAILED.value:
            error = details.get("error") or {}
            if raise_on_error:
                raise ActivityFailedException(
                    f"HyperDrive run {self.id} failed: {error.get('message', 'unknown error')}",
                    error_details=json.dumps(error, indent=2),
                    run_id=self.id,
                )
        return details

    def get_log_names(self) -> list[str]:
        """The sweep's logs so far (the controller's ``system_logs/hyperdrive.txt``), live."""
        return [CONTROLLER_LOG] if self.read_log(CONTROLLER_LOG, 0, 1) else []

    def read_log(self, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Bytes of log ``name`` from ``offset``; the controller's log is read live."""
        from trainyard._execution.backends import backend_for

        return backend_for(self._ctx, self._info.target).read_log(self.id, name, offset, limit)


register_run_type(HYPERDRIVE_RUN_TYPE, HyperDriveRun)
