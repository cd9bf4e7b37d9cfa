"""The normalised, hashable form of an environment: :class:`EnvSpec` and :func:`spec_hash`.

An environment definition (the dict form of a v1 ``Environment``: conda YAML, Docker fields, names,
versions) is reduced by :meth:`EnvSpec.from_environment_dict` to what changes the installed files:

* the Python version (``python=X`` from the conda list, else the running interpreter's
  ``major.minor``; versions older than trainyard's own minimum, such as v1's ``python=3.6.2`` or
  ``3.8.12``, cannot import trainyard and are replaced by the running interpreter's, with a notice);
* the pip requirements, each parsed by :class:`packaging.requirements.Requirement`, names
  canonicalised, duplicates merged (:func:`.pins.merge_requirements`), sorted;
* the known framework constraints (:mod:`.frameworks`: NumPy and setuptools bounds for Chainer,
  torch's CPU build …) merged in, the user's stricter pin winning;
* the pip index options written in the spec (``--index-url`` …);
* the build constraints derived from the spec's own upper pins (every ``==``, ``===``, ``<``, ``<=``
  specifier), plus the framework table's, so ``setuptools<74`` also constrains source builds;
* ``user_managed`` and ``interpreter_path``.

What is dropped, each with a notice the builder writes to the run's log:

* ``azureml-*`` packages (``azureml-defaults``, ``azureml-core``, ``azureml-opendatasets`` …) and
  ``trainyard`` itself: the trainyard runtime is injected into every environment (quirk 12);
* GPU-only wheels (:data:`GPU_ONLY_PACKAGE`: ``cupy``, ``cupy-cuda*``, ``cupy-rocm*``, ``pycuda``)
  on hosts without a GPU, and conda CUDA runtime packages (``cudatoolkit``, ``cudnn``, ``nccl`` …);
* channels, Docker settings, environment variables, names and versions: they do not change the
  built files, so they are not part of the hash.

Conda packages are mapped to pip **only** for the allow-list :data:`.conda.CONDA_TO_PIP`; any other
conda package raises :class:`~trainyard.exceptions.ValidationError`.

:func:`spec_hash` is the sha256 of the canonical JSON of the spec plus the trainyard runtime that
will be linked in (its version and location).

Example::

    from trainyard._execution.environments.spec import EnvSpec, spec_hash
    spec = EnvSpec.from_requirements(["six==1.16.0"])
    print(spec.requirements, spec_hash(spec)[:16])
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from trainyard.exceptions import ValidationError

from .conda import CONDA_TO_PIP, conda_to_pip, is_python_spec, python_from_conda
from .definition import EnvDefinition
from .frameworks import apply_framework_constraints, mpi_notices
from .pins import merge_requirements, parse_requirement
from .runtime import TrainyardRuntime

__all__ = [
    "CONDA_TO_PIP",
    "GPU_ONLY_PACKAGE",
    "MIN_PYTHON",
    "RUNTIME_PROVIDED",
    "SPEC_FORMAT",
    "EnvSpec",
    "TrainyardRuntime",
    "conda_to_pip",
    "current_python_version",
    "detect_gpu",
    "parse_requirement",
    "python_version_matches",
    "spec_hash",
]

#: Bump when the layout of built environments changes: every hash changes with it.
SPEC_FORMAT = 1

#: Oldest Python that can import trainyard; older requested versions map to the running one.
MIN_PYTHON: tuple[int, int] = (3, 11)

#: Pip packages that need a GPU; skipped (with a notice) on hosts without one.
GPU_ONLY_PACKAGE = re.compile(r"^(cupy|cupy-cuda[0-9a-z]*|cupy-rocm[0-9a-z-]*|pycuda)$")
#: Pip packages replaced by the injected trainyard runtime.
RUNTIME_PROVIDED = re.compile(r"^(azureml|azureml-.+|trainyard)$")

_SUPPORTED_PIP_OPTIONS = "--index-url/-i, --extra-index-url, --find-links/-f"


class HasDictForm(Protocol):
    """Anything with the ``Environment.to_dict()`` form (a v1 ``Environment``)."""

    def to_dict(self) -> dict[str, Any]:
        """The environment's dict form."""
        ...


