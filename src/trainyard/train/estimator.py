"""``Estimator``: v1's estimator API, a shim that builds a ``ScriptRunConfig`` (aml-reference §6).

``script_params`` flattens in insertion order to ``[k1, str(v1), k2, str(v2), …]``; a flag whose value
is ``""`` stays a bare flag. ``pip_packages``/``conda_packages`` (and the ``*_file`` forms) are merged
into the framework's default environment with the one merge function of
:mod:`trainyard._execution.environments.pins`: the stricter pin wins, a contradiction is a
:class:`~trainyard.exceptions.ValidationError` naming both. ``environment_definition`` overrides all
of that. Estimators are first-class here: no deprecation warning.

Example::

    est = Estimator(source_directory="./src", entry_script="train.py",
                    script_params={"--epochs": 10, "--verbose": ""}, compute_target="local",
                    pip_packages=["scikit-learn"])
    run = Experiment(ws, "exp").submit(est)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from trainyard.exceptions import UserErrorException, ValidationError

if TYPE_CHECKING:
    from trainyard._execution.environments.frameworks import Framework, ResolvedFramework
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


def merge_packages(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """Framework packages plus the user's, merged by name: specifiers are intersected, the
    stricter pin is kept as written, and a conflict raises
    :class:`~trainyard.exceptions.ValidationError` naming both.

    Example::

        merge_packages(["chainer==7.8.1"], ["Chainer", "pytest"])   # ["chainer==7.8.1", "pytest"]
    """
    from trainyard._execution.environments.pins import merge_requirement_texts

    return merge_requirement_texts((base, "the framework"), (extra, "the user's packages"))


class Estimator:
    """A generic estimator: a script plus its dependencies, submitted like a ``ScriptRunConfig``.

    Framework subclasses install the release :data:`~trainyard._execution.environments.frameworks.FRAMEWORKS`
    resolves for ``framework_version``: a requested version is honoured when it installs on this
    Python and mapped to the nearest one that does, with a :class:`UserWarning`, only when it
    cannot. The framework constraint table (NumPy, setuptools … bounds) applies to the merged
    environment, so ``pip_packages=['numpy']`` keeps Chainer's NumPy bound.
    """

    #: Framework name recorded in run details and model metadata (subclasses set it).
    _framework_name: ClassVar[str] = "Python"

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
        self._resolved = self._resolve_framework(framework_version)
        self.framework_version = (
            self._resolved.version if self._resolved is not None else framework_version
        )

    # -- framework versions -------------------------------------------------------------------
    @classmethod
    def _framework(cls) -> Framework | None:
        from trainyard._execution.environments.frameworks import FRAMEWORKS

        return FRAMEWORKS.get(cls._framework_name)

    @classmethod
    def get_supported_versions(cls) -> list[str]:
        """The framework versions that install and run here, oldest first (v1 version strings
        that cannot install are also accepted and mapped onto these, with a warning)."""
        framework = cls._framework()
        return [r.version for r in framework.releases] if framework is not None else []

    def _resolve_framework(self, requested: str | None) -> ResolvedFramework | None:
        from trainyard._execution.environments.frameworks import resolve_framework

        framework = self._framework()
        if framework is None:
            return None
        resolved = resolve_framework(framework, requested, use_gpu=self.use_gpu)
        if resolved.mapped:
            # v1 code asks for versions that cannot install on current Python: say what runs.
            warnings.warn(
                f"{type(self).__name__} framework_version={requested!r}: {resolved.mapped}",
                UserWarning,
                stacklevel=3,
            )
        return resolved

    def _wants_mpi(self) -> bool:
        """Whether the job runs as MPI ranks (its environment then gets mpi4py)."""
        from trainyard.core.runconfig import MpiConfiguration

        return isinstance(self._distribution(), MpiConfiguration)

    def _framework_packages(self) -> list[str]:
        """Packages the framework's default environment installs (its release's pins; subclasses
        add what their framework needs beside it)."""
        if self._resolved is None:
            return []
        return self._resolved.packages(self.use_gpu)

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
    def _framework_origin(self) -> str:
        if self._resolved is None:
            return "the estimator"
        return f"{self._framework_name} {self._resolved.version}"

    def _environment(self) -> Environment | None:
        from trainyard._execution.environments.pins import merge_requirement_texts
        from trainyard.core.conda_dependencies import CondaDependencies
        from trainyard.core.environment import Environment

        if self.environment_definition is not None:
            return self.environment_definition
        if self.user_managed:
            env = Environment(f"{self._framework_name.lower()}-user-managed")
            env.python.user_managed_dependencies = True
            env.environment_variables = dict(self.environment_variables)
            return env
        groups: list[tuple[Sequence[str], str]] = [
            (self._framework_packages(), self._framework_origin())
        ]
        options: list[str] = []
        conda = list(self.conda_packages)
        if self.pip_requirements_file:
            extra = Environment.from_pip_requirements("tmp", self.pip_requirements_file)
            extra_cd = extra.python.conda_dependencies
            groups.append(
                (extra_cd.pip_packages, f"pip_requirements_file {self.pip_requirements_file}")
            )
            options += extra_cd.pip_options
        if self.conda_dependencies_file:
            extra = Environment.from_conda_specification("tmp", self.conda_dependencies_file)
            extra_cd = extra.python.conda_dependencies
            groups.append(
                (extra_cd.pip_packages, f"conda_dependencies_file {self.conda_dependencies_file}")
            )
            options += extra_cd.pip_options
            conda += [c for c in extra_cd.conda_packages if c not in conda]
        groups.append((self.pip_packages, "pip_packages"))
        # One merge for all sources: a user's 'numpy' narrows, never replaces, a framework bound,
        # and a user pin that contradicts the framework's is an error naming both.
        pip = merge_requirement_texts(*groups)
        if not pip and not conda:
            env = Environment(f"{self._framework_name.lower()}-default")
            env.python.user_managed_dependencies = True
        else:
            env = Environment(f"{self._framework_name.lower()}-{self.framework_version or 'env'}")
            env.python.conda_dependencies = CondaDependencies.create(
                pip_packages=[*options, *pip], conda_packages=conda or None
            )
        env.environment_variables = dict(self.environment_variables)
        return env

    def framework_info(self, environment: Environment | None = None) -> dict[str, Any]:
        """What the run definition records as ``frameworkInfo``: the framework ``name``, the
        ``version`` installed (pinned exactly, so the build resolves it or fails; ``None`` when an
        ``environment_definition`` does not pin the framework), the ``requested_version``, why it
        was ``mapped`` (``""`` when honoured), ``use_gpu``, and the environment's normalised
        ``packages`` (framework constraints included).

        Example::

            Chainer("src", entry_script="train.py", framework_version="5.1.0").framework_info()
            # {"name": "Chainer", "version": "5.1.0", "requested_version": "5.1.0", "mapped": "", …}
        """
        from trainyard._execution.environments.frameworks import exact_version
        from trainyard._execution.environments.spec import EnvSpec

        env = self._environment() if environment is None else environment
        packages: list[str] = []
        if env is not None:
            spec = EnvSpec.from_environment_dict(env.to_dict(), gpu=self.use_gpu)
            packages = list(spec.requirements)
        version = self.framework_version
        resolved = self._resolved
        if resolved is not None and self.environment_definition is not None:
            name = resolved.release.packages[0].split("=")[0]
            version = exact_version(packages, name)
        return {
            "name": self._framework_name,
            "version": version,
            "requested_version": self.requested_framework_version,
            "mapped": resolved.mapped if resolved is not None else "",
            "use_gpu": self.use_gpu,
            "packages": packages,
        }

    def _distribution(self) -> Any:
        """The ``distributed_job_config`` (v1 §6.5): ``distributed_training=Mpi()`` /
        ``MpiConfiguration`` runs ``node_count × process_count_per_node`` MPI ranks;
        ``Gloo()`` / ``Nccl()`` / ``PyTorchConfiguration`` that many torch.distributed ranks
        (its own ``process_count`` wins); the deprecated ``distributed_backend='mpi'|'gloo'|'nccl'``
        the same; counts above 1 without either, MPI (v1's default)."""
        from trainyard.core.runconfig import (
            PYTORCH_BACKENDS,
            MpiConfiguration,
            PyTorchConfiguration,
        )

        dist = self.distributed_training
        backend = str(self.distributed_backend or "").lower()
        if dist is None and backend in PYTORCH_BACKENDS:
            dist = PyTorchConfiguration(communication_backend=PYTORCH_BACKENDS[backend])
        elif dist is None and backend not in ("", "mpi"):
            raise ValidationError(
                f"distributed_backend={self.distributed_backend!r}: use 'mpi', 'gloo' or 'nccl' "
                "(or distributed_training=MpiConfiguration(...) / PyTorchConfiguration(...)).",
                distributed_backend=self.distributed_backend,
            )
        if isinstance(dist, PyTorchConfiguration):
            nodes = max(dist.node_count, self.node_count)
            total = dist.process_count or nodes * self.process_count_per_node
            return PyTorchConfiguration(dist.communication_backend, total, nodes)
        if isinstance(dist, MpiConfiguration):
            ppn = dist.process_count_per_node
            if ppn == 1:
                ppn = self.process_count_per_node
            return MpiConfiguration(
                process_count_per_node=ppn, node_count=max(dist.node_count, self.node_count)
            )
        if dist is not None:
            return dist
        if self.node_count > 1 or self.process_count_per_node > 1 or backend == "mpi":
            return MpiConfiguration(
                process_count_per_node=self.process_count_per_node, node_count=self.node_count
            )
        return None

    def _check_counts(self) -> None:
        for name, value in (
            ("node_count", self.node_count),
            ("process_count_per_node", self.process_count_per_node),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be a positive integer, not {value!r}.")

    def _to_script_run_config(self) -> ScriptRunConfig:
        """The equivalent ``ScriptRunConfig`` (aml-reference §6.6)."""
        from trainyard.core.runconfig import DockerConfiguration
        from trainyard.core.script_run_config import ScriptRunConfig

        self._check_counts()
        environment = self._environment()
        config = ScriptRunConfig(
            source_directory=self.source_directory,
            script=self.entry_script,
            arguments=flatten_script_params(self._script_params),
            compute_target=self.compute_target,
            environment=environment,
            distributed_job_config=self._distribution(),
            resume_from=self.resume_from,
            max_run_duration_seconds=self.max_run_duration_seconds,
            docker_runtime_config=DockerConfiguration(use_docker=False),
        )
        config.environment_variables = dict(self.environment_variables)
        if self.distributed_training is not None and config.run_config.communicator == "IntelMpi":
            config.run_config.communicator = (
                "Mpi"  # v1: Mpi() → "Mpi"; distributed_backend → "IntelMpi"
            )
        config.requires_gpu = self.use_gpu
        config.framework_info = self.framework_info(environment)
        return config

    def _submit_to_experiment(
        self, experiment: Experiment, tags: dict[str, str], **kwargs: Any
    ) -> ScriptRun:
        from trainyard.core._submit import submit_script_run

        return submit_script_run(experiment, self._to_script_run_config(), tags, **kwargs)

    @property
    def run_config(self) -> ScriptRunConfig:
        """The ``ScriptRunConfig`` this estimator submits."""
        return self._to_script_run_config()
