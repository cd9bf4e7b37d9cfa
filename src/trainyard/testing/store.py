"""Conformance suite that every :class:`~trainyard._store.base.TrackingStore` must pass.

Subclass :class:`TrackingStoreConformance` and provide a ``store`` fixture (as Optuna's
``pytest_storages`` does); the SQL store runs it on SQLite and PostgreSQL, and a REST store will run
the same tests::

    import pytest
    from trainyard._store.sql.store import SqlTrackingStore
    from trainyard.testing.store import TrackingStoreConformance

    class TestSqliteConformance(TrackingStoreConformance):
        @pytest.fixture
        def store(self, sqlite_url):
            return SqlTrackingStore(sqlite_url)

or without pytest's collection::

    run_tracking_store_conformance(lambda: SqlTrackingStore(f"sqlite:///{tempfile.mkdtemp()}/t.db"))

The store need not be empty: every test works in workspaces with fresh random names. Tests that need
a terminal run *older than the late-flush grace period* call :meth:`~TrackingStoreConformance.
backdate_run_end`; override it for stores other than the SQL one (or let those tests skip).
"""

from __future__ import annotations

import inspect
import math
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from trainyard._execution.lifecycle import RunStatus, allowed_next
from trainyard._store.base import TrackingStore
from trainyard._store.entities import ExperimentInfo, MetricChunk, ModelInfo, NewRun, RunInfo
from trainyard._tracking.codec import decode, json_chunk, numeric_chunk
from trainyard.exceptions import (
    AlreadyExistsError,
    ComputeTargetException,
    EnvironmentNotFound,
    ExperimentNotFound,
    ImmutablePropertyError,
    InvalidStatusTransition,
    ModelNotFoundException,
    RunFinishedError,
    RunNotFound,
    WebserviceException,
    WorkspaceNotFound,
)

__all__ = ["TrackingStoreConformance", "run_tracking_store_conformance"]

T = TypeVar("T")

_S = RunStatus
#: A path through every pre-terminal status, in v1's typical order.
_TYPICAL_PATH = (
    _S.STARTING,
    _S.PROVISIONING,
    _S.PREPARING,
    _S.QUEUED,
    _S.RUNNING,
    _S.FINALIZING,
    _S.COMPLETED,
)


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _race(n: int, fn: Callable[[int], T]) -> list[T]:
    """Call ``fn(i)`` for ``i`` in ``range(n)`` on ``n`` threads released at the same moment."""
    barrier = threading.Barrier(n)

    def go(i: int) -> T:
        barrier.wait(timeout=30)
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


def _floats(values: Iterable[float]) -> array[float]:
    return array("d", values)


def _chunk(name: str, values: Sequence[float], steps: Sequence[int] | None = None) -> MetricChunk:
    n = len(values)
    return numeric_chunk(
        name,
        _floats(values),
        _floats(1_700_000_000.0 + i for i in range(n)),
        array("q", steps) if steps is not None else None,
        all(type(v) is int for v in values),
    )


def _same_float(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) and type(a) is type(b)


