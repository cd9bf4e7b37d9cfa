"""Read an environment's dict form (``Environment.to_dict()``, v1's ``azureml_environment.json``).

This is what the lower layer receives from a run definition or a service record: a JSON object with
camelCase keys. :class:`EnvDefinition` keeps only what building and running need — the pip list
and its option lines, the conda list (``python=X`` included), who manages the packages, and the
environment variables — so nothing below the public API needs an ``Environment`` object.

Shape read (everything optional; unknown keys ignored)::

    {"environmentVariables": {"K": "v"},
     "python": {"userManagedDependencies": false, "interpreterPath": null,
                "condaDependencies": {"dependencies": ["python=3.11", "numpy=1.26",
                                                       {"pip": ["--index-url URL", "six"]}]}}}

Example::

    from trainyard._execution.environments.definition import EnvDefinition
    d = EnvDefinition.from_dict(env.to_dict())
    d.pip, d.conda, d.environment_variables
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainyard.exceptions import ConfigError


@dataclass(frozen=True)
class EnvDefinition:
    """The parts of an environment definition that decide what is installed and run.

    ``conda`` keeps the conda specs as written, the ``python`` entry included;
    ``pip`` holds requirements and ``pip_options`` the option lines (``--index-url …``) of the
    ``pip:`` list.
    """

    pip: tuple[str, ...] = ()
    pip_options: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()
    user_managed: bool = False
    interpreter_path: str | None = None
    environment_variables: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvDefinition:
        """Read the dict form; an empty mapping is the default environment (nothing listed).

        Raises :class:`~trainyard.exceptions.ConfigError` naming what is malformed.

        Example::

            EnvDefinition.from_dict({"python": {"userManagedDependencies": True}}).user_managed  # True
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"an environment definition must be a JSON object, got {type(data).__name__}."
            )
        python = _mapping(data.get("python"), "python")
        variables = _mapping(data.get("environmentVariables"), "environmentVariables")
        conda, pip, options = _read_conda(python.get("condaDependencies"))
        interpreter = python.get("interpreterPath")
        if interpreter is not None and not isinstance(interpreter, str):
            raise ConfigError("python.interpreterPath must be a string path.")
        return cls(
            pip=tuple(pip),
            pip_options=tuple(options),
            conda=tuple(conda),
            user_managed=bool(python.get("userManagedDependencies", False)),
            interpreter_path=interpreter or None,
            environment_variables={str(k): str(v) for k, v in variables.items()},
        )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"malformed environment definition: {where!r} must be an object, got "
            f"{type(value).__name__}."
        )
    return value


def _read_conda(value: Any) -> tuple[list[str], list[str], list[str]]:
    """``(conda specs, pip requirements, pip option lines)`` of a ``condaDependencies`` object."""
    conda_deps = _mapping(value, "python.condaDependencies")
    deps = conda_deps.get("dependencies") or []
    if not isinstance(deps, list):
        raise ConfigError("malformed environment definition: 'dependencies' must be a list.")
    conda: list[str] = []
    pip: list[str] = []
    options: list[str] = []
    for item in deps:
        if isinstance(item, Mapping):
            entries = item.get("pip") or []
            if set(item) != {"pip"} or not isinstance(entries, list):
                raise ConfigError(
                    f"malformed environment definition: only a 'pip:' list may nest under "
                    f"dependencies, got {dict(item)!r}."
                )
            for entry in entries:
                if entry is None:
                    continue
                text = str(entry).strip()
                (options if text.startswith("-") else pip).append(text)
        elif isinstance(item, str | int | float):
            conda.append(str(item))
        else:
            raise ConfigError(f"malformed environment definition: unexpected dependency {item!r}.")
    return conda, pip, options
