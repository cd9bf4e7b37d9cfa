"""``Estimator``: v1's estimator API, a shim that builds a ``ScriptRunConfig`` (aml-reference §6).

``script_params`` flattens in insertion order to ``[k1, str(v1), k2, str(v2), …]``; a flag whose value
is ``""`` stays a bare flag. ``pip_packages``/``conda_packages`` are merged into the framework's
default environment (the user's packages win conflicts); ``environment_definition`` overrides all of
that. Estimators are first-class here: no deprecation warning.

Example::

    est = Estimator(source_directory="./src", entry_script="train.py",
                    script_params={"--epochs": 10, "--verbose": ""}, compute_target="local",
                    pip_packages=["scikit-learn"])
    run = Experiment(ws, "exp").submit(est)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from trainyard.exceptions import ComputeTargetException, UserErrorException, ValidationError

if TYPE_CHECKING:
    from trainyard.core.environment import Environment
    from trainyard.core.experiment import Experiment
    from trainyard.core.script_run import ScriptRun
    from trainyard.core.script_run_config import ScriptRunConfig


def flatten_script_params(script_params: Mapping[str, Any] | None) -> list[Any]:
    """v1's flattening: ``{'--epochs': 10, '--flag': ''}`` → ``['--epochs', '10', '--flag']``.

    Dataset placeholders stay objects (they resolve to paths inside the run)."""
    out: list[Any] = []
    for key, value in (script_params or {}).items():
        out.append(str(key))
        if isinstance(value, str) and value == "":
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            out.append(str(value))
        elif callable(getattr(value, "_to_run_argument", None)):
            out.append(value)
        else:
            raise ValidationError(
                f"script_params[{key!r}] is a {type(value).__name__}; values must be strings, numbers, "
                "booleans or dataset placeholders.",
                key=str(key),
            )
    return out


def _package_name(spec: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(spec).name.lower().replace("_", "-")
    except InvalidRequirement:
        return spec.strip().lower()


def merge_packages(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """Framework packages plus the user's; a user's package replaces the framework's of that name."""
    user = {_package_name(p): p for p in extra}
    merged = [p for p in base if _package_name(p) not in user]
    return merged + list(extra)


