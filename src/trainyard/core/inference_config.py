"""``InferenceConfig``: what a web service runs (v1: ``azureml.core.model.InferenceConfig``).

An inference configuration names the scoring script (``init()`` / ``run(input_data)``), the folder it
lives in (copied whole into the service, so helpers such as ``datautils`` import) and the Python
environment it needs. Two styles, as in v1 (aml-reference §9.1):

* ``environment=``: an :class:`~trainyard.core.environment.Environment`; then only ``entry_script``,
  ``source_directory`` and ``description`` may also be given, any other argument raises
  :class:`~trainyard.exceptions.WebserviceException`;
* the legacy style: ``runtime="python"`` plus ``conda_file`` (a conda YAML, relative to
  ``source_directory``). ``enable_gpu``, ``cuda_version``, ``base_image`` … are recorded (the package
  Dockerfile uses ``base_image``); they do not change a local process service.

Trainyard: with neither, the service runs on the current Python interpreter (user-managed), which is
what quick local tests want.

Example::

    from trainyard.core import Environment
    from trainyard.core.model import InferenceConfig
    env = Environment.from_conda_specification("myenv", "myenv.yml")
    cfg = InferenceConfig(entry_script="chainer_score.py", source_directory="./chainer-mnist",
                          environment=env)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard.exceptions import WebserviceException

if TYPE_CHECKING:
    from trainyard.core.environment import Environment

#: Runtimes v1 accepted; trainyard serves ``python`` only.
SUPPORTED_RUNTIMES = ("python",)
#: Arguments that describe an environment and so clash with ``environment=`` (v1's rule).
_ENVIRONMENT_LIKE = (
    "runtime",
    "conda_file",
    "extra_docker_file_steps",
    "enable_gpu",
    "base_image",
    "base_image_registry",
    "cuda_version",
)


class InferenceConfig:
    """The scoring script, its folder and its environment (see the module docstring).

    ``entry_script`` is relative to ``source_directory`` when one is given, else to the current
    folder. Both are checked at construction: a missing script or folder raises
    :class:`~trainyard.exceptions.WebserviceException`.

    Example::

        cfg = InferenceConfig(entry_script="score.py", source_directory="app", environment=env)
        cfg.entry_script_path   # absolute path of app/score.py
    """

    def __init__(
        self,
        entry_script: str | os.PathLike[str],
        runtime: str | None = None,
        conda_file: str | os.PathLike[str] | None = None,
        extra_docker_file_steps: str | os.PathLike[str] | None = None,
        source_directory: str | os.PathLike[str] | None = None,
        enable_gpu: bool | None = None,
        description: str | None = None,
        base_image: str | None = None,
        base_image_registry: Any = None,
        cuda_version: str | None = None,
        environment: Environment | None = None,
    ) -> None:
        if environment is not None:
            given = {
                "runtime": runtime,
                "conda_file": conda_file,
                "extra_docker_file_steps": extra_docker_file_steps,
                "enable_gpu": enable_gpu,
                "base_image": base_image,
                "base_image_registry": base_image_registry,
                "cuda_version": cuda_version,
            }
            clashing = [k for k in _ENVIRONMENT_LIKE if given[k] is not None]
            if clashing:
                raise WebserviceException(
                    f"InferenceConfig was given environment= together with {', '.join(clashing)}; "
                    "with an environment only entry_script, source_directory and description may be "
                    "given (put the packages in the Environment instead).",
                    arguments=clashing,
                )
            from trainyard.core.environment import Environment

            if not isinstance(environment, Environment):
                raise WebserviceException(
                    f"environment must be a trainyard Environment, not {type(environment).__name__}."
                )
        if runtime is not None and str(runtime).lower() not in SUPPORTED_RUNTIMES:
            raise WebserviceException(
                f"runtime {runtime!r} is not supported; trainyard serves Python scoring scripts "
                "(runtime='python').",
                runtime=str(runtime),
            )
        if entry_script is None or not str(entry_script).strip():
            raise WebserviceException("InferenceConfig needs an entry_script (the scoring script).")
        self.entry_script = os.fspath(entry_script)
        self.runtime = None if runtime is None else str(runtime).lower()
        self.conda_file = None if conda_file is None else os.fspath(conda_file)
        self.extra_docker_file_steps = (
            None if extra_docker_file_steps is None else os.fspath(extra_docker_file_steps)
        )
        self.source_directory = None if source_directory is None else os.fspath(source_directory)
        self.enable_gpu = enable_gpu
        self.description = description
        self.base_image = base_image
        self.base_image_registry = base_image_registry
        self.cuda_version = cuda_version
        self.environment = environment
        self.validate_configuration()

    # ------------------------------------------------------------------ paths
    @property
    def source_path(self) -> Path | None:
        """``source_directory`` as an absolute path (``None`` when not given)."""
        if self.source_directory is None:
            return None
        return Path(os.path.abspath(self.source_directory))

    @property
    def entry_script_path(self) -> Path:
        """Absolute path of the entry script (relative to ``source_directory`` when given)."""
        script = Path(self.entry_script)
        if script.is_absolute():
            return script
        base = self.source_path or Path.cwd()
        return Path(os.path.abspath(base / script))

    @property
    def conda_file_path(self) -> Path | None:
        """Absolute path of ``conda_file`` (relative to ``source_directory`` when given)."""
        if self.conda_file is None:
            return None
        path = Path(self.conda_file)
        if not path.is_absolute():
            path = (self.source_path or Path.cwd()) / path
        return Path(os.path.abspath(path))

    def validate_configuration(self) -> None:
        """Check the folder, the script and the conda file exist; raise ``WebserviceException``.

        Example::

            cfg.validate_configuration()
        """
        source = self.source_path
        if source is not None and not source.is_dir():
            raise WebserviceException(
                f"source_directory {self.source_directory!r} is not a folder.",
                source_directory=str(source),
            )
        script = self.entry_script_path
        if not script.is_file():
            where = f" in source_directory {str(source)!r}" if source is not None else ""
            raise WebserviceException(
                f"Cannot find the entry_script {self.entry_script!r}{where} (looked at {script}).",
                entry_script=self.entry_script,
            )
        if source is not None and not script.resolve().is_relative_to(source.resolve()):
            raise WebserviceException(
                f"entry_script {self.entry_script!r} is outside source_directory {str(source)!r}; "
                "the whole source directory is what the service gets.",
                entry_script=self.entry_script,
            )
        conda = self.conda_file_path
        if conda is not None and not conda.is_file():
            raise WebserviceException(
                f"Cannot find conda_file {self.conda_file!r} (looked at {conda}).",
                conda_file=self.conda_file,
            )

    # ------------------------------------------------------------------ environment
    def resolved_environment(self) -> Environment:
        """The environment the service runs in.

        ``environment`` when given; else one built from ``conda_file``; else the current interpreter
        (user-managed: nothing is installed).

        Example::

            env = cfg.resolved_environment()
        """
        from trainyard.core.environment import Environment

        if self.environment is not None:
            return self.environment
        conda = self.conda_file_path
        if conda is not None:
            return Environment.from_conda_specification("inference-environment", conda)
        env = Environment("inference-environment")
        env.python.user_managed_dependencies = True
        return env

    # ------------------------------------------------------------------ serialisation
    def serialize(self) -> dict[str, Any]:
        """JSON-able form (v1 keys, camelCase; the environment in its ``to_dict`` shape).

        Example::

            InferenceConfig.deserialize(cfg.serialize())
        """
        return {
            "entryScript": self.entry_script,
            "runtime": self.runtime,
            "condaFile": self.conda_file,
            "extraDockerfileSteps": self.extra_docker_file_steps,
            "sourceDirectory": None if self.source_path is None else str(self.source_path),
            "enableGpu": self.enable_gpu,
            "description": self.description,
            "baseImage": self.base_image,
            "cudaVersion": self.cuda_version,
            "environment": None if self.environment is None else self.environment.to_dict(),
        }

    @staticmethod
    def deserialize(data: dict[str, Any]) -> InferenceConfig:
        """Inverse of :meth:`serialize` (the files must still exist).

        Example::

            cfg2 = InferenceConfig.deserialize(cfg.serialize())
        """
        from trainyard.core.environment import Environment

        env = data.get("environment")
        return InferenceConfig(
            entry_script=data["entryScript"],
            runtime=data.get("runtime"),
            conda_file=data.get("condaFile"),
            extra_docker_file_steps=data.get("extraDockerfileSteps"),
            source_directory=data.get("sourceDirectory"),
            enable_gpu=data.get("enableGpu"),
            description=data.get("description"),
            base_image=data.get("baseImage"),
            cuda_version=data.get("cudaVersion"),
            environment=Environment.from_dict(env) if env else None,
        )

    def __repr__(self) -> str:
        env = self.environment.name if self.environment is not None else None
        return (
            f"InferenceConfig(entry_script={self.entry_script!r}, "
            f"source_directory={self.source_directory!r}, environment={env!r})"
        )


__all__ = ["InferenceConfig"]
