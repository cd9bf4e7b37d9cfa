"""Load a v1 scoring script by path and find its ``init()`` and ``run(input_data)`` (aml-reference §9.5).

The script's source directory goes first on ``sys.path`` (so helpers such as ``datautils`` import), then
the script is executed as a module. A failure while importing or in ``init()`` becomes a
:class:`~trainyard.exceptions.WebserviceException` whose ``details`` carry ``phase`` (``"import"`` or
``"init"``) and ``traceback`` (the user's frames, formatted as Python prints them).

Example::

    from trainyard._serving.loader import load_scoring_script
    script = load_scoring_script(Path("/srv/app/score.py"), Path("/srv/app"))
    script.call_init()
    print(script.run('{"data": [1]}'))
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from trainyard.exceptions import WebserviceException

_FALLBACK_MODULE_NAME = "trainyard_entry_script"
_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_PLUMBING_PARTS = (
    f"{os.sep}anyio{os.sep}",
    f"{os.sep}starlette{os.sep}",
    f"{os.sep}fastapi{os.sep}",
)


def _is_plumbing(filename: str) -> bool:
    return (
        filename.startswith(_OWN_DIR)
        or filename.startswith("<frozen importlib")
        or any(part in filename for part in _PLUMBING_PARTS)
    )


def user_traceback(exc: BaseException) -> str:
    """``exc`` formatted as Python prints it, minus the leading frames of the server's own plumbing.

    Frames of this package, importlib and the thread hand-off (anyio, starlette) are dropped from the
    top, so the log starts at the user's code.

    Example::

        try:
            module.init()
        except Exception as err:
            print(user_traceback(err), file=sys.stderr)
    """
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and _is_plumbing(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _module_name(path: Path) -> str:
    stem = path.stem
    if stem.isidentifier() and stem not in sys.modules:
        return stem
    return _FALLBACK_MODULE_NAME


def _fail(phase: str, message: str, exc: BaseException | None = None) -> WebserviceException:
    text = user_traceback(exc) if exc is not None else f"{message}\n"
    return WebserviceException(message, phase=phase, traceback=text)


def _accepts_one_argument(func: Callable[..., Any]) -> bool:
    try:
        inspect.signature(func).bind("body")
    except TypeError:
        return False
    except ValueError:  # no signature available (some builtins): let the call decide
        return True
    return True


@dataclass(frozen=True)
class ScoringScript:
    """A loaded entry script: its module, ``init`` and ``run``.

    ``run_is_async`` is true when ``run`` is an ``async def``; the server awaits it instead of sending it
    to a thread.

    Example::

        script = load_scoring_script(path, source_dir)
        script.call_init()
        script.run('{"data": [0]}')
    """

    path: Path
    module: ModuleType
    init: Callable[[], Any]
    run: Callable[[str], Any]
    run_is_async: bool

    def call_init(self) -> None:
        """Call the script's ``init()``; a failure raises ``WebserviceException`` with ``phase="init"``."""
        try:
            self.init()
        except (Exception, SystemExit) as err:
            raise _fail(
                "init", f"init() of {self.path.name} raised {type(err).__name__}: {err}", err
            ) from err


def _put_first_on_sys_path(folder: Path) -> None:
    entry = str(folder)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def load_scoring_script(entry_script: Path, source_directory: Path | None = None) -> ScoringScript:
    """Import ``entry_script`` (an absolute path) and return its ``init``/``run``.

    ``source_directory`` (default: the script's folder) goes first on ``sys.path``, then the script's own
    folder if different. Raises ``WebserviceException`` (``details["phase"] == "import"``) when the file is
    missing, raises while importing, or lacks a callable ``init()`` or a ``run`` taking one argument.

    Example::

        script = load_scoring_script(Path("/srv/app/score.py"))
    """
    path = Path(entry_script)
    if not path.is_file():
        raise _fail("import", f"Entry script {path} does not exist.")
    folders = [path.parent] if source_directory is None else [path.parent, Path(source_directory)]
    for folder in dict.fromkeys(folders):  # the last inserted ends up first
        _put_first_on_sys_path(folder)

    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _fail("import", f"Entry script {path} cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as err:
        sys.modules.pop(name, None)
        raise _fail(
            "import", f"Importing {path.name} raised {type(err).__name__}: {err}", err
        ) from err

    init = getattr(module, "init", None)
    run = getattr(module, "run", None)
    missing = [n for n, f in (("init()", init), ("run(input_data)", run)) if not callable(f)]
    if missing:
        raise _fail(
            "import",
            f"{path.name} defines no {' and no '.join(missing)}; "
            "a v1 scoring script must define init() and run(input_data).",
        )
    assert init is not None and run is not None
    if not _accepts_one_argument(run):
        raise _fail(
            "import", f"run() in {path.name} must accept one argument (the request body as str)."
        )
    return ScoringScript(
        path=path, module=module, init=init, run=run, run_is_async=inspect.iscoroutinefunction(run)
    )
