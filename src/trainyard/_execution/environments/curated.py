"""The curated catalogue: reserved ``AzureML-…`` names mapped to definitions that install here.

v1's curated environments were prebuilt Docker images (``AzureML-Chainer-5.1.0-GPU``: Python 3.6,
Chainer 5.1.0, CUDA 9.0, mpi4py). Each name here is a pip list built from the framework releases of
:mod:`.frameworks` (the framework constraint table adds NumPy, setuptools and protobuf bounds when
the spec is normalised):

========================== ====================================================================
name                       installs
========================== ====================================================================
AzureML-Chainer-5.1.0-CPU  chainer==5.1.0, mpi4py (MPI-capable: ChainerMN is part of Chainer 5)
AzureML-Chainer-5.1.0-GPU  chainer==7.8.1, cupy-cuda12x (skipped without a GPU), mpi4py: Chainer
                           5's GPU backend (CuPy 5) does not install on Python 3.11
AzureML-PyTorch-2.14-CPU   torch==2.14.1, torchvision==0.29.1 (the pair that imports here)
AzureML-PyTorch-2.14-GPU   the same (the CUDA build; it also runs on CPU)
AzureML-Minimal            nothing beyond the trainyard runtime
========================== ====================================================================

Names users paste from v1 (``AzureML-PyTorch-1.6-CPU``, ``AzureML-pytorch-1.7-ubuntu18.04-py37-
cuda11-gpu`` …) and earlier trainyard names (``AzureML-PyTorch-2.13-CPU``) resolve to the nearest
entry, and :func:`resolve_curated` says so; any other reserved name fails listing the known ones.

mpi4py installs from its wheel without Open MPI; running MPI needs ``apt-get install openmpi-bin
libopenmpi-dev`` (the build log says so when ``mpirun`` is missing).

Example::

    from trainyard._execution.environments.curated import resolve_curated
    entry, message = resolve_curated("AzureML-PyTorch-1.6-CPU")
    entry.name, entry.pip_packages   # "AzureML-PyTorch-2.14-CPU", ("torch==2.14.1", "torchvision==0.29.1")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from trainyard.exceptions import EnvironmentNotFound

from .frameworks import FRAMEWORKS

#: Every curated environment is at version 1.
CURATED_VERSION = "1"


@dataclass(frozen=True)
class CuratedEnvironment:
    """One catalogue entry: a name, its pip list, and what it stands for."""

    name: str
    pip_packages: tuple[str, ...]
    description: str
    version: str = CURATED_VERSION

    def to_environment_dict(self) -> dict[str, Any]:
        """The entry in ``Environment.to_dict()`` form (no ``python=`` entry: the running Python)."""
        return {
            "name": self.name,
            "version": self.version,
            "environmentVariables": {},
            "python": {
                "userManagedDependencies": False,
                "interpreterPath": None,
                "condaDependenciesFile": None,
                "baseCondaEnvironment": None,
                "condaDependencies": {
                    "name": "project_environment",
                    "dependencies": [{"pip": list(self.pip_packages)}],
                    "channels": ["anaconda", "conda-forge"],
                },
            },
            "docker": {
                "enabled": False,
                "baseImage": None,
                "baseDockerfile": None,
                "shmSize": None,
                "arguments": [],
            },
            "inferencingStackVersion": None,
        }


_CHAINER = FRAMEWORKS["Chainer"]
_TORCH = FRAMEWORKS["PyTorch"]
#: v1's Chainer images carried mpi4py (ChainerMN); the wheel installs without MPI.
MPI_PACKAGES: tuple[str, ...] = ("mpi4py",)
_CHAINER_GPU = _CHAINER.release("7.8.1")
_TORCH_CURATED = _TORCH.release("2.14.1")
#: Chainer's pins as an estimator installs them by default (the constraint table adds the rest).
CHAINER_PINS: tuple[str, ...] = _CHAINER.release(_CHAINER.default).packages

_ENTRIES: tuple[CuratedEnvironment, ...] = (
    CuratedEnvironment(
        "AzureML-Chainer-5.1.0-CPU",
        (*_CHAINER.release("5.1.0").packages, *MPI_PACKAGES),
        "Chainer 5.1.0 on CPU with mpi4py (ChainerMN).",
    ),
    CuratedEnvironment(
        "AzureML-Chainer-5.1.0-GPU",
        (*_CHAINER_GPU.packages, *(_CHAINER_GPU.gpu_packages or ()), *MPI_PACKAGES),
        "Chainer 7.8.1 with CuPy for CUDA 12 and mpi4py: Chainer 5.1.0's GPU backend (CuPy 5) does "
        "not install on Python 3.11. CuPy is skipped on hosts without a GPU.",
    ),
    CuratedEnvironment(
        "AzureML-PyTorch-2.14-CPU",
        _TORCH_CURATED.packages,
        "PyTorch 2.14.1 with torchvision 0.29.1 (the pair that imports here; a CUDA build that also "
        "runs on CPU).",
    ),
    CuratedEnvironment(
        "AzureML-PyTorch-2.14-GPU",
        _TORCH_CURATED.packages,
        "PyTorch 2.14.1 with torchvision 0.29.1 (CUDA build).",
    ),
    CuratedEnvironment("AzureML-Minimal", (), "Nothing beyond the trainyard runtime."),
)
_CATALOGUE: dict[str, CuratedEnvironment] = {e.name: e for e in _ENTRIES}

_PYTORCH_NAME = re.compile(r"^azureml-pytorch-(\d+(?:\.\d+)*)(?:-.*)?$", re.IGNORECASE)


def curated_names() -> list[str]:
    """Names of the curated environments, sorted."""
    return sorted(_CATALOGUE)


def is_curated(name: str) -> bool:
    """Whether ``name`` is in the curated catalogue (exact name)."""
    return name in _CATALOGUE


def resolve_curated(name: str) -> tuple[CuratedEnvironment, str]:
    """The catalogue entry for ``name`` and, when it is not an exact match, the message saying
    which entry stands in for it and why (``""`` for an exact match).

    Raises :class:`~trainyard.exceptions.EnvironmentNotFound` listing the known names for a name
    that is neither in the catalogue nor a v1 name with a stand-in.

    Example::

        resolve_curated("AzureML-Chainer-5.1.0-CPU")   # (entry, "")
        resolve_curated("AzureML-PyTorch-1.6-GPU")[0].name   # "AzureML-PyTorch-2.14-GPU"
    """
    if name in _CATALOGUE:
        return _CATALOGUE[name], ""
    folded = {n.lower(): e for n, e in _CATALOGUE.items()}
    if name.lower() in folded:
        entry = folded[name.lower()]
        return entry, f"curated environment {name!r} is named {entry.name!r}; using it."
    match = _PYTORCH_NAME.match(name)
    if match:
        version = match.group(1)
        variant = "GPU" if "gpu" in name.lower() else "CPU"
        entry = _CATALOGUE[f"AzureML-PyTorch-2.14-{variant}"]
        why = _TORCH.unavailable.get(version) or _torch_reason(version)
        return entry, (
            f"curated environment {name!r} is not available here ({why}); using the nearest, "
            f"{entry.name!r}: {entry.description}"
        )
    raise EnvironmentNotFound(
        f"no curated environment is named {name!r}; curated environments: "
        f"{', '.join(curated_names())} (v1's AzureML-PyTorch-* names map to AzureML-PyTorch-2.14-*).",
        name=name,
    )


def _torch_reason(version: str) -> str:
    short = version.split(".")[:2]
    for rel in _TORCH.releases:
        if rel.version.split(".")[:2] == short and rel.gpu_missing:
            return rel.gpu_missing
    return f"PyTorch {version} is not one of the releases installed here"


def curated_definition(name: str) -> dict[str, Any]:
    """The dict form (``Environment.to_dict()``) of the curated environment ``name`` (resolved
    as :func:`resolve_curated` does; the message is dropped)."""
    return resolve_curated(name)[0].to_environment_dict()
