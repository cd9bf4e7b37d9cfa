"""Known framework constraints: one table (:data:`FRAMEWORK_RULES`) applied wherever a framework
appears, and the releases estimators install (:data:`FRAMEWORKS`).

:func:`apply_framework_constraints` runs inside :meth:`.spec.EnvSpec.from_requirements`, the one
normalisation every environment goes through: an estimator's, a user ``Environment``'s, a conda YAML
(``Environment.from_conda_specification``), a curated one and a service's inference environment.
It merges through :func:`.pins.combine`, so the user's stricter pin wins and a conflict is a
:class:`~trainyard.exceptions.ValidationError` naming both.

A rule is triggered by its distribution in the requirement list and has three kinds of bounds:

* ``requires`` — hard: what the framework cannot run without. A user pin outside is a conflict.
* ``defaults`` — groups applied only when every bound of the group is compatible with the user's
  pins (a user who pins ``numpy==1.26.4`` beside Chainer keeps it; an unpinned ``numpy`` gets the
  default). A group applies as a whole (``torchvision`` and the ``torch`` it was built against).
* ``build`` — build constraints only (``--build-constraint``), for source builds.

The table (measured on x86_64, Python 3.11, uv 0.13, with this host's pip configuration):

=============== ======================= =================================================================
trigger         bound                   evidence
=============== ======================= =================================================================
chainer (5–7)   numpy<2 (hard)          ``import chainer`` uses ``np.sctypes``, removed in NumPy 2
chainer (5–7)   setuptools<74 (hard,    Chainer imports ``numpy.distutils``/``pkg_resources`` at run time;
                and build)              its sdist fails to build with ``No module named 'pkg_resources'``
chainer (5–7)   numpy<1.24 (default)    v1-era scripts use ``np.int``/``np.float``, removed in 1.24;
                                        Chainer 5.1.0, 7.0.0 and 7.8.1 import and train with 1.23.5
chainer (5–7)   protobuf<4 (default)    ``chainer.links.caffe`` fails with protobuf 4+
mpi4py (<4)     setuptools<74 (build)   mpi4py 3's build calls distutils APIs newer setuptools removed
torchvision     torchvision==0.29.1 +   PyPI's torchvision 0.28.0 beside the torch 2.13.0 CPU wheel fails
(x86_64)        torch==2.14.1 (default) (``operator torchvision::nms does not exist``: it links
                                        ``libtorch_cuda.so``); the 0.29.1/2.14.1 pair builds through uv in
                                        ~20 s from the local index (5.4 GB, CUDA build, runs on CPU)
torch (x86_64)  torch==2.13.0 (default) the CPU wheel on this host's find-links (190 MB); an unpinned torch
                                        resolves to a multi-GB CUDA build
=============== ======================= =================================================================

Example::

    from trainyard._execution.environments.frameworks import apply_framework_constraints
    from trainyard._execution.environments.pins import parse_requirement
    reqs, build, notices = apply_framework_constraints([parse_requirement("chainer")])
    [str(r) for r in reqs]   # ["chainer", "numpy<1.24", "protobuf<4", "setuptools<74"]
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .pins import (
    combine,
    merge_requirements,
    parse_requirement,
    specifiers_conflict,
    version_interval,
)

#: The hint every MPI message carries (Debian and Ubuntu package names).
OPENMPI_APT = "apt-get install openmpi-bin libopenmpi-dev"


@dataclass(frozen=True)
class Bound:
    """One requirement a rule imposes, with the reason (quoted in notices and errors)."""

    requirement: str
    reason: str


@dataclass(frozen=True)
class FrameworkRule:
    """Constraints that hold wherever ``trigger`` is installed (see the module table).

    ``applies_to`` limits the rule to trigger versions (it applies only when every version the
    environment admits is inside); ``machines`` to ``platform.machine()`` values (empty: all).
    """

    trigger: str
    requires: tuple[Bound, ...] = ()
    defaults: tuple[tuple[Bound, ...], ...] = ()
    build: tuple[Bound, ...] = ()
    applies_to: str = ""
    machines: tuple[str, ...] = ()
    label: str = ""

    @property
    def name(self) -> str:
        """How notices and errors name the rule (``"chainer"``, ``"mpi4py<4"``)."""
        return self.label or f"{self.trigger}{self.applies_to}"


_CHAINER_NUMPY = "import chainer uses np.sctypes, removed in NumPy 2"
_CHAINER_SETUPTOOLS = (
    "Chainer imports numpy.distutils and pkg_resources (gone from setuptools 74 and 82)"
)

#: The constraint table, applied in order (``torchvision`` before ``torch``: its default pins the
#: torch it was built against).
FRAMEWORK_RULES: tuple[FrameworkRule, ...] = (
    FrameworkRule(
        "chainer",
        label="Chainer",
        requires=(
            Bound("numpy<2", _CHAINER_NUMPY),
            Bound("setuptools<74", _CHAINER_SETUPTOOLS),
        ),
        defaults=(
            (Bound("numpy<1.24", "keeps np.int/np.float that v1-era Chainer scripts use"),),
            (Bound("protobuf<4", "chainer.links.caffe needs protobuf 3"),),
        ),
        build=(Bound("setuptools<74", "Chainer's sdist imports pkg_resources while building"),),
    ),
    FrameworkRule(
        "mpi4py",
        applies_to="<4",
        build=(
            Bound("setuptools<74", "mpi4py 3's build uses distutils APIs newer setuptools removed"),
        ),
    ),
    FrameworkRule(
        "torchvision",
        machines=("x86_64",),
        defaults=(
            (
                Bound("torchvision==0.29.1", "the torchvision build that imports here"),
                Bound("torch==2.14.1", "the torch torchvision 0.29.1 was built against"),
            ),
        ),
    ),
    FrameworkRule(
        "torch",
        machines=("x86_64",),
        defaults=(
            (
                Bound(
                    "torch==2.13.0", "the CPU wheel here; unpinned torch pulls GBs of CUDA builds"
                ),
            ),
        ),
    ),
)


def _unmarked(reqs: Sequence[Requirement], name: str) -> Requirement | None:
    for req in reqs:
        if req.name == name and req.marker is None and req.url is None:
            return req
    return None


def _rule_applies(rule: FrameworkRule, reqs: Sequence[Requirement], machine: str) -> bool:
    if rule.machines and machine not in rule.machines:
        return False
    present = [r for r in reqs if r.name == rule.trigger]
    if not present:
        return False
    if not rule.applies_to:
        return True
    trigger = _unmarked(reqs, rule.trigger)
    if trigger is None:
        return False
    admitted, scope = (
        version_interval(trigger.specifier),
        version_interval(SpecifierSet(rule.applies_to)),
    )
    return admitted is not None and scope is not None and admitted.within(scope)


def _compatible(reqs: Sequence[Requirement], bound: Requirement) -> bool:
    current = _unmarked(reqs, bound.name)
    return current is None or not specifiers_conflict(current.specifier, bound.specifier)


def apply_framework_constraints(
    requirements: Sequence[Requirement],
    *,
    origin: str = "the environment",
    machine: str | None = None,
    rules: Sequence[FrameworkRule] = FRAMEWORK_RULES,
) -> tuple[list[Requirement], list[Requirement], list[str]]:
    """Apply :data:`FRAMEWORK_RULES` to already-merged ``requirements``.

    Returns ``(requirements, build constraints, notices)``: the requirements with the rules' hard
    and default bounds merged in (sorted), the rules' extra build constraints, and one notice per
    bound that changed something or was left out. Raises
    :class:`~trainyard.exceptions.ValidationError` when a user pin conflicts with a hard bound.

    Example::

        reqs, build, notes = apply_framework_constraints([parse_requirement("numpy>=2"),
                                                          parse_requirement("chainer")])
        # ValidationError: numpy: 'numpy>=2' (from the environment) conflicts with 'numpy<2' …
    """
    arch = machine if machine is not None else platform.machine()
    reqs = list(requirements)
    build: list[tuple[Requirement, str]] = []
    notices: list[str] = []
    for rule in rules:
        if not _rule_applies(rule, reqs, arch):
            continue
        for bound in rule.requires:
            reqs = _merge_bound(reqs, bound, rule, origin, notices, hard=True)
        for group in rule.defaults:
            wanted = [parse_requirement(b.requirement) for b in group]
            if all(_compatible(reqs, w) for w in wanted):
                for bound in group:
                    reqs = _merge_bound(reqs, bound, rule, origin, notices, hard=False)
            else:
                kept = ", ".join(
                    str(_unmarked(reqs, w.name) or w) for w in wanted if not _compatible(reqs, w)
                )
                notices.append(
                    f"{rule.name}: default {' + '.join(b.requirement for b in group)} not applied "
                    f"because the environment pins {kept} ({group[0].reason})."
                )
        build.extend(
            (parse_requirement(b.requirement), f"{rule.name} ({b.reason})") for b in rule.build
        )
    return merge_requirements((r, origin) for r in reqs), merge_requirements(build), notices


def _merge_bound(
    reqs: list[Requirement],
    bound: Bound,
    rule: FrameworkRule,
    origin: str,
    notices: list[str],
    *,
    hard: bool,
) -> list[Requirement]:
    wanted = parse_requirement(bound.requirement)
    current = _unmarked(reqs, wanted.name)
    source = f"{rule.name}: {bound.reason}"
    if current is None:
        notices.append(f"{rule.name}: {bound.requirement} added ({bound.reason}).")
        return [*reqs, wanted]
    merged = combine(current, origin, wanted, source)
    if str(merged) != str(current):
        kind = "requires" if hard else "default"
        notices.append(
            f"{rule.name}: {str(current)!r} narrowed to {str(merged)!r} ({kind} "
            f"{bound.requirement}: {bound.reason})."
        )
    return [merged if r is current else r for r in reqs]


def mpi_notices(requirement_names: frozenset[str]) -> list[str]:
    """A notice when ``mpi4py`` is installed on a host without Open MPI's ``mpirun``.

    The mpi4py wheel installs without MPI, but ``from mpi4py import MPI`` needs the library at run
    time (and a source build needs its headers).
    """
    if "mpi4py" in requirement_names and shutil.which("mpirun") is None:
        return [
            "mpi4py is installed, but Open MPI is not on this host: MPI jobs need "
            f"`{OPENMPI_APT}` (also needed if mpi4py is built from source)."
        ]
    return []


# --------------------------------------------------------------------------- estimator releases
@dataclass(frozen=True)
class FrameworkRelease:
    """A framework release that installs and runs on this Python.

    ``packages`` are what an estimator pins for it; ``gpu_packages`` are added for ``use_gpu=True``
    (``None``: no GPU build of this release installs here, so a GPU request maps to another).
    """

    version: str
    packages: tuple[str, ...]
    gpu_packages: tuple[str, ...] | None = ()
    gpu_missing: str = ""


@dataclass(frozen=True)
class Framework:
    """An estimator's framework: its installable releases (oldest first), the default, and v1
    versions that cannot install here with the reason (they map to the nearest release)."""

    name: str
    releases: tuple[FrameworkRelease, ...]
    default: str
    unavailable: dict[str, str] = field(default_factory=dict)

    def release(self, version: str) -> FrameworkRelease:
        """The release with this exact version (``KeyError`` otherwise)."""
        for rel in self.releases:
            if rel.version == version:
                return rel
        raise KeyError(version)

    def match(self, requested: str) -> FrameworkRelease | None:
        """The release ``requested`` names: exactly, or as a prefix (``"7.8"`` → 7.8.1)."""
        for rel in self.releases:
            if rel.version == requested or rel.version.startswith(requested + "."):
                return rel
        return None

    def nearest(self, requested: str) -> FrameworkRelease:
        """The oldest release at or after ``requested``, else the newest."""
        try:
            want = Version(requested)
        except ValueError:
            return self.release(self.default)
        later = [r for r in self.releases if Version(r.version) >= want]
        return later[0] if later else self.releases[-1]


_CUPY_OLD = "its CuPy ({cupy}) does not install on Python 3.11; CuPy 12+ supports Chainer 7.8 only"

#: The releases estimators install (verified here: each builds with uv and trains).
FRAMEWORKS: dict[str, Framework] = {
    "Chainer": Framework(
        "Chainer",
        releases=(
            FrameworkRelease(
                "5.1.0", ("chainer==5.1.0",), None, _CUPY_OLD.format(cupy="cupy-cuda90==5.2.0")
            ),
            FrameworkRelease(
                "7.0.0", ("chainer==7.0.0",), None, _CUPY_OLD.format(cupy="cupy-cuda90==7.0.0")
            ),
            FrameworkRelease("7.8.1", ("chainer==7.8.1",), ("cupy-cuda12x",)),
        ),
        default="7.8.1",
    ),
    "PyTorch": Framework(
        "PyTorch",
        releases=(
            FrameworkRelease(
                "2.13.0",
                # torch's wheel does not require NumPy, but v1's PyTorch images had it and the
                # examples use it; 2.2.6 is the pin the PyTorch environments always had.
                ("torch==2.13.0", "numpy==2.2.6"),
                None,
                "the torch 2.13.0 wheel here is the CPU build, and no torchvision imports beside it",
            ),
            FrameworkRelease("2.14.1", ("torch==2.14.1", "torchvision==0.29.1")),
        ),
        # The 190 MB CPU wheel, not the 5.4 GB CUDA build: most local runs train on CPU.
        default="2.13.0",
        unavailable={
            v: f"PyTorch {v} has no wheels for Python 3.11"
            for v in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6")
        },
    ),
    "TensorFlow": Framework(
        "TensorFlow",
        releases=(
            FrameworkRelease("2.21.0", ("tensorflow-cpu==2.21.0",), ("tensorflow==2.21.0",)),
        ),
        default="2.21.0",
        unavailable={
            v: f"TensorFlow {v} has no wheels for Python 3.11"
            for v in ("1.10", "1.12", "1.13", "2.0", "2.1", "2.2")
        },
    ),
}


def exact_version(requirements: Sequence[str], name: str) -> str | None:
    """The version ``name`` is pinned to with ``==`` in ``requirements``, or ``None``.

    Example::

        exact_version(["chainer==5.1.0", "six"], "chainer")   # "5.1.0"
    """
    wanted = canonicalize_name(name)
    for text in requirements:
        req = Requirement(text)
        if canonicalize_name(req.name) != wanted:
            continue
        pins = [s.version for s in req.specifier if s.operator in {"==", "==="}]
        if len(pins) == 1 and not pins[0].endswith(".*"):
            return pins[0]
    return None


@dataclass(frozen=True)
class ResolvedFramework:
    """What an estimator installs for a requested ``framework_version``.

    ``mapped`` says why the requested version was replaced (``""`` when honoured or unspecified).
    """

    name: str
    requested: str | None
    release: FrameworkRelease
    mapped: str = ""

    @property
    def version(self) -> str:
        """The release installed (pinned exactly, so it is what the build resolves)."""
        return self.release.version

    def packages(self, use_gpu: bool) -> list[str]:
        """The release's pins, plus its GPU packages when ``use_gpu``."""
        extra = list(self.release.gpu_packages or ()) if use_gpu else []
        return [*self.release.packages, *extra]


