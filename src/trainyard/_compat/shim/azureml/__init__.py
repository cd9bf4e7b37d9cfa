"""v1's ``azureml`` namespace inside a trainyard run or service: thin aliases of trainyard modules.

``import azureml.core.run`` gives the module object ``trainyard.core.run`` itself (so
``azureml.core.Run is trainyard.core.Run``); any public ``azureml.<path>`` maps to
``trainyard.<path>``. A v1 module trainyard does not provide fails with a message that says so.
This package is only on ``sys.path`` inside runs and services (``PYTHONPATH``), never installed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

_PREFIX = "azureml."


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.spec = module.__spec__  # the import system overwrites it; exec_module restores it
        return module

    def exec_module(self, module: ModuleType) -> None:
        if self.spec is not None:
            module.__spec__ = self.spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds ``azureml.<path>`` as ``trainyard.<path>``."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        rest = fullname[len(_PREFIX) :]
        mapped = "trainyard." + rest
        public = not any(part.startswith("_") for part in rest.split("."))
        try:
            found = public and importlib.util.find_spec(mapped) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: inside trainyard runs and services the v1 module "
                f"names are aliases of trainyard's, and trainyard has no {mapped!r}. Import it from "
                "trainyard (see the v1 → trainyard module table in the docs).",
                name=fullname,
            )
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(mapped), is_package=False)


if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())
