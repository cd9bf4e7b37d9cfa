"""The one merge function for pip requirements: :func:`combine` and :func:`merge_requirements`.

Every path that puts two requirements for the same distribution together goes through here: the
duplicates of one environment's own list, an estimator's framework pins with the user's
``pip_packages``, and the framework constraint table (:mod:`.frameworks`) with any environment.

The rule: specifiers are intersected, and the stricter side is kept as written when it already
implies the other (``numpy==1.26.4`` with ``numpy<2`` stays ``numpy==1.26.4``, so a spec that
already satisfies a constraint keeps its text and its cache key). When no version can satisfy both,
:class:`~trainyard.exceptions.ValidationError` names both requirements and where each came from.

Example::

    from trainyard._execution.environments.pins import merge_requirements, parse_requirement
    merged = merge_requirements([(parse_requirement("numpy"), "pip_packages"),
                                 (parse_requirement("numpy<2"), "Chainer")])
    [str(r) for r in merged]   # ["numpy<2"]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import Specifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from trainyard.exceptions import ValidationError


def parse_requirement(text: str) -> Requirement:
    """Parse one pip requirement (name canonicalised), raising
    :class:`~trainyard.exceptions.ValidationError` that quotes it and packaging's reason.

    Example::

        parse_requirement("NumPy<2").name   # "numpy"
    """
    try:
        req = Requirement(text)
    except InvalidRequirement as err:
        raise ValidationError(
            f"pip requirement {text!r} is not valid: {err}. Use PEP 508 form, e.g. 'numpy==1.26.4' "
            "or 'name @ https://…/file.whl'.",
            requirement=text,
        ) from None
    req.name = canonicalize_name(req.name)
    return req


# --------------------------------------------------------------------------- version intervals
@dataclass(frozen=True)
class VersionInterval:
    """The versions a specifier set admits, as one interval (``!=`` is checked separately)."""

    lo: Version | None = None
    lo_incl: bool = True
    hi: Version | None = None
    hi_incl: bool = True

    def meet(self, other: VersionInterval) -> VersionInterval:
        lo, lo_incl = self.lo, self.lo_incl
        if other.lo is not None and (lo is None or other.lo > lo):
            lo, lo_incl = other.lo, other.lo_incl
        elif other.lo is not None and other.lo == lo:
            lo_incl = lo_incl and other.lo_incl
        hi, hi_incl = self.hi, self.hi_incl
        if other.hi is not None and (hi is None or other.hi < hi):
            hi, hi_incl = other.hi, other.hi_incl
        elif other.hi is not None and other.hi == hi:
            hi_incl = hi_incl and other.hi_incl
        return VersionInterval(lo, lo_incl, hi, hi_incl)

    @property
    def empty(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_incl and self.hi_incl))

    @property
    def point(self) -> Version | None:
        if self.lo is not None and self.lo == self.hi and self.lo_incl and self.hi_incl:
            return self.lo
        return None

    def within(self, other: VersionInterval) -> bool:
        """Whether every version of ``self`` is in ``other``."""
        if other.lo is not None:
            if self.lo is None or self.lo < other.lo:
                return False
            if self.lo == other.lo and self.lo_incl and not other.lo_incl:
                return False
        if other.hi is not None:
            if self.hi is None or self.hi > other.hi:
                return False
            if self.hi == other.hi and self.hi_incl and not other.hi_incl:
                return False
        return True


def _bump(release: tuple[int, ...]) -> Version:
    """The first version after every ``release.*`` version (``1.26`` → ``1.27``)."""
    head = [*release[:-1], release[-1] + 1]
    return Version(".".join(str(p) for p in head))


def _interval_of(spec: Specifier) -> VersionInterval:
    op, text = spec.operator, spec.version
    if op == "!=":
        return VersionInterval()
    if op == "==" and text.endswith(".*"):
        base = Version(text[:-2])
        return VersionInterval(base, True, _bump(base.release), False)
    version = Version(text)
    if op in {"==", "==="}:
        return VersionInterval(version, True, version, True)
    if op == ">=":
        return VersionInterval(lo=version, lo_incl=True)
    if op == ">":
        return VersionInterval(lo=version, lo_incl=False)
    if op == "<=":
        return VersionInterval(hi=version, hi_incl=True)
    if op == "<":
        return VersionInterval(hi=version, hi_incl=False)
    # ~=X.Y.Z: >=X.Y.Z, ==X.Y.*
    return VersionInterval(version, True, _bump(version.release[:-1]), False)


def version_interval(specifiers: SpecifierSet) -> VersionInterval | None:
    """The interval of ``specifiers``, or ``None`` when it cannot be computed (``===`` on a
    non-PEP 440 string): such pins are merged without a conflict check."""
    out = VersionInterval()
    try:
        for spec in specifiers:
            out = out.meet(_interval_of(spec))
    except InvalidVersion:
        return None
    return out


def _admits(specifiers: SpecifierSet, version: Version) -> bool:
    return specifiers.contains(version, prereleases=True)


def specifiers_conflict(a: SpecifierSet, b: SpecifierSet) -> bool:
    """Whether no version satisfies both (decided on version intervals, ``!=`` included when
    the intersection is a single version).

    Example::

        specifiers_conflict(SpecifierSet("==1.26.4"), SpecifierSet("<1.24"))   # True
    """
    ia, ib = version_interval(a), version_interval(b)
    if ia is None or ib is None:
        return False
    both = ia.meet(ib)
    if both.empty:
        return True
    point = both.point
    return point is not None and not (_admits(a, point) and _admits(b, point))


def _implies(a: SpecifierSet, b: SpecifierSet) -> bool:
    """Whether every version ``a`` admits is admitted by ``b`` (conservative: ``False`` when
    unsure, which only costs an explicit intersection)."""
    if not b:
        return True
    if not a:
        return False
    ia, ib = version_interval(a), version_interval(b)
    if ia is None or ib is None:
        return False
    point = ia.point
    if point is not None:
        return _admits(b, point)
    return not any(s.operator == "!=" for s in b) and ia.within(ib)


def _tightest(specifiers: SpecifierSet) -> SpecifierSet:
    """``specifiers`` with redundant bounds dropped (``<1.24,<2,>=1.20`` → ``<1.24,>=1.20``)."""
    upper = [s for s in specifiers if s.operator in {"<", "<="}]
    lower = [s for s in specifiers if s.operator in {">", ">="}]
    keep = [s for s in specifiers if s not in upper and s not in lower]
    try:
        if upper:
            keep.append(min(upper, key=lambda s: (Version(s.version), s.operator == "<=")))
        if lower:
            keep.append(max(lower, key=lambda s: (Version(s.version), s.operator == ">")))
    except InvalidVersion:
        return specifiers
    return SpecifierSet(",".join(str(s) for s in keep))


# --------------------------------------------------------------------------- the merge function
def combine(
    first: Requirement, first_origin: str, second: Requirement, second_origin: str
) -> Requirement:
    """One requirement satisfying both (same distribution); the stricter is kept as written.

    Raises :class:`~trainyard.exceptions.ValidationError` naming both, and their origins, when no
    version satisfies both.

    Example::

        combine(Requirement("numpy>=1.20"), "pip_packages", Requirement("numpy<2"), "Chainer")
        # numpy<2,>=1.20
    """
    if specifiers_conflict(first.specifier, second.specifier):
        raise ValidationError(
            f"{first.name}: {str(first)!r} (from {first_origin}) conflicts with {str(second)!r} "
            f"(from {second_origin}); no version satisfies both. Remove one of them or pin a version "
            "both allow.",
            package=first.name,
            requirement=str(first),
            requirement_origin=first_origin,
            conflicting=str(second),
            conflicting_origin=second_origin,
        )
    out = Requirement(str(first))
    out.name = first.name
    if _implies(second.specifier, first.specifier) and second.specifier:
        out.specifier = SpecifierSet(str(second.specifier))
    elif not _implies(first.specifier, second.specifier):
        out.specifier = _tightest(first.specifier & second.specifier)
    out.extras = set(first.extras) | set(second.extras)
    if out.url is None and second.url is not None:
        out.url = second.url
    return out


def merge_requirements(items: Iterable[tuple[Requirement, str]]) -> list[Requirement]:
    """Merge ``(requirement, origin)`` pairs: one requirement per (name, marker, URL), via
    :func:`combine`, sorted by text.

    Example::

        merge_requirements([(Requirement("six"), "a"), (Requirement("six==1.16.0"), "b")])
        # [six==1.16.0]
    """
    merged: dict[tuple[str, str, str], tuple[Requirement, str]] = {}
    for req, origin in items:
        name = canonicalize_name(req.name)
        req = Requirement(str(req))
        req.name = name
        key = (name, str(req.marker or ""), req.url or "")
        if key in merged:
            prev, prev_origin = merged[key]
            merged[key] = (combine(prev, prev_origin, req, origin), f"{prev_origin} and {origin}")
        else:
            merged[key] = (req, origin)
    return sorted((r for r, _ in merged.values()), key=str)


def merge_requirement_texts(*groups: tuple[Iterable[str], str]) -> list[str]:
    """:func:`merge_requirements` over texts: ``(texts, origin)`` groups in, requirement texts out,
    in first-seen order (what an estimator writes into its environment's ``pip:`` list).

    Example::

        merge_requirement_texts((["chainer==5.1.0"], "Chainer 5.1.0"), (["Chainer", "pytest"], "pip_packages"))
        # ["chainer==5.1.0", "pytest"]
    """
    order: list[str] = []
    items: list[tuple[Requirement, str]] = []
    for texts, origin in groups:
        for text in texts:
            req = parse_requirement(text.strip())
            items.append((req, origin))
            if req.name not in order:
                order.append(req.name)
    merged = merge_requirements(items)
    return [str(r) for r in sorted(merged, key=lambda r: order.index(r.name))]