def resolve_framework(
    framework: Framework, requested: str | None, *, use_gpu: bool
) -> ResolvedFramework:
    """Honour ``requested`` when it installs on this Python; map it to the nearest release that
    does (``mapped`` says why) only when it cannot; ``None`` picks the default.

    Raises :class:`~trainyard.exceptions.UserErrorException` for versions neither installable nor
    known from v1.

    Example::

        resolve_framework(FRAMEWORKS["Chainer"], "5.1.0", use_gpu=False).version   # "5.1.0"
        resolve_framework(FRAMEWORKS["PyTorch"], "1.6", use_gpu=False).mapped
        # "PyTorch 1.6 has no wheels for Python 3.11; PyTorch 2.13.0 is installed instead."
    """
    from trainyard.exceptions import UserErrorException

    name = framework.name
    if requested is None:
        release = framework.release(framework.default)
        mapped = ""
    else:
        text = str(requested).strip()
        found = framework.match(text)
        if found is not None:
            release, mapped = found, ""
        elif text in framework.unavailable:
            release = framework.nearest(text)
            mapped = (
                f"{framework.unavailable[text]}; {name} {release.version} is installed instead."
            )
        else:
            supported = ", ".join(r.version for r in framework.releases)
            v1 = ", ".join(framework.unavailable) or "none"
            raise UserErrorException(
                f"{name} framework_version {text!r} is not supported. Supported: {supported} "
                f"(v1 versions {v1} map onto them).",
                framework_version=text,
            )
    if use_gpu and release.gpu_packages is None:
        gpu = [r for r in framework.releases if r.gpu_packages is not None]
        if gpu:
            why = f"{name} {release.version} cannot use the GPU here ({release.gpu_missing})"
            release = gpu[-1]
            mapped = f"{why}; {name} {release.version} is installed instead."
    return ResolvedFramework(name, requested, release, mapped)
