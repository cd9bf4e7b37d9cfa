"""Preparing stage: turn a run's environment definition into an interpreter to run the script with."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trainyard.settings import Settings


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
) -> PreparedEnvironment:
    """Build (or reuse from the cache) the environment ``env_def`` describes.

    Raises ``EnvironmentBuildError`` with the resolver's message when it cannot be built.
    """
    from trainyard._execution.environments.builder import default_builder
    from trainyard._execution.environments.spec import EnvSpec
    from trainyard.core.environment import Environment

    environment = Environment.from_dict(env_def) if env_def else _default_environment()
    spec = EnvSpec.from_environment(environment)

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
        env={str(k): str(v) for k, v in (environment.environment_variables or {}).items()},
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
    from trainyard._execution.environments.spec import EnvSpec
    from trainyard.core.environment import Environment

    environment = Environment.from_dict(env_def) if env_def else _default_environment()
    spec = EnvSpec.from_environment(environment)
    if not spec.user_managed or spec.interpreter_path:
        return None
    env = {str(k): str(v) for k, v in (environment.environment_variables or {}).items()}
    return sys.executable, env


def _default_environment() -> Any:
    from trainyard.core.environment import Environment

    env = Environment("default-environment")
    env.python.user_managed_dependencies = True
    return env