# --------------------------------------------------------------------------- host facts
def current_python_version() -> str:
    """``major.minor`` of the running interpreter (``"3.11"``)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def detect_gpu() -> bool:
    """Whether this host appears to have an NVIDIA GPU (``nvidia-smi`` on PATH or ``/dev/nvidia0``)."""
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()


def python_version_matches(requested: str, actual: str) -> bool:
    """``"3.11"`` matches ``"3.11.7"``; ``"3.11.4"`` matches only ``"3.11.4"``."""
    want = requested.strip().split(".")
    return actual.split(".")[: len(want)] == want


# --------------------------------------------------------------------------- requirements
def _build_constraint(req: Requirement) -> str | None:
    if req.url:
        return None
    upper = [str(s) for s in req.specifier if s.operator in {"==", "===", "<", "<="}]
    if not upper:
        return None
    marker = f"; {req.marker}" if req.marker else ""
    return f"{req.name}{','.join(sorted(upper))}{marker}"


def _build_constraints(
    merged: Sequence[Requirement], extra: Sequence[Requirement]
) -> tuple[str, ...]:
    derived = tuple(c for c in (_build_constraint(r) for r in merged) if c)
    if not extra:
        return derived  # exactly the pre-table form, so existing cache keys stay
    items = [(parse_requirement(c), "the environment") for c in derived]
    items += [(r, "the framework table") for r in extra]
    return tuple(str(r) for r in merge_requirements(items))


def _parse_pip_option(line: str) -> tuple[str, str]:
    parts = line.strip().split(None, 1)
    flag, value = parts[0], parts[1].strip() if len(parts) > 1 else ""
    if "=" in flag and flag.startswith("--"):
        flag, value = flag.split("=", 1)
    names = {"-i": "index_url", "--index-url": "index_url", "--extra-index-url": "extra_index_url",
             "-f": "find_links", "--find-links": "find_links"}  # fmt: skip
    if flag not in names or not value:
        raise ValidationError(
            f"pip option {line.strip()!r} is not supported in an environment spec; supported "
            f"options are {_SUPPORTED_PIP_OPTIONS}.",
            option=line.strip(),
        )
    return names[flag], value


def _index_options(pip_options: Sequence[str]) -> tuple[str | None, list[str], list[str]]:
    index_url: str | None = None
    extra: list[str] = []
    links: list[str] = []
    for line in pip_options:
        kind, value = _parse_pip_option(line)
        if kind == "index_url":
            index_url = value
        elif kind == "extra_index_url":
            extra.extend(v for v in value.split() if v not in extra)
        else:
            links.extend(v for v in value.split() if v not in links)
    return index_url, extra, links


def _python(requested: str | None, notices: list[str]) -> str:
    current = current_python_version()
    py = requested.strip() if requested else current
    if not re.fullmatch(r"\d+(\.\d+){0,2}", py):
        raise ValidationError(f"python version {py!r} must look like '3.11'.")
    if tuple(int(p) for p in py.split(".")[:2]) < MIN_PYTHON:
        notices.append(
            f"python={py} requested; trainyard needs Python >= "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}, so Python {current} is used."
        )
        py = current
    return py


# --------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class EnvSpec:
    """What the builder installs: everything that changes the environment's files, nothing else.

    Build one with :meth:`from_environment_dict` or :meth:`from_requirements` (both normalise);
    the constructor takes already-normalised fields. ``notices`` (what normalisation dropped or
    changed) are excluded from equality and from the hash.

    Example::

        spec = EnvSpec.from_requirements(["Six==1.16.0", "numpy<2"], python_version="3.11")
        spec.requirements        # ("numpy<2", "six==1.16.0")
        spec.build_constraints   # ("numpy<2", "six==1.16.0")
    """

    python_version: str
    requirements: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    build_constraints: tuple[str, ...] = ()
    user_managed: bool = False
    interpreter_path: str | None = None
    notices: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_requirements(
        cls,
        requirements: Sequence[str],
        *,
        python_version: str | None = None,
        pip_options: Sequence[str] = (),
        conda_packages: Sequence[str] = (),
        user_managed: bool = False,
        interpreter_path: str | None = None,
        gpu: bool | None = None,
    ) -> EnvSpec:
        """Normalise raw pip requirements (and optionally conda specs and pip option lines).

        ``gpu=None`` detects the host (:func:`detect_gpu`); ``python_version=None`` means the
        ``python`` entry of ``conda_packages``, else the running interpreter. The framework table
        (:mod:`.frameworks`) is applied unless the environment is user-managed (nothing is
        installed then). Raises :class:`~trainyard.exceptions.ValidationError` for anything that
        does not parse and for requirements that conflict (the message names both).

        Example::

            EnvSpec.from_requirements(["chainer"], gpu=False).requirements
            # ("chainer", "numpy<1.24", "protobuf<4", "setuptools<74")
        """
        notices: list[str] = []
        has_gpu = detect_gpu() if gpu is None else gpu
        index_url, extra, links = _index_options(pip_options)

        py_requested = python_version
        items: list[tuple[str, str]] = []
        for conda in conda_packages:
            if is_python_spec(conda):
                py_requested = python_from_conda(conda) or py_requested
                continue
            mapped = conda_to_pip(conda)
            if mapped is None:
                notices.append(
                    f"conda package {conda.strip()!r} skipped: CUDA runtimes come from the host."
                )
            else:
                notices.append(
                    f"conda package {conda.strip()!r} installed from PyPI as {mapped!r}."
                )
                items.append((mapped, "the conda dependencies"))
        items.extend((r, "the pip requirements") for r in requirements)

        kept: list[tuple[Requirement, str]] = []
        for text, origin in items:
            req = parse_requirement(text.strip())
            if RUNTIME_PROVIDED.match(req.name):
                notices.append(
                    f"{text.strip()!r} dropped: the trainyard runtime is provided instead."
                )
            elif GPU_ONLY_PACKAGE.match(req.name) and not has_gpu:
                notices.append(f"{text.strip()!r} skipped: no GPU on this host.")
            else:
                kept.append((req, origin))
        merged = merge_requirements(kept)
        build_extra: list[Requirement] = []
        if not user_managed:
            merged, build_extra, applied = apply_framework_constraints(merged)
            notices.extend(applied)
            notices.extend(mpi_notices(frozenset(r.name for r in merged)))
        return cls(
            python_version=_python(py_requested, notices),
            requirements=tuple(str(r) for r in merged),
            index_url=index_url,
            extra_index_urls=tuple(extra),
            find_links=tuple(links),
            build_constraints=_build_constraints(merged, build_extra),
            user_managed=bool(user_managed),
            interpreter_path=interpreter_path or None,
            notices=tuple(notices),
        )

    @classmethod
    def from_environment_dict(
        cls,
        data: Mapping[str, Any],
        *,
        gpu: bool | None = None,
        extra_requirements: Sequence[str] = (),
    ) -> EnvSpec:
        """Normalise an environment's dict form (``Environment.to_dict()``; see
        :mod:`.definition`). An empty mapping is an environment with nothing listed.

        ``extra_requirements`` join the pip list unless the environment is user-managed.
        Raises :class:`~trainyard.exceptions.ConfigError` for a malformed document and
        :class:`~trainyard.exceptions.ValidationError` for requirements that do not parse or
        conflict.

        Example::

            spec = EnvSpec.from_environment_dict(env.to_dict(), gpu=False)
        """
        d = EnvDefinition.from_dict(data)
        # What the job needs beside the user's list (an MPI job's mpi4py) merges with it by name;
        # nothing is added to an environment the user manages.
        extra = () if d.user_managed else tuple(extra_requirements)
        return cls.from_requirements(
            [*d.pip, *extra],
            pip_options=d.pip_options,
            conda_packages=d.conda,
            user_managed=d.user_managed,
            interpreter_path=d.interpreter_path,
            gpu=gpu,
        )

    @classmethod
    def from_environment(cls, environment: HasDictForm, *, gpu: bool | None = None) -> EnvSpec:
        """Normalise a v1 ``Environment`` (anything with ``to_dict()``); the same as
        ``from_environment_dict(environment.to_dict())``."""
        return cls.from_environment_dict(environment.to_dict(), gpu=gpu)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without ``notices``), the input of :func:`spec_hash`."""
        return {
            "python_version": self.python_version,
            "requirements": list(self.requirements),
            "index_url": self.index_url,
            "extra_index_urls": list(self.extra_index_urls),
            "find_links": list(self.find_links),
            "build_constraints": list(self.build_constraints),
            "user_managed": self.user_managed,
            "interpreter_path": self.interpreter_path,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvSpec:
        """Inverse of :meth:`to_dict` (fields are taken as already normalised)."""
        return cls(
            python_version=str(data["python_version"]),
            requirements=tuple(data.get("requirements") or ()),
            index_url=data.get("index_url"),
            extra_index_urls=tuple(data.get("extra_index_urls") or ()),
            find_links=tuple(data.get("find_links") or ()),
            build_constraints=tuple(data.get("build_constraints") or ()),
            user_managed=bool(data.get("user_managed", False)),
            interpreter_path=data.get("interpreter_path"),
        )

    @property
    def requirement_names(self) -> frozenset[str]:
        """Canonical names of the spec's requirements."""
        return frozenset(canonicalize_name(Requirement(r).name) for r in self.requirements)


# --------------------------------------------------------------------------- the hash


def spec_hash(spec: EnvSpec, runtime: TrainyardRuntime | None = None) -> str:
    """sha256 (hex) of the canonical JSON of ``spec`` plus the injected runtime.

    Names, versions and file names of the source Environment never enter it. For a user-managed
    spec only ``user_managed`` and ``interpreter_path`` count (nothing is built).

    Example::

        a = EnvSpec.from_requirements(["six", "numpy"])
        b = EnvSpec.from_requirements(["numpy", "six"])
        assert spec_hash(a) == spec_hash(b)
    """
    if spec.user_managed:
        payload: dict[str, Any] = {
            "format": SPEC_FORMAT,
            "user_managed": True,
            "interpreter_path": spec.interpreter_path,
        }
    else:
        rt = runtime or TrainyardRuntime.current()
        payload = {
            "format": SPEC_FORMAT,
            "spec": spec.to_dict(),
            "runtime": {
                "version": rt.version,
                "package_dir": rt.package_dir,
            },
        }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
