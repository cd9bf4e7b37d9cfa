"""An :class:`~trainyard.core.environment.Environment` from the files a project already has.

One rule for every entry point that takes an environment *file* (``trainyard submit --env``, a sweep
spec's ``environment:``, ``trainyard service deploy --env``): a conda specification (``.yml`` /
``.yaml``) or a requirements file (anything else), plus extra pip requirements.

Example::

    from trainyard.core.environment_files import environment_from_file

    env = environment_from_file("mnist", Path("requirements.txt"), pip=["six==1.16.0"])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainyard.core.environment import Environment

__all__ = ["CONDA_SUFFIXES", "REQUIREMENTS_FILE", "environment_from_file"]

#: File suffixes read as conda specifications.
CONDA_SUFFIXES = (".yml", ".yaml")
#: The file a project's requirements are in by convention.
REQUIREMENTS_FILE = "requirements.txt"


def environment_from_file(
    name: str, env_file: Path | None = None, pip: Sequence[str] = ()
) -> Environment | None:
    """The environment ``env_file`` describes, plus ``pip`` requirements; ``None`` (the submitting
    interpreter, nothing built) when neither is given. A missing or malformed file raises the
    constructors' typed errors, naming it.

    Example::

        environment_from_file("demo-pip", None, ["six==1.16.0"]).name   # 'demo-pip'
    """
    from trainyard.core.conda_dependencies import CondaDependencies
    from trainyard.core.environment import Environment

    if env_file is None and not pip:
        return None
    if env_file is not None:
        if env_file.suffix.lower() in CONDA_SUFFIXES:
            env = Environment.from_conda_specification(name, env_file)
        else:
            env = Environment.from_pip_requirements(name, env_file)
    else:
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies.create()
    for package in pip:
        env.python.conda_dependencies.add_pip_package(package)
    env.validate()
    return env
