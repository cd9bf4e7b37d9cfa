"""Session-wide test setup.

* ``TRAINYARD_HOME`` points at a temporary folder for the whole session (each xdist worker has its
  own), so no test ever reads or writes ``~/.trainyard``; subprocesses inherit it.
* A warm fork server that the runs start (``trainyard._execution.forkserver``) exits one minute
  after the last test that used it, instead of ten.
* The shared fixtures (``sqlite_url``, ``postgres_url``, ``store_url``, ``workspace`` …) come from
  :mod:`trainyard.testing.fixtures`.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

# Plain asserts in the shipped suites report their operands like test-module asserts do.
pytest.register_assert_rewrite("trainyard.testing")

pytest_plugins = ["trainyard.testing.fixtures"]

_HOME_KEY = pytest.StashKey[tuple[str, str | None]]()


def pytest_configure(config: pytest.Config) -> None:
    home = tempfile.mkdtemp(prefix="trainyard-home-")
    config.stash[_HOME_KEY] = (home, os.environ.get("TRAINYARD_HOME"))
    os.environ["TRAINYARD_HOME"] = home
    os.environ.setdefault("TRAINYARD_FORKSERVER_IDLE_SECONDS", "60")


def pytest_unconfigure(config: pytest.Config) -> None:
    home, previous = config.stash.get(_HOME_KEY, ("", None))
    if not home:
        return
    if previous is None:
        os.environ.pop("TRAINYARD_HOME", None)
    else:
        os.environ["TRAINYARD_HOME"] = previous
    shutil.rmtree(home, ignore_errors=True)
