"""trainyard: a self-hosted ML training platform with the Azure ML SDK v1 API.

The v1 module layout is kept (``trainyard.core``, ``trainyard.train.dnn``,
``trainyard.train.hyperdrive`` …); the most used names are also available here, loaded lazily so
``import trainyard`` stays fast::

    from trainyard import Workspace, Experiment, ScriptRunConfig
"""

from __future__ import annotations

import importlib
from typing import Any

# Fails with UnsupportedPlatform (an ImportError) naming what this system lacks (native Windows).
import trainyard._compat.platform  # noqa: F401
from trainyard._version import __version__ as __version__

_LAZY = {
    "ComputeTarget": "trainyard.core.compute",
    "Dataset": "trainyard.core.dataset",
    "Datastore": "trainyard.core.datastore",
    "Environment": "trainyard.core.environment",
    "Experiment": "trainyard.core.experiment",
    "Model": "trainyard.core.model",
    "Run": "trainyard.core.run",
    "ScriptRunConfig": "trainyard.core.script_run_config",
    "Workspace": "trainyard.core.workspace",
}

__all__ = sorted(["__version__", *_LAZY])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trainyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
