"""The normalised, hashable form of an environment: :class:`EnvSpec` and :func:`spec_hash`.

An :class:`~trainyard.core.environment.Environment` is a v1 object with conda YAML, Docker fields,
names and versions. The builder needs only what changes the installed files, so
:meth:`EnvSpec.from_environment` reduces it to:

* the Python version (``python=X`` from the conda list, else the running interpreter's
  ``major.minor``; versions older than trainyard's own minimum, such as v1's ``python=3.6.2`` or
  ``3.8.12``, cannot import trainyard and are replaced by the running interpreter's, with a notice);
* the pip requirements, each parsed by :class:`packaging.requirements.Requirement`, names
  canonicalised, duplicates merged, sorted;
* the pip index options written in the spec (``--index-url`` …);
* the build constraints derived from the spec's own upper pins (every ``==``, ``===``, ``<``, ``<=``
  specifier), so ``setuptools<74`` in a spec also constrains source builds (Chainer 7.8.1 needs it);
* ``user_managed`` and ``interpreter_path``.

What is dropped, each with a notice the builder writes to the run's log:

* ``azureml-*`` packages (``azureml-defaults``, ``azureml-core``, ``azureml-opendatasets`` …) and
  ``trainyard`` itself: the trainyard runtime is injected into every environment (quirk 12);
* GPU-only wheels (:data:`GPU_ONLY_PACKAGE`: ``cupy``, ``cupy-cuda*``, ``cupy-rocm*``, ``pycuda``)
  on hosts without a GPU, and conda CUDA runtime packages (``cudatoolkit``, ``cudnn``, ``nccl`` …);
* channels, Docker settings, environment variables, names and versions: they do not change the
  built files, so they are not part of the hash.

Conda packages are mapped to pip **only** for the allow-list :data:`CONDA_TO_PIP`; any other conda
package raises :class:`~trainyard.exceptions.ValidationError` ("conda-only packages are not
supported; list it under pip:").

:func:`spec_hash` is the sha256 of the canonical JSON of the spec plus the trainyard runtime that
will be injected (its version, location and pinned runtime requirements).

Example::

    from trainyard._execution.environments.spec import EnvSpec, spec_hash
    spec = EnvSpec.from_requirements(["six==1.16.0"])
    print(spec.requirements, spec_hash(spec)[:16])
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import re
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from trainyard.exceptions import ValidationError

if TYPE_CHECKING:
    from trainyard.core.environment import Environment

#: Bump when the layout of built environments changes: every hash changes with it.
SPEC_FORMAT = 1

#: Oldest Python that can import trainyard; older requested versions map to the running one.
MIN_PYTHON: tuple[int, int] = (3, 11)

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
}

#: Conda packages that only carry the CUDA runtime; the driver and pip wheels provide it here.
CONDA_CUDA_RUNTIME = re.compile(r"^(cudatoolkit|cudnn|nccl|cuda-[a-z0-9-]+|cupy)$")
#: Pip packages that need a GPU; skipped (with a notice) on hosts without one.
GPU_ONLY_PACKAGE = re.compile(r"^(cupy|cupy-cuda[0-9a-z]*|cupy-rocm[0-9a-z-]*|pycuda)$")
#: Pip packages replaced by the injected trainyard runtime.
RUNTIME_PROVIDED = re.compile(r"^(azureml|azureml-.+|trainyard)$")

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

_SUPPORTED_PIP_OPTIONS = "--index-url/-i, --extra-index-url, --find-links/-f"


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


# --------------------------------------------------------------------------- conda → pip
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
    spec = _conda_version_to_pip(rest, conda_spec)
    try:
        Requirement(pip_name + spec)
    except InvalidRequirement as err:
        raise ValidationError(
            f"conda package {conda_spec!r} has a version pip cannot read: {err}", package=conda_spec
        ) from None
    return pip_name + spec


def _conda_version_to_pip(rest: str, original: str) -> str:
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


def _python_from_conda(conda_spec: str) -> str | None:
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


# --------------------------------------------------------------------------- requirements
def parse_requirement(text: str) -> Requirement:
    """Parse one pip requirement, raising :class:`~trainyard.exceptions.ValidationError` that
    quotes it and packaging's reason.

    Example::

        parse_requirement("numpy<2")
    """
    try:
        return Requirement(text)
    except InvalidRequirement as err:
        raise ValidationError(
            f"pip requirement {text!r} is not valid: {err}. Use PEP 508 form, e.g. 'numpy==1.26.4' "
            "or 'name @ https://…/file.whl'.",
            requirement=text,
        ) from None


def _merge(reqs: Iterable[Requirement]) -> list[Requirement]:
    merged: dict[tuple[str, str, str], Requirement] = {}
    for req in reqs:
        req.name = canonicalize_name(req.name)
        key = (req.name, str(req.marker or ""), req.url or "")
        if key in merged:
            prev = merged[key]
            prev.specifier = prev.specifier & req.specifier
            prev.extras = prev.extras | req.extras
        else:
            merged[key] = req
    return sorted(merged.values(), key=str)


def _build_constraint(req: Requirement) -> str | None:
    if req.url:
        return None
    upper = [str(s) for s in req.specifier if s.operator in {"==", "===", "<", "<="}]
    if not upper:
        return None
    marker = f"; {req.marker}" if req.marker else ""
    return f"{req.name}{','.join(sorted(upper))}{marker}"


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


# --------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class EnvSpec:
    """What the builder installs: everything that changes the environment's files, nothing else.

    Build one with :meth:`from_environment` or :meth:`from_requirements` (both normalise);
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
        running interpreter. Raises :class:`~trainyard.exceptions.ValidationError` for anything
        that does not parse.

        Example::

            EnvSpec.from_requirements(["chainer==7.8.1", "setuptools<74"], gpu=False)
        """
        notices: list[str] = []
        has_gpu = detect_gpu() if gpu is None else gpu
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

        py_requested = python_version
        texts: list[str] = []
        for conda in conda_packages:
            if re.match(r"^\s*(?:[\w.-]+::)?python(?![\w.-])", conda):
                py_requested = _python_from_conda(conda) or py_requested
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
                texts.append(mapped)
        texts.extend(r for r in requirements)

        kept: list[Requirement] = []
        for text in texts:
            req = parse_requirement(text.strip())
            name = canonicalize_name(req.name)
            if RUNTIME_PROVIDED.match(name):
                notices.append(
                    f"{text.strip()!r} dropped: the trainyard runtime is provided instead."
                )
            elif GPU_ONLY_PACKAGE.match(name) and not has_gpu:
                notices.append(f"{text.strip()!r} skipped: no GPU on this host.")
            else:
                kept.append(req)
        merged = _merge(kept)

        current = current_python_version()
        py = py_requested.strip() if py_requested else current
        if not re.fullmatch(r"\d+(\.\d+){0,2}", py):
            raise ValidationError(f"python version {py!r} must look like '3.11'.")
        if tuple(int(p) for p in py.split(".")[:2]) < MIN_PYTHON:
            notices.append(
                f"python={py} requested; trainyard needs Python >= "
                f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}, so Python {current} is used."
            )
            py = current
        return cls(
            python_version=py,
            requirements=tuple(str(r) for r in merged),
            index_url=index_url,
            extra_index_urls=tuple(extra),
            find_links=tuple(links),
            build_constraints=tuple(c for c in (_build_constraint(r) for r in merged) if c),
            user_managed=bool(user_managed),
            interpreter_path=interpreter_path or None,
            notices=tuple(notices),
        )

    @classmethod
    def from_environment(cls, environment: Environment, *, gpu: bool | None = None) -> EnvSpec:
        """Normalise a v1 :class:`~trainyard.core.environment.Environment`.

        Example::

            env = Environment.from_pip_requirements("demo", "requirements.txt")
            spec = EnvSpec.from_environment(env, gpu=False)
        """
        py = environment.python
        cd = py.conda_dependencies
        return cls.from_requirements(
            cd.pip_packages,
            python_version=cd.python_version,
            pip_options=cd.pip_options,
            conda_packages=[c for c in cd.conda_packages],
            user_managed=bool(py.user_managed_dependencies),
            interpreter_path=py.interpreter_path,
            gpu=gpu,
        )

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


# --------------------------------------------------------------------------- runtime + hash
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

    def requirements_for(self, spec: EnvSpec) -> tuple[str, ...]:
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
                "requirements": list(rt.requirements_for(spec)),
            },
        }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
