"""Bad input is typed and the same on both databases (issue 11, item 8).

Each value below used to be stored by SQLite and refused by PostgreSQL with a ``StoreError`` (NUL,
a key wider than its column), or to escape as a bare ``OverflowError`` (a step beyond 64 bits), or
to be submitted (a NUL in a script argument). Now the API refuses each with a ``ValidationError``
on both, before anything is stored, and everything at the limits is accepted on both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from trainyard._store.entities import NewRun
from trainyard._store.limits import MAX_KEY_CHARS, MAX_STEP, MAX_VALUE_CHARS, MIN_STEP
from trainyard.core import Experiment, Run, ScriptRunConfig, Workspace
from trainyard.exceptions import MetricValueError, ValidationError

pytestmark = pytest.mark.reliability

REFUSED: dict[str, Callable[[Run], object]] = {
    "tag-value-nul": lambda r: r.tag("a", "x\x00y"),
    "tag-key-nul": lambda r: r.tag("a\x00", "x"),
    "tag-key-too-long": lambda r: r.tag("k" * (MAX_KEY_CHARS + 1), "x"),
    "tag-value-too-long": lambda r: r.set_tags({"big": "x" * (MAX_VALUE_CHARS + 1)}),
    "tag-lone-surrogate": lambda r: r.tag("s", "\udcff"),
    "property-nul": lambda r: r.add_properties({"p": "x\x00"}),
    "property-key-too-long": lambda r: r.add_properties({"k" * (MAX_KEY_CHARS + 1): "x"}),
}
ACCEPTED: dict[str, Callable[[Run], object]] = {
    "tag-key-at-limit": lambda r: r.tag("k" * MAX_KEY_CHARS, "x"),
    "tag-value-at-limit": lambda r: r.tag("big", "x" * MAX_VALUE_CHARS),
    "tag-int-beyond-2^53": lambda r: r.tag("i", 2**53 + 1),
    "property-int-beyond-2^64": lambda r: r.add_properties({"q": 2**64 + 1}),
}


@pytest.fixture
def run(workspace: Workspace) -> Run:
    return Experiment(workspace, "bad-input").start_logging()


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_the_same_on_both_databases(run: Run, name: str) -> None:
    with pytest.raises(ValidationError):
        REFUSED[name](run)
    assert run.get_tags() == {} and run.get_properties() == {}
    run.complete()


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_the_same_on_both_databases(run: Run, name: str) -> None:
    ACCEPTED[name](run)
    stored = {**run.get_tags(), **run.get_properties()}
    if name == "tag-int-beyond-2^53":
        assert stored["i"] == str(2**53 + 1)  # exact, as text
    if name == "property-int-beyond-2^64":
        assert stored["q"] == str(2**64 + 1)
    run.complete()


def test_the_store_refuses_the_same_for_any_caller(workspace: Workspace) -> None:
    store = workspace.context.store
    exp = Experiment(workspace, "bad-input")
    new = NewRun(run_id="bad_1", experiment_id=exp.id, run_type="interactive", tags={"a": "\x00"})
    with pytest.raises(ValidationError):
        store.create_run(new)
    run = exp.start_logging()
    with pytest.raises(ValidationError):
        store.set_tags(run.id, {"k" * (MAX_KEY_CHARS + 1): "v"})
    with pytest.raises(ValidationError):
        store.add_properties(run.id, {"p": "\x00"})
    run.complete()


@pytest.mark.parametrize("step", [MAX_STEP + 1, MIN_STEP - 1, 2**63, 2**100])
def test_a_step_beyond_64_bits_is_a_metric_value_error(run: Run, step: int) -> None:
    run.log("warm", 1.0)  # the name is known: the fast path must refuse it too
    with pytest.raises(MetricValueError):
        run.log("warm", 2.0, step=step)
    with pytest.raises(MetricValueError):
        run.log("fresh", 2.0, step=step)
    run.log("edge", 1.0, step=MAX_STEP)
    run.log("edge", 2.0, step=MIN_STEP)
    run.complete()
    assert [p.step for p in run.get_metric_points("edge")] == [MAX_STEP, MIN_STEP]


def test_a_nul_in_a_script_argument_is_refused_at_submit(
    workspace: Workspace, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print('never')\n")
    exp = Experiment(workspace, "nul-arg")
    with pytest.raises(ValidationError, match="NUL"):
        exp.submit(ScriptRunConfig(str(src), "train.py", arguments=["--name", "a\x00b"]))
    assert list(exp.get_runs()) == []
