"""A failed run's error, as ``wait_for_completion`` shows it: the exception's type, whole message
and last frames, and the traceback printed once with ``show_output=True``."""

from __future__ import annotations

import io
import json
import textwrap

import pytest

from trainyard.core import Experiment, ScriptRun, ScriptRunConfig, Workspace
from trainyard.exceptions import ActivityFailedException
from trainyard.testing.fixtures import unique_name

FAILING = """
    print("about to fail", flush=True)

    def load(path):
        raise ValueError(f"cannot read {path}\\nthe file is empty")

    def train():
        load("data.csv")

    train()
"""
FRAME = 'load("data.csv")'


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ScriptRun:
    tmp = tmp_path_factory.mktemp("fail")
    ws = Workspace.create(unique_name("ws"), path=tmp / "ws")
    src = tmp / "src"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent(FAILING), encoding="utf-8")
    exp = Experiment(ws, "fails")
    run = exp.submit(ScriptRunConfig(str(src), "train.py"))
    run.wait_for_completion(raise_on_error=False)
    return run


def test_error_keeps_type_whole_message_and_frames(run: ScriptRun) -> None:
    error = run.get_details()["error"]
    assert error["exceptionType"] == "ValueError"
    assert error["message"] == "ValueError: cannot read data.csv\nthe file is empty"
    assert FRAME in error["traceback"] and "in load" in error["traceback"]
    assert error["exitCode"] == 1


def test_exception_carries_frames_without_show_output(run: ScriptRun) -> None:
    with pytest.raises(ActivityFailedException) as info:
        run.wait_for_completion()
    text = str(info.value)
    assert "ValueError: cannot read data.csv\nthe file is empty" in text
    assert FRAME in text
    assert json.loads(info.value.error_details)["exceptionType"] == "ValueError"


@pytest.mark.parametrize("raise_on_error", [True, False])
def test_show_output_prints_the_traceback_once(run: ScriptRun, raise_on_error: bool) -> None:
    out = io.StringIO()
    shown = ""
    try:
        run.wait_for_completion(show_output=True, raise_on_error=raise_on_error, out=out)
    except ActivityFailedException as err:
        assert raise_on_error
        shown = str(err)
    everything = out.getvalue() + "\n" + shown
    assert everything.count("Traceback (most recent call last)") == 1, everything
    assert everything.count(FRAME) == 1, everything
    assert "about to fail" in everything
    assert everything.count("ValueError: cannot read data.csv") == 2  # the log, then the summary
