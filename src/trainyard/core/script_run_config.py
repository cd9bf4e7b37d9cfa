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

from trainyard.core.runconfig import DockerConfiguration, RunConfiguration

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
        self.source_directory = os.fspath(source_directory) if source_directory is not None else None
        self.run_config = run_config or RunConfiguration()
        self.script = script if script is not None else self.run_config.script
        self.arguments = list(arguments) if arguments is not None else list(self.run_config.arguments)
        self.command = command if command is not None else self.run_config.command
        self.compute_target = compute_target if compute_target is not None else self.run_config.target
        self.environment = environment if environment is not None else self.run_config.environment
        self.distributed_job_config = distributed_job_config
        self.resume_from = resume_from
        self.max_run_duration_seconds = max_run_duration_seconds
        self.docker_runtime_config = docker_runtime_config or self.run_config.docker
        self.environment_variables: dict[str, str] = dict(self.run_config.environment_variables)
        #: Set by estimators: framework name/version mapping recorded in the run definition.
        self._framework: Mapping[str, Any] | None = None
        #: Set by estimators: GPUs the job needs (checked against the target at submit).
        self._needs_gpu = False

    @property
    def target(self) -> Any:
        """v1 alias of ``compute_target``."""
        return self.compute_target

    def _submit_to_experiment(self, experiment: Experiment, tags: dict[str, str], **kwargs: Any) -> ScriptRun:
        from trainyard._execution.submit import submit_script_run

        return submit_script_run(experiment, self, tags, **kwargs)

    def __repr__(self) -> str:
        return (
            f"ScriptRunConfig(source_directory={self.source_directory!r}, script={self.script!r}, "
            f"arguments={self.arguments!r}, compute_target={self.compute_target!r})"
        )
