"""The Python environment of a service: the environment's packages plus the scoring server's.

A service built by trainyard (``user_managed_dependencies=False``) gets the environment's own
requirements plus ``fastapi``, ``uvicorn``, ``uvloop`` and ``httptools`` pinned to the versions
installed here (unless the environment names them itself), built and cached by the same uv builder
as run environments. A user-managed environment runs on its interpreter (or this one) unchanged,
after a check that it can import the server.

Example::

    built = build_python(env, settings.env_cache_dir, log=print)
    built.python   # …/envs/<hash>/bin/python
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from trainyard.exceptions import WebserviceException

#: Distributions the scoring server needs in a built environment, pinned to this side's versions.
SERVING_DISTRIBUTIONS: tuple[str, ...] = ("fastapi", "uvicorn", "uvloop", "httptools")


@dataclass(frozen=True)
class ServingPython:
    """The interpreter a service runs on and what was built for it."""

    python: str
    spec_hash: str | None
    cached: bool
    user_managed: bool


def serving_pins() -> list[str]:
    """``fastapi==…``, ``uvicorn==…`` … as installed here (those not installed are left out).

    Example::

        serving_pins()   # ['fastapi==0.165.0', 'uvicorn==0.54.0', ...]
    """
    pins = []
    for dist in SERVING_DISTRIBUTIONS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            pins.append(f"{dist}=={metadata.version(dist)}")
    return pins


def inference_spec(environment: Any) -> Any:
    """The :class:`~trainyard._execution.environments.spec.EnvSpec` of a service environment: the
    environment's own packages plus the scoring server's (those it does not name itself).

    Example::

        spec = inference_spec(Environment.from_conda_specification("e", "env.yml"))
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from trainyard._execution.environments.spec import EnvSpec

    py = environment.python
    cd = py.conda_dependencies
    named = set()
    for req in cd.pip_packages:
        with contextlib.suppress(Exception):
            named.add(canonicalize_name(Requirement(req).name))
    extra = [p for p in serving_pins() if canonicalize_name(p.split("==")[0]) not in named]
    return EnvSpec.from_requirements(
        [*cd.pip_packages, *([] if py.user_managed_dependencies else extra)],
        python_version=cd.python_version,
        pip_options=cd.pip_options,
        conda_packages=list(cd.conda_packages),
        user_managed=bool(py.user_managed_dependencies),
        interpreter_path=py.interpreter_path,
    )


def _check_server_importable(python: str) -> None:
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    else:
        proc = subprocess.run(
            [python, "-c", "import fastapi, uvicorn"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        missing = [] if proc.returncode == 0 else ["fastapi/uvicorn"]
    if missing:
        raise WebserviceException(
            f"The user-managed interpreter {python} cannot import {', '.join(missing)}, which the "
            "scoring server needs: pip install 'trainyard[serving]' into it, or let trainyard build "
            "the environment (user_managed_dependencies=False).",
            python=python,
        )


def build_python(
    environment: Any, env_cache: Path | None, log: Callable[[str], None]
) -> ServingPython:
    """Build (or reuse from the cache) the service's environment; return its interpreter.

    User-managed environments use their ``interpreter_path`` or this interpreter, after checking
    it can import the server. Raises :class:`~trainyard.exceptions.EnvironmentBuildError` when the
    build fails and :class:`WebserviceException` when the server cannot run.

    Example::

        built = build_python(env, settings.env_cache_dir, log=print)
    """
    from trainyard._execution.environments.builder import default_builder
    from trainyard.settings import load_settings

    settings = load_settings()
    if env_cache is not None:
        from dataclasses import replace

        settings = replace(settings, env_cache=env_cache)
    spec = inference_spec(environment)
    built = default_builder(settings).build(spec, log=log)
    if spec.user_managed:
        _check_server_importable(str(built.python))
    return ServingPython(
        python=str(built.python),
        spec_hash=None if spec.user_managed else built.spec_hash,
        cached=built.cached,
        user_managed=spec.user_managed,
    )
