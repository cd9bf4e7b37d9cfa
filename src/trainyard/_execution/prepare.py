"""Preparing stage: turn a run's environment definition into an interpreter to run the script with.

The definition is the dict form of the run's environment (``Environment.to_dict()``, stored in the
run definition); it is read by :mod:`trainyard._execution.environments` directly, so this layer
needs no public ``Environment`` object. An empty definition is the default environment: the
current interpreter, user-managed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainyard.settings import Settings

#: The definition used when a run has none (``ScriptRunConfig`` without an environment).
DEFAULT_DEFINITION: dict[str, Any] = {
    "name": "default-environment",
    "python": {"userManagedDependencies": True},
}


@dataclass(frozen=True)
class PreparedEnvironment:
    """What the supervisor needs from the Preparing stage."""

    python: str
    spec_hash: str
    cached: bool
    resolved: dict[str, str]
    env: dict[str, str]


def prepare_environment(
    env_def: Mapping[str, Any],
    settings: Settings,
    log: Callable[[str], Any],
    heartbeat: Callable[[], None] | None = None,
    extra_requirements: Sequence[str] = (),
) -> PreparedEnvironment:
    """Build (or reuse from the cache) the environment ``env_def`` describes, with
    ``extra_requirements`` added to its pip list when trainyard installs it (an MPI job's
    ``mpi4py``; a user-managed environment is left as it is).

    Raises ``EnvironmentBuildError`` with the resolver's message when it cannot be built, and
    ``ValidationError``/``ConfigError`` when the definition is invalid.

    Example::

        prepared = prepare_environment(env.to_dict(), load_settings(), print)
    """
    from trainyard._execution.environments.builder import default_builder
    from trainyard._execution.environments.definition import EnvDefinition
    from trainyard._execution.environments.spec import EnvSpec

    data = env_def or DEFAULT_DEFINITION
    definition = EnvDefinition.from_dict(data)
    spec = EnvSpec.from_environment_dict(data, extra_requirements=extra_requirements)

    def sink(line: str) -> None:
        log(line if line.endswith("\n") else line + "\n")
        if heartbeat is not None:
            heartbeat()

    built = default_builder(settings).build(spec, log=sink)
    return PreparedEnvironment(
        python=str(built.python),
        spec_hash=built.spec_hash,
        cached=built.cached,
        resolved=dict(built.resolved),
        env=dict(definition.environment_variables),
    )


def current_interpreter(env_def: Mapping[str, Any]) -> tuple[str, dict[str, str]] | None:
    """``(python, extra env)`` when ``env_def`` is user-managed on this interpreter, else ``None``.

    That is the default environment (``ScriptRunConfig`` without one) and any user-managed one
    without an ``interpreter_path``: nothing to build or look up, so the supervisor starts the
    script at once and calls :func:`prepare_environment` only afterwards, to record the installed
    packages (listing them takes ~0.1 s). The definition is parsed exactly as
    :func:`prepare_environment` parses it, so an invalid one raises the same error here.

    Example::

        current_interpreter({})   # (sys.executable, {})
    """
    from trainyard._execution.environments.definition import EnvDefinition
    from trainyard._execution.environments.spec import EnvSpec

    data = env_def or DEFAULT_DEFINITION
    definition = EnvDefinition.from_dict(data)
    spec = EnvSpec.from_environment_dict(data)
    if not spec.user_managed or spec.interpreter_path:
        return None
    return sys.executable, dict(definition.environment_variables)
