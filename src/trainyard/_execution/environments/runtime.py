"""The trainyard runtime injected into every built environment: :class:`TrainyardRuntime`.

Example::

    from trainyard._execution.environments.runtime import TrainyardRuntime
    TrainyardRuntime.current().requirements   # ("alembic==1.20.1", "packaging==26.4", …)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

#: Distributions the injected ``trainyard`` package needs at run time, pinned to the submitting
#: side's installed versions (those not installed there are left out).
RUNTIME_DISTRIBUTIONS: tuple[str, ...] = (
    "sqlalchemy",
    "alembic",
    "pathspec",
    "pyyaml",
    "packaging",
)
#: Installed together when both are present on the submitting side (PostgreSQL tracking stores).
RUNTIME_POSTGRES: tuple[str, ...] = ("psycopg", "psycopg-binary")


class NamesRequirements(Protocol):
    """Anything that says which distributions it names (an :class:`~.spec.EnvSpec`)."""

    @property
    def requirement_names(self) -> frozenset[str]:
        """Canonical names of the requirements."""
        ...


@dataclass(frozen=True)
class TrainyardRuntime:
    """The trainyard code and pinned dependencies injected into every built environment.

    ``package_dir`` is the submitting side's ``trainyard`` package directory (the built environment
    links to it); ``requirements`` pins :data:`RUNTIME_DISTRIBUTIONS` to the installed versions.

    Example::

        rt = TrainyardRuntime.current()
        rt.requirements   # ("alembic==1.20.1", "packaging==26.4", …)
    """

    version: str
    package_dir: str
    requirements: tuple[str, ...]

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def current() -> TrainyardRuntime:
        """The runtime of this process (cached)."""
        import trainyard

        pins: list[str] = []
        for dist in RUNTIME_DISTRIBUTIONS:
            version = _installed(dist)
            if version:
                pins.append(f"{dist}=={version}")
        pg = [(d, _installed(d)) for d in RUNTIME_POSTGRES]
        if all(v for _, v in pg):
            pins.extend(f"{d}=={v}" for d, v in pg)
        return TrainyardRuntime(
            version=trainyard.__version__,
            package_dir=str(Path(trainyard.__file__).resolve().parent),
            requirements=tuple(sorted(pins)),
        )

    def requirements_for(self, spec: NamesRequirements) -> tuple[str, ...]:
        """Runtime pins minus those the spec names itself (the user's requirement wins)."""
        names = spec.requirement_names
        return tuple(
            r for r in self.requirements if canonicalize_name(Requirement(r).name) not in names
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "version": self.version,
            "package_dir": self.package_dir,
            "requirements": list(self.requirements),
        }


def _installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
