"""The trainyard runtime linked into every built environment: :class:`TrainyardRuntime`.

A built environment gets trainyard's own code (a link to the submitting side's package) and
nothing else: no dependency of trainyard is installed into it or pinned in it, so the user's
requirements resolve exactly as they would without trainyard (``sqlalchemy<2`` included). The code
a script runs in its environment — ``Run.get_context()`` and the v1 ``azureml.*`` names — needs
only the standard library: its records go through the run's supervisor (see
:mod:`trainyard._store.relay`), which runs in trainyard's own interpreter.

Example::

    from trainyard._execution.environments.runtime import TrainyardRuntime
    TrainyardRuntime.current().package_dir   # ".../site-packages/trainyard"
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainyardRuntime:
    """The trainyard code linked into every built environment.

    ``package_dir`` is the submitting side's ``trainyard`` package directory (the built environment
    links to it); ``version`` is its version (part of every environment's cache key).

    Example::

        rt = TrainyardRuntime.current()
        rt.version   # "0.2.0"
    """

    version: str
    package_dir: str

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def current() -> TrainyardRuntime:
        """The runtime of this process (cached)."""
        import trainyard

        return TrainyardRuntime(
            version=trainyard.__version__,
            package_dir=str(Path(trainyard.__file__).resolve().parent),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"version": self.version, "package_dir": self.package_dir}
