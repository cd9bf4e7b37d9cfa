"""Experiment: v1's name rule, get-or-create, listing, get_runs filters and order, start_logging."""

from __future__ import annotations

import pytest

from trainyard.core.experiment import Experiment
from trainyard.core.run import INTERACTIVE_RUN_TYPE, Run
from trainyard.core.workspace import Workspace
from trainyard.exceptions import InvalidNameError, UserErrorException

GOOD_NAMES = ["a", "Z", "7", "mnist", "chainer-mnist", "my_exp", "A1-b_2", "9lives", "x" * 255]
BAD_NAMES = ["", "-lead", "_lead", "a b", "a.b", "a/b", "a:b", "a\n", "\nb", "x" * 256, "é-first"]


@pytest.fixture
def exp(workspace: Workspace) -> Experiment:
    return Experiment(workspace, "exp")


@pytest.mark.parametrize("name", GOOD_NAMES, ids=lambda n: n[:12])
def test_good_names(sqlite_workspace: Workspace, name: str) -> None:
    assert Experiment(sqlite_workspace, name).name == name


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_names(sqlite_workspace: Workspace, name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        Experiment(sqlite_workspace, name)
    assert isinstance(info.value, UserErrorException)
    assert sqlite_workspace.experiments == {}


@pytest.mark.parametrize("name", [None, 42, b"bytes"], ids=repr)
def test_non_string_names(sqlite_workspace: Workspace, name: object) -> None:
    with pytest.raises(InvalidNameError):
        Experiment(sqlite_workspace, name)  # type: ignore[arg-type]


@pytest.fixture
def sqlite_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    from trainyard.testing.fixtures import unique_name

    return Workspace.create(unique_name("ws"), path=tmp_path_factory.mktemp("ws"))


def test_get_or_create(workspace: Workspace) -> None:
    first = Experiment(workspace, "mnist")
    again = Experiment(workspace, "mnist")
    assert first == again and first.id == again.id and hash(first) == hash(again)
    assert first.name == "mnist" and first.workspace is workspace and not first.archived
    assert "mnist" in repr(first)


def test_list(workspace: Workspace) -> None:
    for name in ("b", "a", "c"):
        Experiment(workspace, name)
    assert [e.name for e in Experiment.list(workspace)] == ["a", "b", "c"]
    assert [e.name for e in Experiment.list(workspace, experiment_name="b")] == ["b"]
    assert Experiment.list(workspace, experiment_name="zzz") == []


def test_archive_and_reactivate(workspace: Workspace) -> None:
    exp = Experiment(workspace, "old")
    Experiment(workspace, "new")
    exp.archive()
    assert exp.archived
    assert [e.name for e in Experiment.list(workspace)] == ["new"]
    assert [e.name for e in Experiment.list(workspace, view_type="ArchivedOnly")] == ["old"]
    assert [e.name for e in Experiment.list(workspace, view_type="All")] == ["new", "old"]
    with pytest.raises(UserErrorException) as info:
        exp.submit(object())
    assert "archived" in str(info.value)
    exp.reactivate()
    assert not exp.archived
    assert [e.name for e in Experiment.list(workspace)] == ["new", "old"]


def test_submit_rejects_what_it_cannot_run(exp: Experiment) -> None:
    with pytest.raises(UserErrorException) as info:
        exp.submit("train.py")
    assert "str" in str(info.value)
    assert list(exp.get_runs()) == []


# -- get_runs -------------------------------------------------------------------------------------


def test_get_runs_newest_first(exp: Experiment) -> None:
    runs = [exp.start_logging() for _ in range(4)]
    got = list(exp.get_runs())
    assert [r.id for r in got] == [r.id for r in reversed(runs)]
    assert [r.number for r in got] == [4, 3, 2, 1]
    assert all(isinstance(r, Run) and r.experiment == exp for r in got)


def test_get_runs_pages_through_more_than_a_hundred(exp: Experiment) -> None:
    created = [Run._create(exp).id for _ in range(130)]
    got = [r.id for r in exp.get_runs()]
    assert got == created[::-1]
    assert len(set(got)) == 130


def test_get_runs_filters(exp: Experiment) -> None:
    a = Run._create(exp, tags={"team": "red"}, properties={"k": "1"})
    b = Run._create(exp, tags={"team": "blue"}, properties={"k": "2"}, run_type="hyperdrive")
    c = exp.start_logging()
    child = c.child_run()

    def ids(**kw: object) -> list[str]:
        return [r.id for r in exp.get_runs(**kw)]  # type: ignore[arg-type]

    assert ids() == [c.id, b.id, a.id]
    assert ids(type="hyperdrive") == [b.id]
    assert ids(type=INTERACTIVE_RUN_TYPE) == [c.id]
    assert ids(tags="team") == [b.id, a.id]
    assert ids(tags={"team": "red"}) == [a.id]
    assert ids(properties="k") == [b.id, a.id]
    assert ids(properties={"k": "2"}) == [b.id]
    assert ids(properties={"k": 2}) == [b.id]
    assert ids(tags={"team": "red"}, properties={"k": "2"}) == []
    assert ids(include_children=True) == [child.id, c.id, b.id, a.id]
    assert [r.id for r in Run.list(exp, status="Running")] == [c.id]


# -- start_logging --------------------------------------------------------------------------------


def test_start_logging_is_running(exp: Experiment) -> None:
    run = exp.start_logging(display_name="interactive one")
    assert run.get_status() == "Running"
    assert run.type == INTERACTIVE_RUN_TYPE and run.display_name == "interactive one"
    run.complete()
    assert run.get_status() == "Completed"


def test_context_manager_completes(exp: Experiment) -> None:
    with exp.start_logging() as run:
        run.log("x", 1)
    assert run.get_status() == "Completed"
    assert run.get_metrics() == {"x": 1}


def test_context_manager_exception_fails_the_run(exp: Experiment) -> None:
    with pytest.raises(ValueError, match="boom"), exp.start_logging() as run:
        run.log("before", 1.5)
        raise ValueError("boom")
    details = run.get_details()
    assert details["status"] == "Failed"
    assert "ValueError" in details["error"]["message"] and "boom" in details["error"]["message"]
    assert run.get_metrics() == {"before": 1.5}


@pytest.mark.parametrize(("code", "status"), [(0, "Completed"), (None, "Completed"), (3, "Failed")])
def test_context_manager_system_exit(exp: Experiment, code: int | None, status: str) -> None:
    with pytest.raises(SystemExit), exp.start_logging() as run:
        raise SystemExit(code)
    assert run.get_status() == status


def test_context_manager_keyboard_interrupt_cancels(exp: Experiment) -> None:
    with pytest.raises(KeyboardInterrupt), exp.start_logging() as run:
        raise KeyboardInterrupt
    assert run.get_status() == "Canceled"
