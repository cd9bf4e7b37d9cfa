"""The curated catalogue: reserved ``AzureML-…`` names mapped to specs that install here.

v1's curated environments were prebuilt Docker images (``AzureML-Chainer-5.1.0-GPU``: Python 3.6,
Chainer 5.1.0, CUDA 9.0). None of that installs on current Python, so each name resolves to the
nearest installable spec (aml-reference §5.2, §6.2, quirk 12):

========================== =====================================================================
name                       installs
========================== =====================================================================
AzureML-Chainer-5.1.0-GPU  :data:`CHAINER_PINS` + ``cupy-cuda12x`` (skipped on hosts without a GPU)
AzureML-Chainer-5.1.0-CPU  :data:`CHAINER_PINS`
AzureML-PyTorch-2.13-GPU   :data:`PYTORCH_PINS` (the CPU wheel is picked where pip's find-links has it)
AzureML-PyTorch-2.13-CPU   :data:`PYTORCH_PINS`
========================== =====================================================================

Chainer 7.8.1 pins come from ``chainer.md``: NumPy < 2 (``np.sctypes``), setuptools < 74 at run
time (``numpy.distutils``, ``pkg_resources``), protobuf < 4. The ``setuptools`` pin also becomes a
build constraint, which Chainer's sdist needs to build. Chainer and torch 2.13 disagree on
setuptools, so they are separate environments.

Example::

    from trainyard._execution.environments.curated import get_curated_environment
    env = get_curated_environment("AzureML-Chainer-5.1.0-GPU")
    env.python.conda_dependencies.pip_packages   # ["chainer==7.8.1", …, "cupy-cuda12x"]
"""

from __future__ import annotations

from trainyard.core.conda_dependencies import CondaDependencies
from trainyard.core.environment import Environment
from trainyard.exceptions import EnvironmentNotFound

#: Chainer 7.8.1 on Python 3.11 (verified: builds with uv in seconds, imports, trains).
CHAINER_PINS: tuple[str, ...] = (
    "chainer==7.8.1",
    "numpy==1.26.4",
    "setuptools==65.5.0",
    "protobuf==3.20.3",
    "typing_extensions",
    "filelock",
    "six",
)
#: Added to the GPU variant; dropped with a notice on hosts without a GPU.
CHAINER_GPU_EXTRA: tuple[str, ...] = ("cupy-cuda12x",)
#: PyTorch as pinned for this project (``torch==2.13.0`` always).
PYTORCH_PINS: tuple[str, ...] = ("torch==2.13.0", "numpy==2.2.6")

_CATALOGUE: dict[str, tuple[str, ...]] = {
    "AzureML-Chainer-5.1.0-GPU": CHAINER_PINS + CHAINER_GPU_EXTRA,
    "AzureML-Chainer-5.1.0-CPU": CHAINER_PINS,
    "AzureML-PyTorch-2.13-GPU": PYTORCH_PINS,
    "AzureML-PyTorch-2.13-CPU": PYTORCH_PINS,
}
#: Every curated environment is at version 1.
CURATED_VERSION = "1"


def curated_names() -> list[str]:
    """Names of the curated environments, sorted."""
    return sorted(_CATALOGUE)


def is_curated(name: str) -> bool:
    """Whether ``name`` is in the curated catalogue (exact name)."""
    return name in _CATALOGUE


def get_curated_environment(name: str) -> Environment:
    """A fresh :class:`~trainyard.core.environment.Environment` for a curated name.

    Raises :class:`~trainyard.exceptions.EnvironmentNotFound` for an unknown name. The object may be
    modified; registering it needs a new name (``env.clone("mine")``).

    Example::

        env = get_curated_environment("AzureML-Chainer-5.1.0-CPU")
    """
    pins = _CATALOGUE.get(name)
    if pins is None:
        raise EnvironmentNotFound(
            f"no curated environment is named {name!r}; curated environments: {', '.join(curated_names())}.",
            name=name,
        )
    env = Environment(name)
    env.version = CURATED_VERSION
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=pins, python_version=None)
    env.docker.base_image = None
    return env
