"""Conda specs → pip requirements, for the documented allow-list only.

Trainyard installs from PyPI with uv. A conda ``dependencies`` list is read as: ``python=X`` picks
the interpreter (:func:`python_from_conda`), packages in :data:`CONDA_TO_PIP` are installed from PyPI
under their pip name (:func:`conda_to_pip`), CUDA runtimes (:data:`CONDA_CUDA_RUNTIME`) are skipped
because the driver and pip wheels provide them, and anything else is refused with a
:class:`~trainyard.exceptions.ValidationError` that says to list it under ``pip:``.

Example::

    from trainyard._execution.environments.conda import conda_to_pip
    conda_to_pip("numpy=1.26")   # "numpy==1.26.*"
"""

from __future__ import annotations

import platform
import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from trainyard.exceptions import ValidationError

#: Conda packages that are mapped to the pip package of the same project (conda name → pip name).
#: Everything else in a conda ``dependencies`` list is refused: list it under ``pip:`` instead.
CONDA_TO_PIP: dict[str, str] = {
    "pip": "pip",
    "setuptools": "setuptools",
    "wheel": "wheel",
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "scikit-learn": "scikit-learn",
    "matplotlib": "matplotlib",
    "matplotlib-base": "matplotlib",
    "pytest": "pytest",
    "requests": "requests",
    "six": "six",
    "pyyaml": "pyyaml",
    "pillow": "pillow",
    "tqdm": "tqdm",
    "h5py": "h5py",
    "cython": "cython",
    "ipykernel": "ipykernel",
    "protobuf": "protobuf",
    "typing-extensions": "typing-extensions",
    "typing_extensions": "typing-extensions",
    "filelock": "filelock",
    "joblib": "joblib",
    "sympy": "sympy",
    "networkx": "networkx",
    "pytorch": "torch",
    "torchvision": "torchvision",
    "py-xgboost": "xgboost",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "mpi4py": "mpi4py",
}

#: Conda packages that only carry the CUDA runtime; the driver and pip wheels provide it here.
CONDA_CUDA_RUNTIME = re.compile(r"^(cudatoolkit|cudnn|nccl|cuda-[a-z0-9-]+|cupy)$")

_PYTHON_SPEC = re.compile(r"^\s*(?:[\w.-]+::)?python(?![\w.-])")


def is_python_spec(conda_spec: str) -> bool:
    """Whether a conda spec names the interpreter (``python``, ``python=3.11``, ``conda-forge::python``)."""
    return _PYTHON_SPEC.match(conda_spec) is not None


def conda_to_pip(conda_spec: str) -> str | None:
    """Translate one allow-listed conda spec to a pip requirement; ``None`` for CUDA runtimes.

    ``=X`` means "X or a release starting with X" in conda: it becomes ``==X`` when X has three or
    more components and ``==X.*`` otherwise. Build strings are dropped. A package outside
    :data:`CONDA_TO_PIP` raises :class:`~trainyard.exceptions.ValidationError`.

    Example::

        conda_to_pip("numpy=1.26")        # "numpy==1.26.*"
        conda_to_pip("scikit-learn>=1.3") # "scikit-learn>=1.3"
    """
    text = conda_spec.strip()
    if "::" in text:
        text = text.split("::", 1)[1]
    match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$", text)
    if not match or "[" in text or "|" in text:
        raise ValidationError(
            f"conda package {conda_spec!r} cannot be read; write it as 'name', 'name=1.2' or "
            "'name>=1.2', or list it under pip:.",
            package=conda_spec,
        )
    conda_name, rest = match.group(1).lower(), match.group(2).strip()
    if CONDA_CUDA_RUNTIME.match(conda_name):
        return None
    pip_name = CONDA_TO_PIP.get(conda_name)
    if pip_name is None:
        raise ValidationError(
            f"conda package {conda_name!r}: conda-only packages are not supported; list it under "
            f"pip: (trainyard installs from PyPI with uv). Conda packages mapped to pip "
            f"automatically: {', '.join(sorted(set(CONDA_TO_PIP)))}.",
            package=conda_name,
        )
    spec = _conda_version_to_pip(rest)
    try:
        Requirement(pip_name + spec)
    except InvalidRequirement as err:
        raise ValidationError(
            f"conda package {conda_spec!r} has a version pip cannot read: {err}", package=conda_spec
        ) from None
    return pip_name + spec


def _conda_version_to_pip(rest: str) -> str:
    if not rest:
        return ""
    if rest.startswith("=="):
        return "==" + rest[2:].split("=", 1)[0].strip()
    if rest[0] in "<>!~":
        return rest.replace(" ", "")
    version = rest[1:] if rest.startswith("=") else rest.split()[0]
    version = version.split("=", 1)[0].strip()
    if not version:
        return ""
    if version.endswith("*"):
        return "==" + version.rstrip("*").rstrip(".") + ".*"
    return "==" + version if version.count(".") >= 2 else "==" + version + ".*"


def python_from_conda(conda_spec: str) -> str | None:
    """The Python version a conda ``python…`` spec asks for; ``None`` when it admits the running one.

    Example::

        python_from_conda("python=3.8.12")   # "3.8.12"
        python_from_conda("python>=3.9")     # None (the running 3.11 satisfies it)
    """
    text = conda_spec.strip().split("::", 1)[-1].strip()[len("python") :].strip()
    if not text:
        return None
    if text.startswith("=") and not text.startswith("=="):
        text = text[1:]
    elif text.startswith("=="):
        text = text[2:]
    elif text[0] in "<>!~":
        try:
            if SpecifierSet(text.replace(" ", "")).contains(platform.python_version()):
                return None
        except InvalidSpecifier:
            pass
        raise ValidationError(
            f"conda spec {conda_spec!r} does not admit the running Python "
            f"{platform.python_version()}; pin one version such as python=3.11.",
            package=conda_spec,
        )
    text = text.split("=", 1)[0].rstrip("*").rstrip(".").strip()
    if not re.fullmatch(r"\d+(\.\d+){0,2}", text):
        raise ValidationError(
            f"conda spec {conda_spec!r} is not a Python version.", package=conda_spec
        )
    return text
