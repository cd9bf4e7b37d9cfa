"""Naming rules (v1's regular expressions), checked in one place."""

from __future__ import annotations

import re

from trainyard.exceptions import InvalidNameError, MetricValueError

_EXPERIMENT = re.compile(r"^[a-zA-Z0-9][\w\-]{0,254}$")
_WORKSPACE = re.compile(r"^[a-zA-Z0-9][\w\-]{0,254}$")
_MODEL = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-\._]{0,254}$")
_SERVICE = re.compile(r"^[a-z][a-z0-9\-]{1,30}[a-z0-9]$")
_ENVIRONMENT = re.compile(r"^[a-zA-Z0-9][\w\-\.]{0,254}$")
MAX_METRIC_NAME = 255


def _check(kind: str, pattern: re.Pattern[str], name: object, rule: str) -> str:
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise InvalidNameError(f"Invalid {kind} name {name!r}: {rule}", name=str(name))
    return name


def validate_experiment_name(name: object) -> str:
    """v1: ``^[a-zA-Z0-9][\\w\\-]{0,254}$`` (1–255 characters)."""
    return _check(
        "experiment",
        _EXPERIMENT,
        name,
        "use 1–255 letters, digits, '_' or '-', starting with a letter or digit.",
    )


def validate_workspace_name(name: object) -> str:
    return _check(
        "workspace",
        _WORKSPACE,
        name,
        "use 1–255 letters, digits, '_' or '-', starting with a letter or digit.",
    )


def validate_model_name(name: object) -> str:
    """v1: ``^[a-zA-Z0-9][a-zA-Z0-9\\-\\._]{0,254}$``."""
    return _check(
        "model",
        _MODEL,
        name,
        "use 1–255 letters, digits, '-', '.' or '_', starting with a letter or digit.",
    )


def validate_service_name(name: object) -> str:
    """v1: lowercase letters, digits and '-'; starts with a letter; 3–32 characters."""
    return _check(
        "service",
        _SERVICE,
        name,
        "use 3–32 lowercase letters, digits or '-', starting with a letter and not ending with '-'.",
    )


def validate_environment_name(name: object) -> str:
    return _check(
        "environment",
        _ENVIRONMENT,
        name,
        "use letters, digits, '_', '-' or '.', starting with a letter or digit.",
    )


def validate_metric_name(name: object) -> str:
    """Metric names: non-empty strings of at most 255 characters without control characters."""
    if not isinstance(name, str):
        raise MetricValueError(
            f"Metric name must be a string, not {type(name).__name__} ({name!r}).",
            metric=repr(name),
        )
    if not name or not name.strip():
        raise MetricValueError("Metric name must not be empty.", metric=name)
    if len(name) > MAX_METRIC_NAME:
        raise MetricValueError(
            f"Metric name {name[:40]!r}… is {len(name)} characters; the limit is {MAX_METRIC_NAME}.",
            metric=name[:MAX_METRIC_NAME],
        )
    if any(ord(ch) < 32 for ch in name):
        raise MetricValueError(f"Metric name {name!r} contains control characters.", metric=name)
    return name
