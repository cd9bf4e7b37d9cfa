"""``Environment``: what a run's Python environment contains (Azure ML SDK v1 API).

An environment has a ``python`` section (``user_managed_dependencies``, ``interpreter_path``,
``conda_dependencies``), a ``docker`` section (recorded only: trainyard builds uv virtual
environments and needs no Docker engine), ``environment_variables`` set inside the run, and the
registry fields ``version`` and ``inferencing_stack_version``.

Two hashes exist, on purpose:

* :meth:`Environment.get_spec_hash` covers the whole definition except name and version (Docker
  fields and environment variables included); the registry makes a new version when it changes.
* the build cache key (:func:`trainyard._execution.environments.spec.spec_hash`) covers only what
  changes the installed files, so renamed copies and copies with other variables share one build.

Example::

    from trainyard.core import Environment
    from trainyard.core.conda_dependencies import CondaDependencies
    env = Environment("chainer-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["chainer==7.8.1"])
    env.environment_variables["OMP_NUM_THREADS"] = "1"
    env.validate()
    env.register(ws)
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard.core.conda_dependencies import DEFAULT_CONDA_FILE, CondaDependencies
from trainyard.exceptions import (
    ConfigError,
    EnvironmentNotFound,
    InvalidNameError,
    UserErrorException,
    ValidationError,
)

if TYPE_CHECKING:
    from trainyard._execution.environments.builder import BuiltEnvironment, LogSink

#: File names written by :meth:`Environment.save_to_directory` (v1 names).
ENVIRONMENT_JSON = "azureml_environment.json"
CONDA_YML = DEFAULT_CONDA_FILE
#: Name prefixes reserved for curated environments.
RESERVED_PREFIXES: tuple[str, ...] = ("Microsoft", "AzureML")

_log = logging.getLogger(__name__)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def is_reserved_name(name: str) -> bool:
    """Whether ``name`` starts with a reserved prefix (case-insensitive)."""
    return name.lower().startswith(tuple(p.lower() for p in RESERVED_PREFIXES))


class PythonSection:
    """The ``python`` section: who manages the packages and which ones.

    Example::

        env.python.user_managed_dependencies = True
        env.python.interpreter_path = "/opt/conda/bin/python"
    """

    def __init__(
        self,
        user_managed_dependencies: bool = False,
        interpreter_path: str | None = None,
        conda_dependencies: CondaDependencies | None = None,
        base_conda_environment: str | None = None,
    ) -> None:
        self.user_managed_dependencies = user_managed_dependencies
        self.interpreter_path = interpreter_path
        self.base_conda_environment = base_conda_environment
        self.conda_dependencies_file: str | None = None
        self._conda = conda_dependencies if conda_dependencies is not None else CondaDependencies()

    @property
    def conda_dependencies(self) -> CondaDependencies:
        """The :class:`~trainyard.core.conda_dependencies.CondaDependencies` to install."""
        return self._conda

    @conda_dependencies.setter
    def conda_dependencies(self, value: CondaDependencies) -> None:
        if not isinstance(value, CondaDependencies):
            raise ValidationError(
                f"conda_dependencies must be a CondaDependencies, got {type(value).__name__}."
            )
        self._conda = value


class DockerSection:
    """The ``docker`` section, recorded as given (no Docker engine is used to build or run).

    Example::

        env.docker.base_image = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
    """

    def __init__(
        self,
        enabled: bool = False,
        base_image: str | None = None,
        base_dockerfile: str | None = None,
        shm_size: str | None = None,
        arguments: list[str] | None = None,
    ) -> None:
        self.enabled = enabled
        self.base_image = base_image
        self.base_dockerfile = base_dockerfile
        self.shm_size = shm_size
        self.arguments: list[str] = list(arguments or [])


class Environment:
    """A named, versioned description of a run's Python environment (v1 ``Environment``).

    Example::

        env = Environment.from_conda_specification("mnist", "conda_dependencies.yml")
        env.register(ws)
        same = Environment.get(ws, "mnist")     # latest version
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise InvalidNameError(f"Environment name must be a non-empty string, got {name!r}.")
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {}
        self.inferencing_stack_version: str | None = None

    # ------------------------------------------------------------------ constructors
    @staticmethod
    def from_conda_specification(name: str, file_path: str | Path) -> Environment:
        """An environment from a conda YAML file.

        The ``pip:`` list is installed; ``python=X`` picks the interpreter; conda packages are
        mapped to pip only for the documented allow-list
        (:data:`trainyard._execution.environments.spec.CONDA_TO_PIP`). Any other conda package
        raises :class:`~trainyard.exceptions.ValidationError` naming it.

        Example::

            env = Environment.from_conda_specification("mnist", "environment.yml")
        """
        from trainyard._execution.environments.spec import conda_to_pip

        env = Environment(name)
        cd = CondaDependencies(file_path)
        for conda in cd.conda_packages:
            mapped = conda_to_pip(conda)
            _log.info(
                "Environment %r: conda package %r %s.",
                name,
                conda,
                f"is installed from PyPI as {mapped!r}"
                if mapped
                else "(a CUDA runtime) is skipped",
            )
        env.python.conda_dependencies = cd
        env.python.conda_dependencies_file = None
        return env

    @staticmethod
    def from_pip_requirements(
        name: str, file_path: str | Path, pip_version: str | None = None
    ) -> Environment:
        """An environment from a ``requirements.txt`` file.

        Supported lines: requirements, comments, ``-r other.txt`` (relative to the file), and the
        options ``--index-url``/``-i``, ``--extra-index-url``, ``--find-links``/``-f``. Other options
        (``-e``, ``-c`` …) raise :class:`~trainyard.exceptions.ValidationError` naming the line.

        Example::

            env = Environment.from_pip_requirements("mnist", "requirements.txt")
        """
        env = Environment(name)
        cd = CondaDependencies.create()
        if pip_version:
            cd.add_pip_package(f"pip=={pip_version}")
        for line in _read_requirements(Path(file_path), set()):
            if line.startswith("-"):
                cd.set_pip_option(line)
            else:
                cd.add_pip_package(line)
        env.python.conda_dependencies = cd
        return env

    @staticmethod
    def from_existing_conda_environment(name: str, conda_environment_name: str) -> Environment:
        """Not available: trainyard builds uv environments, not conda ones; always raises.

        Export the conda environment instead and use :meth:`from_conda_specification` or
        :meth:`from_pip_requirements`.
        """
        raise ValidationError(
            f"Environment.from_existing_conda_environment({name!r}, {conda_environment_name!r}): "
            "conda environments are not supported (trainyard builds uv virtual environments from pip "
            "requirements). Export it with `conda env export --from-history > environment.yml` and use "
            "Environment.from_conda_specification, or `pip freeze > requirements.txt` and "
            "Environment.from_pip_requirements.",
            conda_environment_name=conda_environment_name,
        )

    @staticmethod
    def from_dockerfile(
        name: str,
        dockerfile: str | Path,
        conda_specification: str | Path | None = None,
        pip_requirements: str | Path | None = None,
    ) -> Environment:
        """An environment recording a Dockerfile (not built: no Docker engine), with packages from
        an optional conda or pip file.
        """
        if conda_specification is not None:
            env = Environment.from_conda_specification(name, conda_specification)
        elif pip_requirements is not None:
            env = Environment.from_pip_requirements(name, pip_requirements)
        else:
            env = Environment(name)
        text = str(dockerfile)
        path = Path(text)
        if "\n" not in text and path.is_file():
            text = path.read_text(encoding="utf-8")
        env.docker.base_dockerfile = text
        env.docker.base_image = None
        return env

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able form in v1's ``azureml_environment.json`` shape (camelCase keys).

        Example::

            Environment.from_dict(env.to_dict()) == env   # True
        """
        return {
            "name": self.name,
            "version": self.version,
            "environmentVariables": dict(self.environment_variables),
            "python": {
                "userManagedDependencies": bool(self.python.user_managed_dependencies),
                "interpreterPath": self.python.interpreter_path,
                "condaDependenciesFile": self.python.conda_dependencies_file,
                "baseCondaEnvironment": self.python.base_conda_environment,
                "condaDependencies": self.python.conda_dependencies.to_dict(),
            },
            "docker": {
                "enabled": bool(self.docker.enabled),
                "baseImage": self.docker.base_image,
                "baseDockerfile": self.docker.base_dockerfile,
                "shmSize": self.docker.shm_size,
                "arguments": list(self.docker.arguments),
            },
            "inferencingStackVersion": self.inferencing_stack_version,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Environment:
        """Inverse of :meth:`to_dict`; also reads v1 ``azureml_environment.json`` content.

        Raises :class:`~trainyard.exceptions.ConfigError` for a malformed document.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"an environment definition must be a JSON object, got {type(data).__name__}."
            )
        try:
            env = Environment(str(data.get("name") or ""))
            version = data.get("version")
            env.version = None if version in (None, "") else str(version)
            env.environment_variables = {
                str(k): str(v) for k, v in dict(data.get("environmentVariables") or {}).items()
            }
            py = dict(data.get("python") or {})
            conda = py.get("condaDependencies")
            env.python = PythonSection(
                user_managed_dependencies=bool(py.get("userManagedDependencies", False)),
                interpreter_path=py.get("interpreterPath"),
                conda_dependencies=CondaDependencies.from_dict(conda) if conda else None,
                base_conda_environment=py.get("baseCondaEnvironment"),
            )
            env.python.conda_dependencies_file = py.get("condaDependenciesFile")
            docker = dict(data.get("docker") or {})
            env.docker = DockerSection(
                enabled=bool(docker.get("enabled", False)),
                base_image=docker.get("baseImage"),
                base_dockerfile=docker.get("baseDockerfile"),
                shm_size=docker.get("shmSize"),
                arguments=list(docker.get("arguments") or []),
            )
            env.inferencing_stack_version = data.get("inferencingStackVersion")
        except (TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"malformed environment definition: {err}") from None
        return env

    def save_to_directory(self, path: str | Path, overwrite: bool = False) -> None:
        """Write ``azureml_environment.json`` and ``conda_dependencies.yml`` into ``path``.

        Raises :class:`~trainyard.exceptions.UserErrorException` when the files exist and
        ``overwrite`` is false.

        Example::

            env.save_to_directory("env-def", overwrite=True)
        """
        folder = Path(path)
        targets = [folder / ENVIRONMENT_JSON, folder / CONDA_YML]
        if not overwrite and any(t.exists() for t in targets):
            raise UserErrorException(
                f"{folder} already holds an environment definition; pass overwrite=True to replace it."
            )
        folder.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        data["python"]["condaDependencies"] = None
        data["python"]["condaDependenciesFile"] = None
        targets[0].write_text(json.dumps(data, indent=4), encoding="utf-8")
        self.python.conda_dependencies.save(targets[1])

    @staticmethod
    def load_from_directory(path: str | Path) -> Environment:
        """Read an environment written by :meth:`save_to_directory` (or by v1).

        Raises :class:`~trainyard.exceptions.ConfigError` naming the missing or broken file.
        """
        folder = Path(path)
        json_path = folder / ENVIRONMENT_JSON
        try:
            data = json.loads(json_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{json_path} does not exist.", path=str(json_path)) from None
        except (OSError, ValueError) as err:
            raise ConfigError(f"{json_path} cannot be read: {err}", path=str(json_path)) from None
        env = Environment.from_dict(data)
        yml = folder / CONDA_YML
        if yml.exists():
            env.python.conda_dependencies = CondaDependencies(yml)
        return env

    def get_spec_hash(self) -> str:
        """sha256 of the definition without name and version (the registry's change detector).

        Example::

            a, b = Environment("a"), Environment("b")
            a.get_spec_hash() == b.get_spec_hash()   # True
        """
        data = self.to_dict()
        data.pop("name", None)
        data.pop("version", None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def clone(self, new_name: str) -> Environment:
        """A deep copy under another name, without a version (how a curated one is customised)."""
        env = Environment.from_dict(copy.deepcopy(self.to_dict()))
        env.name = Environment(new_name).name
        env.version = None
        return env

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check that this environment can be built; raise a typed error otherwise.

        Parses every pip requirement (:mod:`packaging`), the pip options, the conda list and the
        Python version, checks the environment variables are strings, and merges the known
        framework constraints (a pin that conflicts with one, such as ``numpy>=2`` beside
        ``chainer``, raises :class:`~trainyard.exceptions.ValidationError` naming both).

        Example::

            Environment.from_pip_requirements("x", "requirements.txt").validate()
        """
        from trainyard._execution.environments.spec import EnvSpec

        for key, value in self.environment_variables.items():
            if not isinstance(key, str) or not key or "=" in key or "\0" in key:
                raise ValidationError(
                    f"environment variable name {key!r} is not valid.", variable=str(key)
                )
            if not isinstance(value, str):
                raise ValidationError(
                    f"environment variable {key!r} must be a string, got {type(value).__name__}; use str(value).",
                    variable=key,
                )
        if self.python.interpreter_path is not None and not isinstance(
            self.python.interpreter_path, str
        ):
            raise ValidationError("python.interpreter_path must be a string path.")
        # gpu=True: GPU-only wheels are checked too, whatever this host has.
        EnvSpec.from_environment_dict(self.to_dict(), gpu=True)

    # ------------------------------------------------------------------ registry
    def register(self, workspace: Any) -> Environment:
        """Register this definition in ``workspace``; a new version only when it changed.

        Names starting with ``Microsoft`` or ``AzureML`` are reserved for curated environments
        (:class:`~trainyard.exceptions.InvalidNameError`). Sets and returns ``self.version``'s owner.

        Example::

            env.register(ws).version   # "1"
        """
        if not _NAME_RE.match(self.name):
            raise InvalidNameError(
                f"Environment name {self.name!r} is not valid: use 1-255 letters, digits, '.', '_' or "
                "'-', starting with a letter or digit.",
                name=self.name,
            )
        if is_reserved_name(self.name):
            raise InvalidNameError(
                f"Environment name {self.name!r} starts with a reserved prefix "
                f"({' or '.join(RESERVED_PREFIXES)}, kept for curated environments); "
                "use env.clone('my-name') and register that.",
                name=self.name,
            )
        self.validate()
        spec = self.to_dict()
        spec["version"] = None
        record = workspace.context.store.register_environment(
            workspace.context.workspace_id, self.name, spec, self.get_spec_hash()
        )
        self.version = str(record.version)
        return self

    @staticmethod
    def get(workspace: Any, name: str, version: str | int | None = None) -> Environment:
        """The registered (or curated) environment ``name``; the latest version by default.

        A reserved name (``AzureML-…``) is looked up in the curated catalogue: see
        :func:`get_curated_environment` for v1 names that map to the nearest one. Raises
        :class:`~trainyard.exceptions.EnvironmentNotFound`.

        Example::

            env = Environment.get(ws, "AzureML-Chainer-5.1.0-GPU")
        """
        if is_reserved_name(name):
            env = get_curated_environment(name)
            if version is not None and str(version) != env.version:
                raise EnvironmentNotFound(
                    f"curated environment {env.name!r} has only version {env.version}.", name=name
                )
            return env
        number = _version_number(version)
        record = workspace.context.store.get_environment(
            workspace.context.workspace_id, name, number
        )
        env = Environment.from_dict(record.spec)
        env.name = name
        env.version = str(record.version)
        return env

    @staticmethod
    def list(workspace: Any) -> dict[str, Environment]:
        """Name → latest version of every registered environment, plus the curated ones."""
        from trainyard._execution.environments.curated import curated_names

        out: dict[str, Environment] = {n: get_curated_environment(n) for n in curated_names()}
        for record in workspace.context.store.list_environments(workspace.context.workspace_id):
            env = Environment.from_dict(record.spec)
            env.name = record.name
            env.version = str(record.version)
            out[record.name] = env
        return out

    # ------------------------------------------------------------------ local build
    def build_local(
        self, workspace: Any = None, useDocker: bool = False, log: LogSink | None = None
    ) -> BuiltEnvironment:
        """Build (or reuse) this environment in the local cache and return it.

        ``useDocker=True`` is refused (no Docker engine). The cache is ``TRAINYARD_ENV_CACHE``
        (default ``~/.trainyard/envs``); packages come from the host's pip configuration.

        Example::

            built = env.build_local(ws, log=print)
            print(built.python, built.resolved)
        """
        del workspace
        if useDocker:
            raise ValidationError(
                "build_local(useDocker=True) is not supported: trainyard builds uv environments."
            )
        from trainyard._execution.environments.builder import default_builder
        from trainyard._execution.environments.spec import EnvSpec

        self.validate()
        return default_builder().build(EnvSpec.from_environment_dict(self.to_dict()), log=log)

    def build(self, workspace: Any = None) -> BuiltEnvironment:
        """v1's cloud build; here the same as :meth:`build_local`."""
        return self.build_local(workspace)

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Environment) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Environment(name={self.name!r}, version={self.version!r})"


def get_curated_environment(name: str) -> Environment:
    """A fresh :class:`Environment` for a curated name (``AzureML-…``).

    v1 names that do not install here (``AzureML-PyTorch-1.6-CPU``) resolve to the nearest curated
    environment with a :class:`UserWarning` saying which and why; unknown names raise
    :class:`~trainyard.exceptions.EnvironmentNotFound` listing the known ones. The object may be
    modified; registering it needs a new name (``env.clone("mine")``).

    Example::

        env = get_curated_environment("AzureML-Chainer-5.1.0-CPU")
        env.python.conda_dependencies.pip_packages   # ["chainer==5.1.0", "mpi4py"]
    """
    from trainyard._execution.environments.curated import resolve_curated

    entry, message = resolve_curated(name)
    if message:
        warnings.warn(message, UserWarning, stacklevel=2)
        _log.warning("%s", message)
    return Environment.from_dict(entry.to_environment_dict())


def _version_number(version: str | int | None) -> int | None:
    if version is None:
        return None
    try:
        number = int(str(version).strip())
    except ValueError:
        raise ValidationError(
            f"environment version must be a whole number, got {version!r}."
        ) from None
    if number < 1:
        raise ValidationError(f"environment version must be >= 1, got {version!r}.")
    return number


def _strip_comment(line: str) -> str:
    if line.lstrip().startswith("#"):
        return ""
    return re.split(r"\s+#", line, maxsplit=1)[0].strip()


def _read_requirements(path: Path, seen: set[Path]) -> list[str]:
    resolved = path.resolve()
    if resolved in seen:
        raise ConfigError(f"requirements file {path} includes itself.", path=str(path))
    seen.add(resolved)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"requirements file {str(path)!r} does not exist.", path=str(path)
        ) from None
    except OSError as err:
        raise ConfigError(
            f"requirements file {str(path)!r} cannot be read: {err}", path=str(path)
        ) from None
    out: list[str] = []
    for line in raw.replace("\\\n", "").splitlines():
        text = _strip_comment(line)
        if not text:
            continue
        flag = text.split(None, 1)[0].split("=", 1)[0]
        if flag in {"-r", "--requirement"}:
            target = text.split(None, 1)[1].strip() if " " in text else text.split("=", 1)[-1]
            out.extend(_read_requirements(path.parent / target, seen))
        elif flag in {"-i", "--index-url", "--extra-index-url", "-f", "--find-links"}:
            out.append(text)
        elif text.startswith("-"):
            raise ValidationError(
                f"{path}: line {text!r} is not supported; requirements files may hold requirements, "
                "-r, --index-url, --extra-index-url and --find-links.",
                path=str(path),
                line=text,
            )
        else:
            out.append(text)
    return out