class Estimator:
    """A generic estimator: a script plus its dependencies, submitted like a ``ScriptRunConfig``."""

    #: Framework name recorded in run details and model metadata (subclasses set it).
    _framework_name: ClassVar[str] = "Python"
    #: Installable framework releases (newest last) and v1 version strings mapped onto them.
    _supported: ClassVar[tuple[str, ...]] = ()
    _aliases: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        source_directory: str | os.PathLike[str],
        *,
        compute_target: Any = None,
        vm_size: str | None = None,
        vm_priority: str | None = None,
        entry_script: str | None = None,
        script_params: Mapping[str, Any] | None = None,
        node_count: int = 1,
        process_count_per_node: int = 1,
        distributed_backend: str | None = None,
        distributed_training: Any = None,
        use_gpu: bool = False,
        use_docker: bool = True,
        custom_docker_base_image: str | None = None,
        custom_docker_image: str | None = None,
        image_registry_details: Any = None,
        user_managed: bool = False,
        conda_packages: Sequence[str] | None = None,
        pip_packages: Sequence[str] | None = None,
        conda_dependencies_file_path: str | None = None,
        pip_requirements_file_path: str | None = None,
        conda_dependencies_file: str | None = None,
        pip_requirements_file: str | None = None,
        environment_variables: Mapping[str, str] | None = None,
        environment_definition: Environment | None = None,
        inputs: Sequence[Any] | None = None,
        source_directory_data_store: Any = None,
        shm_size: str | None = None,
        resume_from: Any = None,
        max_run_duration_seconds: int | None = None,
        framework_version: str | None = None,
        **kwargs: Any,
    ) -> None:
        if entry_script is None:
            raise UserErrorException("An estimator needs entry_script (the script to run).")
        self.source_directory = os.fspath(source_directory)
        self.compute_target = compute_target
        self.entry_script = entry_script
        self._script_params: dict[str, Any] = dict(script_params or {})
        flatten_script_params(self._script_params)  # validate now, not at submit
        self.node_count = node_count
        self.process_count_per_node = process_count_per_node
        self.distributed_training = distributed_training
        self.distributed_backend = distributed_backend
        self.use_gpu = bool(use_gpu)
        self.use_docker = use_docker
        self.user_managed = user_managed
        self.conda_packages = list(conda_packages or [])
        self.pip_packages = list(pip_packages or [])
        self.conda_dependencies_file = conda_dependencies_file or conda_dependencies_file_path
        self.pip_requirements_file = pip_requirements_file or pip_requirements_file_path
        self.environment_variables = dict(environment_variables or {})
        self.environment_definition = environment_definition
        self.inputs = list(inputs or [])
        self.resume_from = resume_from
        self.max_run_duration_seconds = max_run_duration_seconds
        self.requested_framework_version = framework_version
        self.framework_version = self._resolve_version(framework_version)

    # -- framework versions -------------------------------------------------------------------
    @classmethod
    def get_supported_versions(cls) -> list[str]:
        """The framework versions that install and run here (v1 version strings are also accepted
        and mapped onto these)."""
        return list(cls._supported)

    @classmethod
    def _resolve_version(cls, requested: str | None) -> str | None:
        if not cls._supported:
            return requested
        if requested is None:
            return cls._supported[-1]
        version = str(requested)
        if version in cls._supported:
            return version
        if version in cls._aliases:
            return cls._aliases[version]
        raise UserErrorException(
            f"{cls.__name__} framework_version {version!r} is not supported. Supported: "
            f"{', '.join(cls._supported)} (v1 versions {', '.join(cls._aliases) or 'none'} map onto them).",
            framework_version=version,
        )

    def _framework_packages(self) -> list[str]:
        """Packages the framework's default environment installs (subclasses override)."""
        return []

    # -- script_params ------------------------------------------------------------------------
    @property
    def script_params(self) -> dict[str, Any]:
        return dict(self._script_params)

    def _drop_params(self, keys: Sequence[str]) -> list[str]:
        """Remove ``script_params`` whose key matches one of ``keys`` after ``lstrip('-')`` (used by
        HyperDrive); returns the removed keys."""
        wanted = {k.lstrip("-") for k in keys}
        removed = [k for k in self._script_params if k.lstrip("-") in wanted]
        for k in removed:
            del self._script_params[k]
        return removed

    # -- conversion ---------------------------------------------------------------------------
    def _environment(self) -> Environment | None:
        from trainyard.core.conda_dependencies import CondaDependencies
        from trainyard.core.environment import Environment

        if self.environment_definition is not None:
            return self.environment_definition
        if self.user_managed:
            env = Environment(f"{self._framework_name.lower()}-user-managed")
            env.python.user_managed_dependencies = True
            env.environment_variables = dict(self.environment_variables)
            return env
        pip = list(self._framework_packages())
        if self.pip_requirements_file:
            extra = Environment.from_pip_requirements("tmp", self.pip_requirements_file)
            pip = merge_packages(pip, extra.python.conda_dependencies.pip_packages)
        if self.conda_dependencies_file:
            extra = Environment.from_conda_specification("tmp", self.conda_dependencies_file)
            pip = merge_packages(pip, extra.python.conda_dependencies.pip_packages)
        pip = merge_packages(pip, self.pip_packages)
        cd = CondaDependencies.create(pip_packages=pip, conda_packages=self.conda_packages or None)
        if not pip and not self.conda_packages:
            env = Environment(f"{self._framework_name.lower()}-default")
            env.python.user_managed_dependencies = True
        else:
            env = Environment(f"{self._framework_name.lower()}-{self.framework_version or 'env'}")
            env.python.conda_dependencies = cd
        env.environment_variables = dict(self.environment_variables)
        return env

    def _distribution(self) -> Any:
        from trainyard.core.runconfig import MpiConfiguration

        dist = self.distributed_training
        if dist is not None:
            ppn = getattr(dist, "process_count_per_node", self.process_count_per_node)
            return MpiConfiguration(process_count_per_node=ppn, node_count=self.node_count)
        if self.node_count > 1 or self.process_count_per_node > 1 or self.distributed_backend:
            return MpiConfiguration(process_count_per_node=self.process_count_per_node, node_count=self.node_count)
        return None

    def _check_counts(self) -> None:
        for name, value in (("node_count", self.node_count), ("process_count_per_node", self.process_count_per_node)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be a positive integer, not {value!r}.")
        ranks = self.node_count * self.process_count_per_node
        if ranks > 1:
            raise ComputeTargetException(
                f"node_count={self.node_count} × process_count_per_node={self.process_count_per_node} needs a "
                "cluster compute target for distributed training, and none exists yet (local compute runs "
                "one process per job). Use node_count=1 and process_count_per_node=1.",
                node_count=self.node_count,
                process_count_per_node=self.process_count_per_node,
            )

    def _to_script_run_config(self) -> ScriptRunConfig:
        """The equivalent ``ScriptRunConfig`` (aml-reference §6.6)."""
        from trainyard.core.runconfig import DockerConfiguration
        from trainyard.core.script_run_config import ScriptRunConfig

        self._check_counts()
        config = ScriptRunConfig(
            source_directory=self.source_directory,
            script=self.entry_script,
            arguments=flatten_script_params(self._script_params),
            compute_target=self.compute_target,
            environment=self._environment(),
            distributed_job_config=self._distribution(),
            resume_from=self.resume_from,
            max_run_duration_seconds=self.max_run_duration_seconds,
            docker_runtime_config=DockerConfiguration(use_docker=False),
        )
        config.environment_variables = dict(self.environment_variables)
        config.requires_gpu = self.use_gpu
        config.framework_info = {
            "name": self._framework_name,
            "version": self.framework_version,
            "requested_version": self.requested_framework_version,
            "use_gpu": self.use_gpu,
            "packages": self._framework_packages(),
        }
        return config

    def _submit_to_experiment(self, experiment: Experiment, tags: dict[str, str], **kwargs: Any) -> ScriptRun:
        return self._to_script_run_config()._submit_to_experiment(experiment, tags, **kwargs)

    @property
    def run_config(self) -> ScriptRunConfig:
        """The ``ScriptRunConfig`` this estimator submits."""
        return self._to_script_run_config()
