"""Bad input is refused with a typed error that says what was wrong, and a refused call changes
nothing already stored (metrics, tags and properties are the same before and after)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from trainyard.core.experiment import Experiment
from trainyard.core.run import Run
from trainyard.core.workspace import Workspace
from trainyard.exceptions import (
    ConfigError,
    ImmutablePropertyError,
    MetricValueError,
    RunFinishedError,
    RunNotFound,
    TrainyardError,
    ValidationError,
    WorkspaceException,
)


@pytest.fixture
def run(workspace: Workspace) -> Iterator[Run]:
    run = Experiment(workspace, "bad-input").start_logging()
    run.log("kept", 1.5)
    run.log("kept", 2.5)
    run.log("stepped", 1.0, step=1)
    run.log_row("table", a=1, b="x")
    run.tag("t", "v")
    run.add_properties({"p": "1"})
    yield run


def _state(run: Run) -> tuple[Any, ...]:
    return (repr(run.get_metrics()), run.get_tags(), run.get_properties())


def _refused(run: Run, call: Callable[[], object], error: type[Exception]) -> Exception:
    before = _state(run)
    with pytest.raises(error) as info:
        call()
    assert _state(run) == before
    assert isinstance(info.value, TrainyardError)
    return info.value


# -- metric names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "   ", "x" * 256, "tab\there", "new\nline", None, 42], ids=repr
)
def test_bad_metric_names(run: Run, name: Any) -> None:
    _refused(run, lambda: run.log(name, 1.0), MetricValueError)
    _refused(run, lambda: run.log_list(name, [1]), MetricValueError)
    _refused(run, lambda: run.log_row(name, a=1), MetricValueError)
    _refused(run, lambda: run.log_table(name, {"a": [1]}), MetricValueError)


def test_longest_allowed_name(run: Run) -> None:
    run.log("x" * 255, 1)
    assert run.get_metrics(name="x" * 255) == {"x" * 255: 1}


# -- metric values --------------------------------------------------------------------------------


class Opaque:
    pass


BAD_VALUES = [
    ({"a": 1}, "dict"),
    ({1, 2}, "set"),
    (b"raw", "bytes"),
    (complex(1, 2), "complex"),
    (Opaque(), "Opaque"),
    (Decimal("1.5"), "Decimal"),
    (object(), "object"),
]


@pytest.mark.parametrize(("value", "type_name"), BAD_VALUES, ids=[t for _, t in BAD_VALUES])
def test_log_refuses_other_types(run: Run, value: Any, type_name: str) -> None:
    err = _refused(run, lambda: run.log("kept", value), MetricValueError)
    assert "'kept'" in str(err) and type_name in str(err)
    err = _refused(run, lambda: run.log("fresh_metric", value), MetricValueError)
    assert "'fresh_metric'" in str(err) and type_name in str(err)


@pytest.mark.parametrize(("value", "type_name"), BAD_VALUES[:4], ids=[t for _, t in BAD_VALUES[:4]])
def test_collections_refuse_other_types(run: Run, value: Any, type_name: str) -> None:
    for call in (
        lambda: run.log_list("lst", [1, value]),
        lambda: run.log("lst", [1, value]),
        lambda: run.log_row("row", good=1, bad=value),
        lambda: run.log_table("tbl", {"col": [1, value]}),
    ):
        err = _refused(run, call, MetricValueError)
        assert type_name in str(err)
    assert "'row'" in str(_refused(run, lambda: run.log_row("row", bad=value), MetricValueError))


@pytest.mark.parametrize(("value", "type_name"), [(5, "int"), ("text", "str"), ({"a": 1}, "dict")])
def test_log_list_needs_a_list(run: Run, value: Any, type_name: str) -> None:
    err = _refused(run, lambda: run.log_list("lst", value), MetricValueError)
    assert "'lst'" in str(err) and type_name in str(err)


@pytest.mark.parametrize(("value", "type_name"), [([1, 2], "list"), ("a", "str")])
def test_log_table_needs_a_dict(run: Run, value: Any, type_name: str) -> None:
    err = _refused(run, lambda: run.log_table("tbl", value), MetricValueError)
    assert "'tbl'" in str(err) and type_name in str(err)
    err = _refused(run, lambda: run.log_table("tbl", {"col": 5}), MetricValueError)
    assert "'tbl'" in str(err) and "int" in str(err)


def test_bad_steps(run: Run) -> None:
    _refused(run, lambda: run.log("stepped", 2.0, step="2"), MetricValueError)  # type: ignore[arg-type]
    _refused(run, lambda: run.log("stepped", 2.0, step=2.5), MetricValueError)  # type: ignore[arg-type]
    _refused(run, lambda: run.log("stepped", 2.0), MetricValueError)  # step used before
    _refused(run, lambda: run.log("kept", 3.0, step=3), MetricValueError)  # never used before


def test_non_finite_numbers_are_values_not_errors(run: Run) -> None:
    for v in (math.nan, math.inf, -math.inf):
        run.log("odd", v)
    run.log_table("odd_table", {"c": [math.nan, math.inf]})
    metrics = run.get_metrics()
    assert math.isnan(metrics["odd"][0]) and metrics["odd"][1:] == [math.inf, -math.inf]
    assert math.isnan(metrics["odd_table"]["c"][0]) and metrics["odd_table"]["c"][1] == math.inf
    assert metrics["kept"] == [1.5, 2.5]


def test_none_is_a_loggable_cell(run: Run) -> None:
    run.log("maybe", None)
    run.log_row("r", a=None)
    assert run.get_metrics(name="maybe") == {"maybe": None}
    assert run.get_metrics(name="r") == {"r": {"a": None}}


# -- tags and properties --------------------------------------------------------------------------


def test_changing_a_property(run: Run) -> None:
    err = _refused(
        run, lambda: run.add_properties({"fresh": "x", "p": "2"}), ImmutablePropertyError
    )
    assert "'p'" in str(err)


@pytest.mark.parametrize("bad", [["a"], "a=1", 5, None], ids=repr)
def test_tags_and_properties_need_a_dict(run: Run, bad: Any) -> None:
    _refused(run, lambda: run.set_tags(bad), ValidationError)
    _refused(run, lambda: run.add_properties(bad), ValidationError)


# -- runs -----------------------------------------------------------------------------------------


def test_unknown_run_id(workspace: Workspace, run: Run) -> None:
    exp = run.experiment
    for lookup in (lambda: Run(exp, "missing_123"), lambda: Run.get(workspace, "missing_123")):
        with pytest.raises(RunNotFound) as info:
            lookup()
        assert "missing_123" in str(info.value)
    assert _state(run)[0] == repr(run.get_metrics())


def _refuse_all_logging(r: Run) -> None:
    _refused(r, lambda: r.log("kept", 3.5), RunFinishedError)  # the fast path, too
    _refused(r, lambda: r.log("new", 1), RunFinishedError)
    _refused(r, lambda: r.log_list("new", [1]), RunFinishedError)
    _refused(r, lambda: r.log_row("table", a=2, b="y"), RunFinishedError)
    _refused(r, lambda: r.log_table("t2", {"a": [1]}), RunFinishedError)


def test_logging_to_a_finished_run(workspace: Workspace, run: Run) -> None:
    run.complete()
    reloaded = Run(run.experiment, run.id)
    for r in (run, reloaded):
        _refuse_all_logging(r)
    assert run.get_metrics(name="kept") == {"kept": [1.5, 2.5]}


# -- workspace and config -------------------------------------------------------------------------


def test_workspace_path_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "ws"
    target.write_bytes(b"\x00binary")
    for call in (
        lambda: Workspace.create("ws", path=target, exist_ok=True),
        lambda: Workspace(path=target),
    ):
        with pytest.raises(WorkspaceException) as info:
            call()
        assert str(target) in str(info.value) and "file" in str(info.value)
    assert target.read_bytes() == b"\x00binary"


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{", "not valid JSON"), ("null", "must hold a JSON object"), ("\x00\x01", "not valid JSON")],
)
def test_corrupt_config(tmp_path: Path, content: str, problem: str) -> None:
    config = tmp_path / ".trainyard" / "config.json"
    config.parent.mkdir()
    config.write_text(content)
    with pytest.raises(ConfigError) as info:
        Workspace.from_config(tmp_path)
    assert str(config) in str(info.value) and problem in str(info.value)
    assert config.read_text() == content


def test_corrupt_config_is_not_rewritten_by_write_config_elsewhere(
    workspace: Workspace, tmp_path: Path
) -> None:
    bad = tmp_path / "a" / ".trainyard" / "config.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{")
    good = workspace.write_config(tmp_path / "b")
    assert bad.read_text() == "{"
    assert json.loads(good.read_text())["workspace_name"] == workspace.name
