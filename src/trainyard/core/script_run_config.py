"""``ScriptRunConfig``: what to run, where and in which environment (v1 signature).

Example::

    src = ScriptRunConfig(source_directory="./train", script="train.py",
                          arguments=["--epochs", 10], compute_target="local", environment=env)
    run = Experiment(ws, "mnist").submit(src)
    run.wait_for_completion(show_output=True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trainyard.core.runconfig import DockerConfiguration, RunConfiguration, apply_distribution

if TYPE_CHECKING:
    from trainyard.core.experiment import Experiment
    from trainyard.core.script_run import ScriptRun

DEFAULT_MAX_RUN_DURATION_SECONDS = 2_592_000  # 30 days, as v1


class ScriptRunConfig:
    """A script (or command) in a source directory, with arguments, target and environment.

    ``arguments`` holds strings, numbers and booleans (numbers become strings in argv) and dataset
    placeholders (``dataset.as_mount()``) that resolve to local paths inside the run. ``command`` is
    an alternative to ``script`` + ``arguments``. Explicit keyword arguments win over ``run_config``.
    """

    def __init__(
        self,
        source_directory: str | os.PathLike[str],
        script: str | None = None,
        arguments: list[Any] | None = None,
        run_config: RunConfiguration | None = None,
        _telemetry_values: Any = None,
        compute_target: Any = None,
        environment: Any = None,
        distributed_job_config: Any = None,
        resume_from: Any = None,
        max_run_duration_seconds: int | None = DEFAULT_MAX_RUN_DURATION_SECONDS,
        command: str | list[str] | None = None,
        docker_runtime_config: DockerConfiguration | None = None,
    ) -> None:
        self.source_directory = (
            os.fspath(source_directory) if source_directory is not None else None
        )
        self.run_config = run_config or RunConfiguration()
        self.script = script if script is not None else self.run_config.script
        self.arguments = (
            list(arguments) if arguments is not None else list(self.run_config.arguments)
        )
        self.command = command if command is not None else self.run_config.command
        # As v1, target, environment, Docker settings and environment variables live in run_config
        # (explicit arguments are written into it), so v1's ``src.run_config.target = …`` after
        # construction is honoured rather than silently ignored.
        if compute_target is not None:
            self.run_config.target = compute_target
        if environment is not None:
            self.run_config.environment = environment
        if docker_runtime_config is not None:
            self.run_config.docker = docker_runtime_config
        #: ``MpiConfiguration`` / ``PyTorchConfiguration`` / ``TensorflowConfiguration`` or ``None``;
        #: written into ``run_config`` (``framework``, ``communicator``, ``mpi`` …) as v1 does. Without
        #: it, a ``run_config`` whose ``communicator`` is set describes the distribution.
        self.distributed_job_config = distributed_job_config
        if distributed_job_config is not None:
            apply_distribution(self.run_config, distributed_job_config)
        self.resume_from = resume_from
        self.max_run_duration_seconds = max_run_duration_seconds
        #: Set by estimators: the framework (name, requested and installed versions, packages),
        #: recorded in the run definition as ``frameworkInfo``.
        self.framework_info: Mapping[str, Any] | None = None
        #: Set by estimators (``use_gpu=True``): checked against the target's GPUs at submit.
        self.requires_gpu = False

    @property
    def compute_target(self) -> Any:
        """The target (a name or a ``ComputeTarget``); stored as ``run_config.target``."""
        return self.run_config.target

    @compute_target.setter
    def compute_target(self, value: Any) -> None:
        self.run_config.target = value

    @property
    def environment(self) -> Any:
        """The :class:`~trainyard.core.environment.Environment`; stored as ``run_config.environment``."""
        return self.run_config.environment

    @environment.setter
    def environment(self, value: Any) -> None:
        self.run_config.environment = value

    @property
    def docker_runtime_config(self) -> DockerConfiguration:
        """Docker settings; stored as ``run_config.docker``."""
        return self.run_config.docker

    @docker_runtime_config.setter
    def docker_runtime_config(self, value: DockerConfiguration) -> None:
        self.run_config.docker = value

    @property
    def environment_variables(self) -> dict[str, str]:
        """Variables set for the script; stored as ``run_config.environment_variables``."""
        return self.run_config.environment_variables

    @environment_variables.setter
    def environment_variables(self, value: Mapping[str, str]) -> None:
        self.run_config.environment_variables = dict(value)

    @property
    def target(self) -> Any:
        """v1 alias of ``compute_target``."""
        return self.compute_target

    def _submit_to_experiment(
        self, experiment: Experiment, tags: dict[str, str], **kwargs: Any
    ) -> ScriptRun:
        from trainyard.core._submit import submit_script_run

        return submit_script_run(experiment, self, tags, **kwargs)

    def __repr__(self) -> str:
        return (
            f"ScriptRunConfig(source_directory={self.source_directory!r}, script={self.script!r}, "
            f"arguments={self.arguments!r}, compute_target={self.compute_target!r})"
        )
