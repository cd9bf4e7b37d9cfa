"""v1 module names for code running inside runs and services (never the user's own interpreter).

``shim/azureml`` is a tiny package that maps every ``azureml.<path>`` import to the trainyard module
of the same path (``azureml.core.run`` → ``trainyard.core.run``), so an unmodified v1 training or
scoring script runs. Trainyard puts :data:`SHIM_DIR` on ``PYTHONPATH`` only in the environment of a
run's script and a service's scoring server (:func:`with_shim`); it is not importable elsewhere.

Example::

    env["PYTHONPATH"] = with_shim(env.get("PYTHONPATH"))
"""

from __future__ import annotations

import os
from pathlib import Path

#: The folder that holds the ``azureml`` alias package (put on ``PYTHONPATH``).
SHIM_DIR = Path(__file__).resolve().parent / "shim"


def with_shim(pythonpath: str | None) -> str:
    """``pythonpath`` with :data:`SHIM_DIR` first (once)."""
    parts = [p for p in (pythonpath or "").split(os.pathsep) if p and p != str(SHIM_DIR)]
    return os.pathsep.join([str(SHIM_DIR), *parts])
