"""A failed script's traceback parsed whole: type, every line of the message, the last frames and
the exception it was chained from (``trainyard._execution.failure``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from trainyard._execution.failure import MAX_FRAMES, parse_traceback


def _stderr_of(source: str, tmp_path: Path) -> str:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
    assert out.returncode == 1
    return "some output before\n" + out.stderr


def test_multiline_message_and_type(tmp_path: Path) -> None:
    tb = _stderr_of(
        """
        def f():
            raise ValueError("bad value\\nsecond line")
        f()
        """,
        tmp_path,
    )
    parsed = parse_traceback(tb)
    assert parsed is not None
    assert parsed["exceptionType"] == "ValueError"
    assert parsed["message"] == "ValueError: bad value\nsecond line"
    assert 'in f\n    raise ValueError("bad value\\nsecond line")' in parsed["traceback"]
    assert parsed["traceback"].endswith("ValueError: bad value\nsecond line")
    assert "some output before" not in parsed["traceback"]


def test_dotted_type_notes_and_chained_cause(tmp_path: Path) -> None:
    tb = _stderr_of(
        """
        class Bad(Exception):
            pass
        try:
            {}["missing"]
        except KeyError as err:
            e = Bad("could not load")
            e.add_note("hint: check the path")
            raise e from err
        """,
        tmp_path,
    )
    parsed = parse_traceback(tb)
    assert parsed is not None
    assert parsed["exceptionType"] == "Bad"
    assert parsed["message"] == "Bad: could not load\nhint: check the path"
    assert parsed["cause"] == "KeyError: 'missing'"


def test_deep_recursion_keeps_the_innermost_frames(tmp_path: Path) -> None:
    tb = _stderr_of(
        """
        def down(n):
            if n == 0:
                raise RuntimeError("bottom")
            across(n - 1)
        def across(n):
            down(n)
        down(50)
        """,
        tmp_path,
    )
    parsed = parse_traceback(tb)
    assert parsed is not None
    assert parsed["traceback"].count('  File "') == MAX_FRAMES
    assert "outer frames left out" in parsed["traceback"]
    assert 'raise RuntimeError("bottom")' in parsed["traceback"]


def test_no_traceback() -> None:
    assert parse_traceback("just output\n") is None


def test_torch_distributed_rank_prefixes_are_dropped() -> None:
    from trainyard._execution.failure import parse_traceback

    text = (
        "[rank1]: Traceback (most recent call last):\n"
        '[rank1]:   File "train.py", line 3, in <module>\n'
        "[rank1]:     boom()\n"
        "[rank1]: RuntimeError: gloo broke\n"
    )
    parsed = parse_traceback(text)
    assert parsed is not None
    assert (
        parsed["exceptionType"] == "RuntimeError"
        and parsed["message"] == "RuntimeError: gloo broke"
    )