class TrackingStoreConformance:
    """The behaviour every ``TrackingStore`` shares; subclass it and provide a ``store`` fixture.

    Example::

        class TestMyStore(TrackingStoreConformance):
            @pytest.fixture
            def store(self):
                return MyStore.connect()
    """

    # -- hooks --------------------------------------------------------------------------------

    @pytest.fixture
    def store(self) -> TrackingStore:
        """Override in the subclass: return the store under test (it need not be empty)."""
        pytest.fail(
            f"{type(self).__name__} must define a `store` fixture returning a TrackingStore"
        )

    def backdate_run_end(self, store: TrackingStore, run_id: str, seconds: float) -> None:
        """Make a terminal run look as if it ended ``seconds`` ago (past the late-flush grace).

        The default handles :class:`~trainyard._store.sql.store.SqlTrackingStore`; other stores
        override it or the tests that need it are skipped.
        """
        from trainyard._store.sql.store import SqlTrackingStore

        if not isinstance(store, SqlTrackingStore):
            pytest.skip(f"{type(store).__name__}: override backdate_run_end to run this test")
        from sqlalchemy import update

        from trainyard._store.sql import schema

        with store.engine.begin() as conn:
            conn.execute(
                update(schema.runs)
                .where(schema.runs.c.run_id == run_id)
                .values(end_time=time.time() - seconds)
            )

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _experiment(store: TrackingStore) -> ExperimentInfo:
        ws = store.ensure_workspace(_name("ws"))
        return store.get_or_create_experiment(ws.id, _name("exp"))

    @staticmethod
    def _run(store: TrackingStore, exp: ExperimentInfo, **kw: Any) -> RunInfo:
        kw.setdefault("run_type", "azureml.scriptrun")
        return store.create_run(NewRun(run_id=_name("run"), experiment_id=exp.id, **kw))

    @staticmethod
    def _snapshot(store: TrackingStore, run_id: str) -> tuple[Any, ...]:
        info = store.get_run(run_id)
        return (
            info,
            store.status_history(run_id),
            [(c.name, c.count, c.values, c.data) for c in store.get_metric_chunks(run_id)],
        )

    # -- workspaces ---------------------------------------------------------------------------

    def test_is_a_tracking_store(self, store: TrackingStore) -> None:
        assert isinstance(store, TrackingStore)

    def test_ensure_workspace_gets_or_creates(self, store: TrackingStore) -> None:
        name = _name("ws")
        first = store.ensure_workspace(name)
        assert first.name == name and first.id
        assert store.ensure_workspace(name) == first
        assert store.get_workspace(name) == first
        assert store.ensure_workspace(_name("ws")).id != first.id

    def test_get_missing_workspace(self, store: TrackingStore) -> None:
        with pytest.raises(WorkspaceNotFound):
            store.get_workspace(_name("missing"))

    def test_ensure_workspace_race(self, store: TrackingStore) -> None:
        name = _name("ws")
        results = _race(8, lambda _: store.ensure_workspace(name))
        assert len({w.id for w in results}) == 1
        assert store.get_workspace(name).id == results[0].id

    # -- experiments --------------------------------------------------------------------------

    def test_experiment_get_or_create(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        exp = store.get_or_create_experiment(ws.id, "mnist")
        assert (exp.name, exp.workspace_id, exp.archived) == ("mnist", ws.id, False)
        assert store.get_or_create_experiment(ws.id, "mnist") == exp
        assert store.get_experiment(ws.id, "mnist") == exp
        assert store.get_experiment_by_id(exp.id) == exp

    def test_same_experiment_name_in_two_workspaces(self, store: TrackingStore) -> None:
        a = store.ensure_workspace(_name("ws"))
        b = store.ensure_workspace(_name("ws"))
        ea = store.get_or_create_experiment(a.id, "shared")
        eb = store.get_or_create_experiment(b.id, "shared")
        assert ea.id != eb.id
        assert [e.id for e in store.list_experiments(a.id)] == [ea.id]

    def test_experiment_get_or_create_race(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        results = _race(8, lambda _: store.get_or_create_experiment(ws.id, "raced"))
        assert len({e.id for e in results}) == 1
        assert [e.name for e in store.list_experiments(ws.id)] == ["raced"]

    def test_missing_experiment(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        with pytest.raises(ExperimentNotFound):
            store.get_experiment(ws.id, "nope")
        with pytest.raises(ExperimentNotFound):
            store.get_experiment_by_id(987_654_321)

    def test_list_experiments_by_name_and_archive(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        for n in ("b", "c", "a"):
            store.get_or_create_experiment(ws.id, n)
        assert [e.name for e in store.list_experiments(ws.id)] == ["a", "b", "c"]
        b = store.get_experiment(ws.id, "b")
        archived = store.set_experiment_archived(b.id, True)
        assert archived.archived and archived.id == b.id
        assert [e.name for e in store.list_experiments(ws.id)] == ["a", "c"]
        everything = store.list_experiments(ws.id, include_archived=True)
        assert [(e.name, e.archived) for e in everything] == [
            ("a", False),
            ("b", True),
            ("c", False),
        ]
        assert not store.set_experiment_archived(b.id, False).archived
        assert [e.name for e in store.list_experiments(ws.id)] == ["a", "b", "c"]

    # -- runs: creation -----------------------------------------------------------------------

    def test_create_run_round_trip(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        before = time.time()
        info = store.create_run(
            NewRun(
                run_id=_name("run"),
                experiment_id=exp.id,
                run_type="azureml.scriptrun",
                display_name="first",
                description="d",
                target="local",
                definition={"script": "train.py", "arguments": ["--lr", 0.1]},
                tags={"t": "1"},
                properties={"p": "x"},
                snapshot_id="snap",
                submitted_by="me",
            )
        )
        assert info.number == 1
        assert info.status == "NotStarted"
        assert (info.experiment_id, info.experiment_name, info.workspace_id) == (
            exp.id,
            exp.name,
            exp.workspace_id,
        )
        assert (info.display_name, info.description, info.target) == ("first", "d", "local")
        assert info.definition == {"script": "train.py", "arguments": ["--lr", 0.1]}
        assert info.tags == {"t": "1"} and info.properties == {"p": "x"}
        assert (info.snapshot_id, info.submitted_by, info.parent_run_id) == ("snap", "me", None)
        assert before - 1 <= info.created_at <= time.time() + 1
        assert info.start_time is None and info.end_time is None and info.error is None
        assert store.get_run(info.run_id) == info
        assert [e.status for e in store.status_history(info.run_id)] == ["NotStarted"]

    def test_create_running_run_has_start_time(self, store: TrackingStore) -> None:
        info = self._run(store, self._experiment(store), status="Running")
        assert info.status == "Running" and info.start_time is not None

    def test_duplicate_run_id(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        first = self._run(store, exp)
        with pytest.raises(AlreadyExistsError):
            store.create_run(NewRun(run_id=first.run_id, experiment_id=exp.id, run_type="x"))
        assert store.get_run(first.run_id) == first
        assert self._run(store, exp).number == 2  # the failed call allocated no number

    def test_duplicate_run_id_race(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        run_id = _name("run")

        def create(_: int) -> str:
            try:
                store.create_run(NewRun(run_id=run_id, experiment_id=exp.id, run_type="x"))
                return "created"
            except AlreadyExistsError:
                return "exists"

        assert sorted(_race(6, create)) == ["created"] + ["exists"] * 5
        assert store.get_run(run_id).number == 1
        assert self._run(store, exp).number == 2

    def test_run_in_missing_experiment(self, store: TrackingStore) -> None:
        with pytest.raises(ExperimentNotFound):
            store.create_run(NewRun(run_id=_name("run"), experiment_id=987_654_321, run_type="x"))

    def test_run_numbers_per_experiment(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        a = store.get_or_create_experiment(ws.id, "a")
        b = store.get_or_create_experiment(ws.id, "b")
        assert [self._run(store, a).number for _ in range(3)] == [1, 2, 3]
        assert [self._run(store, b).number for _ in range(2)] == [1, 2]
        assert self._run(store, a).number == 4

    def test_run_numbers_unique_under_concurrent_creates(self, store: TrackingStore) -> None:
        exp = self._experiment(store)

        def create_five(_: int) -> list[tuple[float, int]]:
            return [(r.created_at, r.number) for r in (self._run(store, exp) for _ in range(5))]

        per_thread = _race(8, create_five)
        numbers = sorted(n for runs in per_thread for _, n in runs)
        assert numbers == list(range(1, 41))
        for runs in per_thread:  # each thread saw its own runs' numbers increase
            assert [n for _, n in runs] == sorted(n for _, n in runs)

    def test_get_missing_run(self, store: TrackingStore) -> None:
        with pytest.raises(RunNotFound):
            store.get_run(_name("nope"))
        with pytest.raises(RunNotFound):
            store.status_history(_name("nope"))

    # -- runs: listing ------------------------------------------------------------------------

    def test_list_runs_newest_first(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        created = [self._run(store, exp).run_id for _ in range(6)]
        runs, cursor = store.list_runs(exp.id)
        assert [r.run_id for r in runs] == created[::-1]
        assert cursor is None

    def test_list_runs_paginates_250_runs(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        created = [self._run(store, exp).run_id for _ in range(250)]
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            runs, cursor = store.list_runs(exp.id, limit=100, cursor=cursor)
            pages.append([r.run_id for r in runs])
            if cursor is None:
                break
            assert len(pages) < 10, "pagination does not end"
        assert [len(p) for p in pages] == [100, 100, 50]
        flat = [rid for page in pages for rid in page]
        assert flat == created[::-1]  # all exactly once, newest first

    def test_cursor_is_stable_when_runs_are_added(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        old = [self._run(store, exp).run_id for _ in range(15)]
        first, cursor = store.list_runs(exp.id, limit=10)
        assert cursor is not None
        newer = [self._run(store, exp).run_id for _ in range(3)]
        rest, end = store.list_runs(exp.id, limit=10, cursor=cursor)
        assert end is None
        assert [r.run_id for r in first + rest] == old[::-1]
        latest, _ = store.list_runs(exp.id, limit=3)
        assert [r.run_id for r in latest] == newer[::-1]

    def test_list_runs_filters(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        a = self._run(store, exp, tags={"team": "red", "lr": "0.1"}, properties={"k": "1"})
        b = self._run(
            store, exp, tags={"team": "blue"}, properties={"k": "2"}, run_type="hyperdrive"
        )
        c = self._run(store, exp, status="Running")

        def ids(**kw: Any) -> set[str]:
            return {r.run_id for r in store.list_runs(exp.id, **kw)[0]}

        assert ids() == {a.run_id, b.run_id, c.run_id}
        assert ids(tags={"team": None}) == {a.run_id, b.run_id}
        assert ids(tags={"team": "red"}) == {a.run_id}
        assert ids(tags={"team": "red", "lr": "0.1"}) == {a.run_id}
        assert ids(tags={"team": "red", "lr": "0.2"}) == set()
        assert ids(tags={"missing": None}) == set()
        assert ids(properties={"k": None}) == {a.run_id, b.run_id}
        assert ids(properties={"k": "2"}) == {b.run_id}
        assert ids(tags={"team": None}, properties={"k": "1"}) == {a.run_id}
        assert ids(run_type="hyperdrive") == {b.run_id}
        assert ids(statuses=["Running"]) == {c.run_id}
        assert ids(statuses=["Running", "NotStarted"]) == {a.run_id, b.run_id, c.run_id}

    def test_list_runs_by_workspace(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        e1 = store.get_or_create_experiment(ws.id, "one")
        e2 = store.get_or_create_experiment(ws.id, "two")
        other = self._experiment(store)
        r1, r2 = self._run(store, e1), self._run(store, e2)
        self._run(store, other)
        runs, _ = store.list_runs(workspace_id=ws.id)
        assert [r.run_id for r in runs] == [r2.run_id, r1.run_id]

    def test_children_filtering(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        parent = self._run(store, exp)
        kids = [self._run(store, exp, parent_run_id=parent.run_id) for _ in range(3)]
        grandchild = self._run(store, exp, parent_run_id=kids[0].run_id)
        other_parent = self._run(store, exp)
        assert {r.run_id for r in store.list_runs(exp.id)[0]} == {
            parent.run_id,
            other_parent.run_id,
        }
        everything = {r.run_id for r in store.list_runs(exp.id, include_children=True)[0]}
        assert everything == {parent.run_id, other_parent.run_id, grandchild.run_id} | {
            k.run_id for k in kids
        }
        children, _ = store.list_runs(parent_run_id=parent.run_id)
        assert [r.run_id for r in children] == [k.run_id for k in kids][::-1]
        assert all(r.parent_run_id == parent.run_id for r in children)
        assert [r.run_id for r in store.list_runs(parent_run_id=kids[0].run_id)[0]] == [
            grandchild.run_id
        ]
        assert store.list_runs(parent_run_id=other_parent.run_id)[0] == []

    # -- runs: status -------------------------------------------------------------------------

    def test_typical_lifecycle(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store))
        for status in _TYPICAL_PATH:
            info = store.update_run_status(run.run_id, status.value, reason=f"to {status.value}")
            assert info.status == status.value
            if status in (_S.STARTING, _S.PROVISIONING, _S.PREPARING, _S.QUEUED):
                assert info.start_time is None
            else:
                assert info.start_time is not None
            assert (info.end_time is not None) == status.is_terminal()
        history = store.status_history(run.run_id)
        assert [e.status for e in history] == ["NotStarted"] + [s.value for s in _TYPICAL_PATH]
        assert [e.reason for e in history[1:]] == [f"to {s.value}" for s in _TYPICAL_PATH]
        assert all(a.at <= b.at for a, b in zip(history, history[1:], strict=False))
        final = store.get_run(run.run_id)
        assert final.start_time is not None and final.end_time is not None
        assert final.start_time <= final.end_time

    def test_every_legal_transition(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        for old in RunStatus:
            for new in allowed_next(old):
                run = self._run(store, exp, status=old.value)
                assert store.update_run_status(run.run_id, new.value).status == new.value

    def test_illegal_transitions_change_nothing(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        for old in RunStatus:
            run = self._run(store, exp, status=old.value)
            before = self._snapshot(store, run.run_id)
            illegal = set(RunStatus) - set(allowed_next(old))
            if not old.is_terminal():
                illegal.discard(old)  # re-setting a live status is a no-op
            for new in sorted(illegal, key=lambda s: s.value):
                with pytest.raises(InvalidStatusTransition):
                    store.update_run_status(run.run_id, new.value, error={"message": "x"})
            assert self._snapshot(store, run.run_id) == before, old

    def test_terminal_statuses_are_final(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        for end in (_S.COMPLETED, _S.FAILED, _S.CANCELED):
            run = self._run(store, exp, status="Running")
            done = store.update_run_status(run.run_id, end.value)
            for again in ("Running", "Completed", "Failed", "Canceled", end.value):
                with pytest.raises(InvalidStatusTransition):
                    store.update_run_status(run.run_id, again)
            assert store.get_run(run.run_id) == done

    def test_same_live_status_is_a_no_op(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        before = self._snapshot(store, run.run_id)
        assert store.update_run_status(run.run_id, "Running").status == "Running"
        assert self._snapshot(store, run.run_id) == before

    def test_running_again_keeps_first_start_time(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        store.update_run_status(run.run_id, "NotResponding")
        again = store.update_run_status(run.run_id, "Running")
        assert again.start_time == run.start_time

    def test_failed_run_keeps_error(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        err = {"message": "ValueError: boom", "code": "UserError", "traceback": ["a", "b"]}
        info = store.update_run_status(run.run_id, "Failed", error=err)
        assert info.status == "Failed" and info.error == err
        assert store.get_run(run.run_id).error == err

    def test_only_from_is_compare_and_set(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        before = self._snapshot(store, run.run_id)
        unchanged = store.update_run_status(run.run_id, "Failed", only_from=["Queued", "Preparing"])
        assert unchanged.status == "Running"
        assert self._snapshot(store, run.run_id) == before
        changed = store.update_run_status(run.run_id, "Failed", only_from=["Running"])
        assert changed.status == "Failed" and changed.end_time is not None
        # Once terminal, a compare-and-set from a live status is a quiet no-op, not an error.
        assert store.update_run_status(run.run_id, "Canceled", only_from=["Running"]).status == (
            "Failed"
        )

    def test_only_from_race_has_one_winner(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        ends = [
            "Completed",
            "Failed",
            "Canceled",
            "Completed",
            "Failed",
            "Canceled",
            "Failed",
            "Completed",
        ]
        results = _race(
            len(ends), lambda i: store.update_run_status(run.run_id, ends[i], only_from=["Running"])
        )
        final = store.get_run(run.run_id).status
        assert final in ends
        assert all(r.status == final for r in results)
        history = [e.status for e in store.status_history(run.run_id)]
        assert history == ["Running", final]

    def test_unknown_status_is_rejected(self, store: TrackingStore) -> None:
        from trainyard.exceptions import ValidationError

        run = self._run(store, self._experiment(store))
        with pytest.raises(ValidationError):
            store.update_run_status(run.run_id, "Exploded")
        assert store.get_run(run.run_id) == run

    def test_status_of_missing_run(self, store: TrackingStore) -> None:
        with pytest.raises(RunNotFound):
            store.update_run_status(_name("nope"), "Running")

    # -- runs: other fields -------------------------------------------------------------------

    def test_update_run_fields(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store))
        info = store.update_run(
            run.run_id,
            display_name="nice",
            description="about",
            definition={"script": "b.py"},
            target="cpu-cluster",
            snapshot_id="abc",
        )
        assert (info.display_name, info.description, info.target, info.snapshot_id) == (
            "nice",
            "about",
            "cpu-cluster",
            "abc",
        )
        assert info.definition == {"script": "b.py"}
        store.update_run(run.run_id, runtime={"pid": 1, "host": "h"})
        merged = store.update_run(run.run_id, runtime={"pid": 2})
        assert merged.runtime == {"pid": 2, "host": "h"}
        assert merged.number == run.number and merged.run_type == run.run_type
        with pytest.raises(RunNotFound):
            store.update_run(_name("nope"), display_name="x")

    def test_heartbeat(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        assert run.heartbeat_at is None
        before = time.time()
        store.heartbeat(run.run_id)
        beat = store.get_run(run.run_id).heartbeat_at
        assert beat is not None and beat >= before - 1
        with pytest.raises(RunNotFound):
            store.heartbeat(_name("nope"))

    # -- tags and properties ------------------------------------------------------------------

    def test_tags_are_mutable(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), tags={"a": "1"})
        store.set_tags(run.run_id, {"a": "2", "b": "x"})
        assert store.get_run(run.run_id).tags == {"a": "2", "b": "x"}
        store.set_tags(run.run_id, {})
        store.remove_tags(run.run_id, ["a", "never-set"])
        assert store.get_run(run.run_id).tags == {"b": "x"}
        store.set_tags(run.run_id, {"a": ""})
        assert store.get_run(run.run_id).tags == {"a": "", "b": "x"}

    def test_tags_of_missing_run(self, store: TrackingStore) -> None:
        with pytest.raises(RunNotFound):
            store.set_tags(_name("nope"), {"a": "1"})
        with pytest.raises(RunNotFound):
            store.remove_tags(_name("nope"), ["a"])

    def test_concurrent_tag_writers(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store))
        _race(8, lambda i: store.set_tags(run.run_id, {f"k{i}": str(i), "shared": str(i)}))
        tags = store.get_run(run.run_id).tags
        assert {k: v for k, v in tags.items() if k != "shared"} == {
            f"k{i}": str(i) for i in range(8)
        }
        assert tags["shared"] in {str(i) for i in range(8)}

    def test_properties_are_add_only(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), properties={"a": "1"})
        store.add_properties(run.run_id, {"b": "2"})
        store.add_properties(run.run_id, {"a": "1", "b": "2"})  # same values: no-op
        assert store.get_run(run.run_id).properties == {"a": "1", "b": "2"}
        with pytest.raises(ImmutablePropertyError):
            store.add_properties(run.run_id, {"c": "3", "a": "changed", "d": "4"})
        # Nothing of the failing call is stored, not even its new keys.
        assert store.get_run(run.run_id).properties == {"a": "1", "b": "2"}

    def test_properties_of_missing_run(self, store: TrackingStore) -> None:
        with pytest.raises(RunNotFound):
            store.add_properties(_name("nope"), {"a": "1"})

    def test_concurrent_property_adds_of_one_key(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store))

        def add(i: int) -> bool:
            try:
                store.add_properties(run.run_id, {"winner": str(i)})
                return True
            except ImmutablePropertyError:
                return False

        results = _race(6, add)
        value = store.get_run(run.run_id).properties["winner"]
        assert results[int(value)] is True
        assert results.count(True) == 1

    # -- metrics ------------------------------------------------------------------------------

    def test_metric_chunk_round_trip(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        special = [0.5, math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324]
        chunks = [
            _chunk("special", special),
            _chunk("ints", [1, -2, 2**52, 0]),
            _chunk("stepped", [1.5, 2.5], steps=[10, 20]),
            json_chunk("text", "scalar", [("a", None, 1.0), (True, None, 2.0), (None, None, 3.0)]),
            json_chunk("row", "row", [({"x": 1, "y": math.nan}, None, 1.0)], "a table"),
            json_chunk("lst", "list", [([1, 2.5, "s", -math.inf], None, 1.0)]),
        ]
        store.log_metric_chunks(run.run_id, chunks)
        back = store.get_metric_chunks(run.run_id)
        assert [c.name for c in back] == [c.name for c in chunks]
        for sent, got in zip(chunks, back, strict=True):
            for field in (
                "name",
                "kind",
                "dtype",
                "count",
                "timestamps",
                "values",
                "steps",
                "data",
            ):
                assert getattr(got, field) == getattr(sent, field), (sent.name, field)
            assert got.description == sent.description
        decoded = decode(back)
        values = [p.value for p in decoded["special"][1]]
        assert all(_same_float(a, b) for a, b in zip(values, special, strict=True))
        assert math.copysign(1.0, values[4]) == -1.0
        assert [p.value for p in decoded["ints"][1]] == [1, -2, 2**52, 0]
        assert all(type(p.value) is int for p in decoded["ints"][1])
        assert [(p.step, p.value) for p in decoded["stepped"][1]] == [(10, 1.5), (20, 2.5)]
        assert [p.value for p in decoded["text"][1]] == ["a", True, None]
        row = decoded["row"][1][0].value
        assert row["x"] == 1 and math.isnan(row["y"])
        lst = decoded["lst"][1][0].value
        assert lst[:3] == [1, 2.5, "s"] and lst[3] == -math.inf

    def test_metric_chunks_in_write_order_and_by_name(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        for i in range(5):
            store.log_metric_chunks(run.run_id, [_chunk("a", [float(i)]), _chunk("b", [float(-i)])])
        back = store.get_metric_chunks(run.run_id)
        assert [(c.name, decode([c])[c.name][1][0].value) for c in back] == [
            (n, v) for i in range(5) for n, v in (("a", float(i)), ("b", float(-i)))
        ]
        seqs = [c.seq for c in back]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        only_a = store.get_metric_chunks(run.run_id, ["a"])
        assert [c.name for c in only_a] == ["a"] * 5
        assert store.get_metric_chunks(run.run_id, ["zzz"]) == []
        assert store.get_metric_chunks(run.run_id, []) == []

    def test_huge_metric_chunk(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        n = 500_000
        chunk = numeric_chunk(
            "big",
            array("d", range(n)),
            array("d", range(10**9, 10**9 + n)),
            array("q", range(0, 3 * n, 3)),
            True,
        )
        store.log_metric_chunks(run.run_id, [chunk])
        (got,) = store.get_metric_chunks(run.run_id, ["big"])
        assert got.count == n
        assert (got.values, got.timestamps, got.steps) == (
            chunk.values,
            chunk.timestamps,
            chunk.steps,
        )
        values, steps = array("d"), array("q")
        values.frombytes(got.values or b"")
        steps.frombytes(got.steps or b"")
        assert (len(values), values[-1], steps[-1]) == (n, n - 1, 3 * (n - 1))

    def test_empty_chunk_list_is_a_no_op(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        store.log_metric_chunks(run.run_id, [])
        assert store.get_metric_chunks(run.run_id) == []

    def test_metrics_of_missing_run(self, store: TrackingStore) -> None:
        with pytest.raises(RunNotFound):
            store.log_metric_chunks(_name("nope"), [_chunk("a", [1.0])])
        with pytest.raises(RunNotFound):
            store.get_metric_chunks(_name("nope"))

    def test_concurrent_metric_writers(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")

        def write(i: int) -> None:
            for j in range(10):
                store.log_metric_chunks(run.run_id, [_chunk("m", [float(i * 100 + j)] * 3)])

        _race(8, write)
        chunks = store.get_metric_chunks(run.run_id)
        assert len(chunks) == 80 and sum(c.count for c in chunks) == 240
        values = sorted({p.value for p in decode(chunks)["m"][1]})
        assert values == sorted(float(i * 100 + j) for i in range(8) for j in range(10))

    def test_late_flush_within_grace_is_accepted(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        store.update_run_status(run.run_id, "Completed")
        store.log_metric_chunks(run.run_id, [_chunk("late", [1.0])])
        assert [c.name for c in store.get_metric_chunks(run.run_id)] == ["late"]

    def test_terminal_run_past_grace_takes_no_metrics(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        for end in ("Completed", "Failed", "Canceled"):
            run = self._run(store, exp, status="Running")
            store.log_metric_chunks(run.run_id, [_chunk("m", [1.0])])
            store.update_run_status(run.run_id, end)
            self.backdate_run_end(store, run.run_id, 3600)
            before = store.get_metric_chunks(run.run_id)
            with pytest.raises(RunFinishedError):
                store.log_metric_chunks(run.run_id, [_chunk("m", [2.0]), _chunk("n", [3.0])])
            assert store.get_metric_chunks(run.run_id) == before

    # -- environments -------------------------------------------------------------------------

    def test_environment_versions(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        spec1 = {"python": {"conda_dependencies": {"dependencies": ["numpy"]}}, "n": 1}
        spec2 = {**spec1, "n": 2}
        assert store.register_environment(ws.id, "env", spec1, "h1") == 1
        assert store.register_environment(ws.id, "env", spec1, "h1") == 1
        assert store.register_environment(ws.id, "env", spec2, "h2") == 2
        assert store.register_environment(ws.id, "env", spec2, "h2") == 2
        assert store.get_environment(ws.id, "env") == (2, spec2)
        assert store.get_environment(ws.id, "env", 1) == (1, spec1)
        assert store.register_environment(ws.id, "other", spec1, "h1") == 1
        assert store.list_environments(ws.id) == {"env": (2, spec2), "other": (1, spec1)}
        other_ws = store.ensure_workspace(_name("ws"))
        assert store.list_environments(other_ws.id) == {}
        assert store.register_environment(other_ws.id, "env", spec2, "h2") == 1

    def test_missing_environment(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        with pytest.raises(EnvironmentNotFound):
            store.get_environment(ws.id, "nope")
        store.register_environment(ws.id, "env", {"a": 1}, "h")
        with pytest.raises(EnvironmentNotFound):
            store.get_environment(ws.id, "env", 2)

    def test_concurrent_environment_registrations(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        versions = _race(
            8, lambda i: store.register_environment(ws.id, "env", {"i": i}, f"hash-{i}")
        )
        assert sorted(versions) == list(range(1, 9))
        for i, v in enumerate(versions):
            assert store.get_environment(ws.id, "env", v) == (v, {"i": i})

    def test_concurrent_registrations_of_one_spec(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        versions = _race(8, lambda _: store.register_environment(ws.id, "env", {"a": 1}, "same"))
        assert versions == [1] * 8
        assert store.list_environments(ws.id) == {"env": (1, {"a": 1})}

    # -- compute targets ----------------------------------------------------------------------

    def test_compute_target_crud(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        assert store.list_compute_targets(ws.id) == {}
        store.put_compute_target(
            ws.id, "cpu", "AmlCompute", {"vm_size": "STANDARD_D2_V2", "max": 4}
        )
        store.put_compute_target(ws.id, "local2", "local", {})
        assert store.get_compute_target(ws.id, "cpu") == (
            "AmlCompute",
            {"vm_size": "STANDARD_D2_V2", "max": 4},
        )
        store.put_compute_target(ws.id, "cpu", "AmlCompute", {"max": 8})  # replace
        assert store.get_compute_target(ws.id, "cpu") == ("AmlCompute", {"max": 8})
        assert store.list_compute_targets(ws.id) == {
            "cpu": ("AmlCompute", {"max": 8}),
            "local2": ("local", {}),
        }
        other = store.ensure_workspace(_name("ws"))
        assert store.list_compute_targets(other.id) == {}
        store.delete_compute_target(ws.id, "cpu")
        assert list(store.list_compute_targets(ws.id)) == ["local2"]

    def test_concurrent_puts_of_one_compute_target(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        _race(6, lambda i: store.put_compute_target(ws.id, "cpu", "AmlCompute", {"i": i}))
        kind, config = store.get_compute_target(ws.id, "cpu")
        assert kind == "AmlCompute" and config["i"] in range(6)
        assert list(store.list_compute_targets(ws.id)) == ["cpu"]

    def test_missing_compute_target(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        with pytest.raises(ComputeTargetException):
            store.get_compute_target(ws.id, "nope")
        with pytest.raises(ComputeTargetException):
            store.delete_compute_target(ws.id, "nope")

    # -- model registry -----------------------------------------------------------------------

    @staticmethod
    def _model(workspace_id: str, name: str, **kw: Any) -> ModelInfo:
        fields: dict[str, Any] = {
            "workspace_id": workspace_id,
            "name": name,
            "version": 0,
            "description": None,
            "tags": {},
            "properties": {},
            "run_id": None,
            "experiment_name": None,
            "framework": None,
            "framework_version": None,
            "created_at": time.time(),
            "storage_prefix": f"models/{name}/{uuid.uuid4().hex}",
            "model_root": "model.npz",
            "files": ("model.npz",),
        }
        fields.update(kw)
        return ModelInfo(**fields)

    def test_model_versions_round_trip(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        first = store.create_model(
            self._model(
                ws.id,
                "mnist",
                version=99,  # ignored: the store allocates versions
                description="d",
                tags={"t": "1"},
                properties={"p": "x"},
                run_id="run-1",
                experiment_name="exp",
                framework="Chainer",
                framework_version="7.8",
                model_root="outputs",
                files=("outputs/a.npz", "outputs/b.json"),
            )
        )
        assert first.version == 1
        assert (first.description, first.tags, first.properties) == ("d", {"t": "1"}, {"p": "x"})
        assert (first.run_id, first.experiment_name, first.framework, first.framework_version) == (
            "run-1",
            "exp",
            "Chainer",
            "7.8",
        )
        assert first.model_root == "outputs" and first.files == ("outputs/a.npz", "outputs/b.json")
        assert [store.create_model(self._model(ws.id, "mnist")).version for _ in range(2)] == [2, 3]
        assert store.get_model(ws.id, "mnist").version == 3
        assert store.get_model(ws.id, "mnist", 1) == first
        other = store.ensure_workspace(_name("ws"))
        assert store.create_model(self._model(other.id, "mnist")).version == 1

    def test_deleted_model_versions_are_never_reused(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        for _ in range(3):
            store.create_model(self._model(ws.id, "m"))
        gone = store.delete_model(ws.id, "m", 3)
        assert gone.version == 3
        assert store.get_model(ws.id, "m").version == 2
        with pytest.raises(ModelNotFoundException):
            store.get_model(ws.id, "m", 3)
        with pytest.raises(ModelNotFoundException):
            store.delete_model(ws.id, "m", 3)
        assert store.create_model(self._model(ws.id, "m")).version == 4
        assert [m.version for m in store.list_models(ws.id, name="m")] == [4, 2, 1]

    def test_list_models(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        for name, run_id in (("b", "r1"), ("a", "r1"), ("b", "r2"), ("a", None)):
            store.create_model(self._model(ws.id, name, run_id=run_id))
        assert [(m.name, m.version) for m in store.list_models(ws.id)] == [
            ("a", 2),
            ("a", 1),
            ("b", 2),
            ("b", 1),
        ]
        assert [(m.name, m.version) for m in store.list_models(ws.id, latest=True)] == [
            ("a", 2),
            ("b", 2),
        ]
        assert [(m.name, m.version) for m in store.list_models(ws.id, run_id="r1")] == [
            ("a", 1),
            ("b", 1),
        ]
        assert [m.version for m in store.list_models(ws.id, name="b")] == [2, 1]
        assert store.list_models(store.ensure_workspace(_name("ws")).id) == []

    def test_update_model(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        store.create_model(self._model(ws.id, "m", tags={"a": "1"}, properties={"p": "1"}))
        info = store.update_model(
            ws.id, "m", 1, tags={"b": "2"}, description="new", add_properties={"q": "2", "p": "1"}
        )
        assert (info.tags, info.description, info.properties) == (
            {"b": "2"},
            "new",
            {"p": "1", "q": "2"},
        )
        with pytest.raises(ImmutablePropertyError):
            store.update_model(
                ws.id, "m", 1, tags={"c": "3"}, description="x", add_properties={"r": "1", "p": "2"}
            )
        assert store.get_model(ws.id, "m", 1) == info  # nothing of the failing call stored
        with pytest.raises(ModelNotFoundException):
            store.update_model(ws.id, "m", 2, description="x")

    def test_missing_model(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        with pytest.raises(ModelNotFoundException):
            store.get_model(ws.id, "nope")
        with pytest.raises(ModelNotFoundException):
            store.delete_model(ws.id, "nope", 1)

    def test_concurrent_model_registrations(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        infos = _race(8, lambda i: store.create_model(self._model(ws.id, "m", description=str(i))))
        assert sorted(m.version for m in infos) == list(range(1, 9))
        for m in infos:
            assert store.get_model(ws.id, "m", m.version).description == m.description

    def test_concurrent_model_property_adds(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        store.create_model(self._model(ws.id, "m"))
        _race(6, lambda i: store.update_model(ws.id, "m", 1, add_properties={f"k{i}": str(i)}))
        assert store.get_model(ws.id, "m", 1).properties == {f"k{i}": str(i) for i in range(6)}

    # -- web services -------------------------------------------------------------------------

    def test_webservice_records(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        assert store.list_webservices(ws.id) == {}
        store.create_webservice(ws.id, "svc", "Transitioning", {"port": 1, "models": ["m:1"]})
        with pytest.raises(AlreadyExistsError):
            store.create_webservice(ws.id, "svc", "Healthy", {})
        assert store.get_webservice(ws.id, "svc") == (
            "Transitioning",
            {"port": 1, "models": ["m:1"]},
        )
        assert store.update_webservice(ws.id, "svc", data={"port": 2, "pid": 7}) is True
        assert store.update_webservice(ws.id, "svc", state="Healthy") is True
        assert store.get_webservice(ws.id, "svc") == (
            "Healthy",
            {"port": 2, "pid": 7, "models": ["m:1"]},
        )
        assert (
            store.update_webservice(ws.id, "svc", state="Failed", only_from=("Transitioning",))
            is False
        )
        assert store.get_webservice(ws.id, "svc")[0] == "Healthy"
        store.create_webservice(ws.id, "other", "Healthy", {})
        assert list(store.list_webservices(ws.id)) == ["other", "svc"]
        assert store.list_webservices(store.ensure_workspace(_name("ws")).id) == {}
        store.delete_webservice(ws.id, "svc")
        assert list(store.list_webservices(ws.id)) == ["other"]

    def test_missing_webservice(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        with pytest.raises(WebserviceException):
            store.get_webservice(ws.id, "nope")
        with pytest.raises(WebserviceException):
            store.update_webservice(ws.id, "nope", state="Healthy")
        with pytest.raises(WebserviceException):
            store.delete_webservice(ws.id, "nope")

    def test_webservice_state_compare_and_set_race(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        store.create_webservice(ws.id, "svc", "Transitioning", {})
        won = _race(
            8,
            lambda i: store.update_webservice(
                ws.id, "svc", state=f"S{i}", data={"by": i}, only_from=("Transitioning",)
            ),
        )
        assert won.count(True) == 1
        state, data = store.get_webservice(ws.id, "svc")
        assert state == f"S{won.index(True)}" and data == {"by": won.index(True)}


def _conformance_tests(
    only: Iterable[str] | None = None,
) -> Iterator[tuple[str, Callable[..., None]]]:
    wanted = set(only) if only is not None else None
    for name, func in inspect.getmembers(TrackingStoreConformance, inspect.isfunction):
        if name.startswith("test_") and (wanted is None or name in wanted):
            yield name, func


def run_tracking_store_conformance(
    store_factory: Callable[[], TrackingStore], only: Iterable[str] | None = None
) -> int:
    """Run the suite without pytest's collection; return how many tests passed.

    ``store_factory`` is called once per test. ``only`` restricts the run to those test names. The
    first failure is raised with a note naming the test. Tests that need a hook the store does not
    support (``pytest.skip``) count as neither passed nor failed.

    Example::

        n = run_tracking_store_conformance(lambda: SqlTrackingStore("sqlite:////tmp/t.db"))
    """
    suite = TrackingStoreConformance()
    passed = 0
    for name, func in _conformance_tests(only):
        store = store_factory()
        try:
            func(suite, store)
        except pytest.skip.Exception:
            continue
        except BaseException as err:
            err.add_note(f"TrackingStore conformance test {name} failed")
            raise
        finally:
            store.close()
        passed += 1
    return passed
