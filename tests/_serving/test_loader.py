"""Tests for loading an entry script by path (in-process)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainyard._serving.loader import load_scoring_script, user_traceback
from trainyard.exceptions import WebserviceException

from .conftest import write_app


@pytest.fixture(autouse=True)
def _restore_interpreter(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The loader edits sys.path and sys.modules on purpose; undo that after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_loads_init_and_run_with_helper_from_source_directory(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "app",
        {
            "score_helper_a.py": """
                from datautils_a import label

                STATE = {}

                def init():
                    STATE["ready"] = True

                def run(input_data):
                    return [label(input_data), STATE.get("ready")]
            """,
            "datautils_a.py": "def label(x):\n    return 'got ' + x\n",
        },
    )
    script = load_scoring_script(app / "score_helper_a.py", app)
    assert sys.path[0] == str(app)
    script.call_init()
    assert script.run("x") == ["got x", True]
    assert not script.run_is_async
    assert script.module.__name__ == "score_helper_a"


def test_entry_script_in_subfolder_puts_source_directory_first(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"helpers_b.py": "VALUE = 5\n"})
    write_app(
        app / "scoring",
        {
            "entry_b.py": "import helpers_b\n\ndef init():\n    pass\n\ndef run(d):\n    return helpers_b.VALUE\n"
        },
    )
    script = load_scoring_script(app / "scoring" / "entry_b.py", app)
    assert sys.path[:2] == [str(app), str(app / "scoring")]
    assert script.run("") == 5


def test_module_name_falls_back_when_stem_is_taken(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "app", {"json.py": "def init():\n    pass\n\ndef run(d):\n    return 1\n"}
    )
    script = load_scoring_script(app / "json.py")
    assert script.module.__name__ == "trainyard_entry_script"
    assert sys.modules["json"].__name__ == "json"  # the stdlib module is untouched


def test_import_error_carries_phase_and_user_traceback(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "app",
        {"broken_c.py": "import os\n\nraise ImportError('model package missing')\n"},
    )
    with pytest.raises(WebserviceException) as info:
        load_scoring_script(app / "broken_c.py")
    err = info.value
    assert err.details["phase"] == "import"
    tb = err.details["traceback"]
    assert tb.startswith("Traceback (most recent call last):")
    assert 'broken_c.py", line 3' in tb
    assert "ImportError: model package missing" in tb
    assert "importlib" not in tb and "loader.py" not in tb  # only the user's frames
    assert "broken_c" not in sys.modules


def test_syntax_error_is_reported(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"syntax_d.py": "def init(:\n    pass\n"})
    with pytest.raises(WebserviceException) as info:
        load_scoring_script(app / "syntax_d.py")
    assert "SyntaxError" in info.value.details["traceback"]
    assert "syntax_d.py" in info.value.details["traceback"]


def test_init_failure_has_phase_init(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "app",
        {
            "initfail_e.py": "def init():\n    raise FileNotFoundError('model.npz')\n\ndef run(d):\n    return d\n"
        },
    )
    script = load_scoring_script(app / "initfail_e.py")
    with pytest.raises(WebserviceException) as info:
        script.call_init()
    assert info.value.details["phase"] == "init"
    assert "FileNotFoundError: model.npz" in info.value.details["traceback"]
    assert "in init" in info.value.details["traceback"]


def test_sys_exit_in_init_is_captured(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "app",
        {"exit_f.py": "import sys\n\ndef init():\n    sys.exit(4)\n\ndef run(d):\n    return d\n"},
    )
    with pytest.raises(WebserviceException) as info:
        load_scoring_script(app / "exit_f.py").call_init()
    assert "SystemExit: 4" in info.value.details["traceback"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def run(d):\n    return d\n", "defines no init()"),
        ("def init():\n    pass\n", "defines no run(input_data)"),
        ("init = 3\nrun = 4\n", "defines no init() and no run(input_data)"),
        ("def init():\n    pass\n\ndef run():\n    return 1\n", "must accept one argument"),
    ],
)
def test_missing_or_wrong_entry_points(tmp_path: Path, source: str, message: str) -> None:
    app = write_app(tmp_path / "app", {"entry_g.py": source})
    with pytest.raises(WebserviceException, match=re.escape(message)) as info:
        load_scoring_script(app / "entry_g.py")
    assert info.value.details["phase"] == "import"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WebserviceException, match="does not exist"):
        load_scoring_script(tmp_path / "nope.py")


def test_async_run_detected(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "app",
        {"async_h.py": "def init():\n    pass\n\nasync def run(d):\n    return d\n"},
    )
    assert load_scoring_script(app / "async_h.py").run_is_async


def test_user_traceback_keeps_full_chain_without_plumbing() -> None:
    def user_code() -> None:
        raise KeyError("k")

    try:
        user_code()
    except KeyError as err:
        text = user_traceback(err)
    assert "in user_code" in text
    assert text.rstrip().endswith("KeyError: 'k'")
