"""Conformance: workspaces, experiments, runs, statuses, tags and properties."""

from __future__ import annotations

import time
from typing import Any

import pytest

from trainyard._lifecycle import RunStatus, allowed_next
from trainyard._store.base import TrackingStore
from trainyard._store.entities import NewRun
from trainyard.exceptions import (
    AlreadyExistsError,
    ExperimentNotFound,
    ImmutablePropertyError,
    InvalidStatusTransition,
    RunNotFound,
    WorkspaceNotFound,
)
from trainyard.testing.store._base import (
    _S,
    _TYPICAL_PATH,
    ConformanceBase,
    _name,
    _race,
)


class RunsConformance(ConformanceBase):
    """Conformance: workspaces, experiments, runs, statuses, tags and properties."""

    # -- workspaces ---------------------------------------------------------------------------

    def test_is_a_tracking_store(self, store: TrackingStore) -> None:
        assert isinstance(store, TrackingStore)

    def test_list_workspaces(self, store: TrackingStore) -> None:
        names = [_name("ws"), _name("ws")]
        made = [store.ensure_workspace(n) for n in names]
        listed = store.list_workspaces()
        by_name = {w.name: w for w in listed}
        assert all(by_name[w.name] == w for w in made)
        assert [w.name for w in listed] == sorted(w.name for w in listed)

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

    def test_rename_experiment(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        exp = store.get_or_create_experiment(ws.id, "before")
        store.get_or_create_experiment(ws.id, "other")
        assert store.rename_experiment(exp.id, "after").name == "after"
        assert store.get_experiment(ws.id, "after").id == exp.id
        with pytest.raises(ExperimentNotFound):
            store.get_experiment(ws.id, "before")
        with pytest.raises(AlreadyExistsError):
            store.rename_experiment(exp.id, "other")
        with pytest.raises(ExperimentNotFound):
            store.rename_experiment(987_654_321, "x")

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

    def test_list_runs_by_workspace_pages_across_experiments(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        exps = [store.get_or_create_experiment(ws.id, n) for n in ("a", "b", "c")]
        created = [self._run(store, exps[i % 3]).run_id for i in range(10)]
        self._run(store, exps[0], parent_run_id=created[0])  # a child: not top-level
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            runs, cursor = store.list_runs(workspace_id=ws.id, limit=4, cursor=cursor)
            pages.append([r.run_id for r in runs])
            if cursor is None:
                break
            assert len(pages) < 10, "pagination does not end"
        assert [len(p) for p in pages] == [4, 4, 2]
        assert [rid for page in pages for rid in page] == created[::-1]

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
