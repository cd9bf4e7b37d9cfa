"""Public v1-shaped API: ``from trainyard.core import Workspace, Experiment, Run, …``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainyard._version import __version__ as VERSION  # noqa: F401 - public v1 name

if TYPE_CHECKING:
    from trainyard.core.experiment import Experiment as Experiment
    from trainyard.core.run import Run as Run
    from trainyard.core.workspace import Workspace as Workspace

# Lazy re-exports keep ``import trainyard.core`` fast; names resolve on first use.
_LAZY = {
    "Workspace": "trainyard.core.workspace",
    "Experiment": "trainyard.core.experiment",
    "Run": "trainyard.core.run",
    "ScriptRunConfig": "trainyard.core.script_run_config",
    "ScriptRun": "trainyard.core.script_run",
    "Environment": "trainyard.core.environment",
    "ComputeTarget": "trainyard.core.compute",
    "RayCompute": "trainyard.core.compute",
    "RunConfiguration": "trainyard.core.runconfig",
    "Model": "trainyard.core.model",
    "Dataset": "trainyard.core.dataset",
    "Datastore": "trainyard.core.datastore",
    "Webservice": "trainyard.core.webservice",
    "InferenceConfig": "trainyard.core.inference_config",
}

__all__ = sorted(["VERSION", *_LAZY])


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'trainyard.core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value
