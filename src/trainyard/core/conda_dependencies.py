"""``CondaDependencies``: the conda/pip dependency list of an environment (Azure ML SDK v1 API).

The object mirrors a conda ``environment.yml``: ``name``, ``dependencies`` (conda specs plus one
``pip:`` list) and ``channels``. Trainyard builds environments with uv from PyPI, so the ``pip:``
list is what gets installed; ``python=X`` picks the interpreter and a small documented allow-list of
conda packages is mapped to pip (see :mod:`trainyard._execution.environments.spec`). Channels are
recorded and ignored.

Example::

    from trainyard.core.conda_dependencies import CondaDependencies
    cd = CondaDependencies.create(pip_packages=["chainer==7.8.1"], python_version="3.11")
    cd.add_pip_package("numpy==1.26.4")
    print(cd.serialize_to_string())
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainyard.exceptions import ConfigError, ValidationError

#: The Python version ``create()`` writes when none is given: the interpreter trainyard runs on.
PYTHON_DEFAULT_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
#: Channels written into a new specification (recorded only: nothing is installed from conda).
DEFAULT_CHANNELS: tuple[str, ...] = ("anaconda", "conda-forge")
#: File name used by ``save_to_file`` and ``Environment.save_to_directory``.
DEFAULT_CONDA_FILE = "conda_dependencies.yml"

_NAME_RE = re.compile(r"^\s*(?:[A-Za-z0-9_.-]+::)?([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def package_name(spec: str) -> str:
    """The canonical name at the start of a pip or conda spec (``"NumPy==1.2"`` → ``"numpy"``).

    Example::

        package_name("conda-forge::scikit_learn=1.3")  # "scikit-learn"
    """
    match = _NAME_RE.match(spec)
    return _canonical(match.group(1)) if match else spec.strip().lower()


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a core dependency
        from trainyard.exceptions import MissingExtraError

        raise MissingExtraError("Reading conda files needs PyYAML: pip install pyyaml") from None
    return yaml


class CondaDependencies:
    """A conda environment specification with a ``pip:`` section (v1 ``CondaDependencies``).

    ``CondaDependencies()`` is a default specification (Python :data:`PYTHON_DEFAULT_VERSION`, no
    packages); ``CondaDependencies(path)`` loads a conda YAML file and raises
    :class:`~trainyard.exceptions.ConfigError` naming the file when it is missing or malformed.

    Example::

        cd = CondaDependencies("environment.yml")
        print(cd.python_version, list(cd.pip_packages))
    """

    def __init__(
        self,
        conda_dependencies_file_path: str | Path | None = None,
        _underlying_structure: dict[str, Any] | None = None,
    ) -> None:
        self._path: Path | None = None
        if _underlying_structure is not None:
            self._data = self._checked(copy.deepcopy(_underlying_structure), "<dict>")
        elif conda_dependencies_file_path is not None:
            self._path = Path(conda_dependencies_file_path)
            self._data = self._checked(self._load(self._path), str(self._path))
        else:
            self._data = {
                "name": "project_environment",
                "dependencies": [f"python={PYTHON_DEFAULT_VERSION}"],
                "channels": list(DEFAULT_CHANNELS),
            }

    # ------------------------------------------------------------------ construction
    @staticmethod
    def create(
        pip_indexurl: str | None = None,
        pip_packages: Iterable[str] | None = None,
        conda_packages: Iterable[str] | None = None,
        python_version: str | None = PYTHON_DEFAULT_VERSION,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        """A new specification holding the given packages (v1 signature).

        ``pin_sdk_version`` is accepted for compatibility and has no effect: the trainyard runtime
        is always injected at the submitting side's exact version.

        Example::

            cd = CondaDependencies.create(pip_packages=["six==1.16.0"], python_version="3.11")
        """
        del pin_sdk_version
        cd = CondaDependencies()
        if python_version:
            cd.set_python_version(python_version)
        else:
            cd._remove_conda("python")
        if pip_indexurl:
            cd.set_pip_index_url(pip_indexurl)
        for pkg in pip_packages or ():
            cd.add_pip_package(pkg)
        for pkg in conda_packages or ():
            cd.add_conda_package(pkg)
        return cd

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CondaDependencies:
        """A specification from its dict form (:meth:`to_dict`, the parsed YAML); raises
        :class:`~trainyard.exceptions.ConfigError` when it is malformed.

        Example::

            CondaDependencies.from_dict({"dependencies": ["python=3.11", {"pip": ["six"]}]})
        """
        return cls(_underlying_structure=data)

    def to_dict(self) -> dict[str, Any]:
        """The specification as a dict (a deep copy of the YAML structure: ``name``,
        ``dependencies`` with its ``pip:`` list, ``channels``).

        Example::

            CondaDependencies.create(pip_packages=["six"]).to_dict()["dependencies"]
        """
        return copy.deepcopy(self._data)

    @staticmethod
    def _load(path: Path) -> Any:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"Conda file {str(path)!r} does not exist.", path=str(path)) from None
        except OSError as err:
            raise ConfigError(
                f"Conda file {str(path)!r} cannot be read: {err}", path=str(path)
            ) from None
        yaml = _yaml()
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(
                f"Conda file {str(path)!r} is not valid YAML: {err}", path=str(path)
            ) from None

    @staticmethod
    def _checked(data: Any, origin: str) -> dict[str, Any]:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"Conda file {origin!r} must hold a mapping with 'dependencies'.", path=origin
            )
        deps = data.get("dependencies") or []
        if not isinstance(deps, list):
            raise ConfigError(f"Conda file {origin!r}: 'dependencies' must be a list.", path=origin)
        clean: list[Any] = []
        for item in deps:
            if isinstance(item, dict):
                if set(item) != {"pip"} or not isinstance(item["pip"] or [], list):
                    raise ConfigError(
                        f"Conda file {origin!r}: only a 'pip:' list may nest under dependencies, got {item!r}.",
                        path=origin,
                    )
                pips = [str(p) for p in (item["pip"] or []) if p is not None]
                clean.append({"pip": pips})
            elif isinstance(item, str | int | float):
                clean.append(str(item))
            else:
                raise ConfigError(
                    f"Conda file {origin!r}: unexpected dependency {item!r}.", path=origin
                )
        data["dependencies"] = clean
        channels = data.get("channels") or []
        if not isinstance(channels, list):
            raise ConfigError(f"Conda file {origin!r}: 'channels' must be a list.", path=origin)
        data["channels"] = [str(c) for c in channels]
        data.setdefault("name", "project_environment")
        return data

    # ------------------------------------------------------------------ internals
    def _deps(self) -> list[Any]:
        deps: list[Any] = self._data.setdefault("dependencies", [])
        return deps

    def _pip_list(self) -> list[str] | None:
        for item in self._deps():
            if isinstance(item, dict):
                pips: list[str] = item.setdefault("pip", [])
                return pips
        return None

    def _ensure_pip_list(self) -> list[str]:
        pips = self._pip_list()
        if pips is None:
            pips = []
            self._deps().append({"pip": pips})
        return pips

    def _remove_conda(self, name: str) -> None:
        wanted = _canonical(name)
        self._data["dependencies"] = [
            d for d in self._deps() if isinstance(d, dict) or package_name(d) != wanted
        ]

    # ------------------------------------------------------------------ properties
    @property
    def conda_packages(self) -> list[str]:
        """Conda specs other than ``python`` (``python`` is :attr:`python_version`)."""
        return [d for d in self._deps() if isinstance(d, str) and package_name(d) != "python"]

    @property
    def pip_packages(self) -> list[str]:
        """Entries of the ``pip:`` list that are packages (options such as ``--index-url`` excluded)."""
        return [p for p in (self._pip_list() or []) if not p.lstrip().startswith("-")]

    @property
    def pip_options(self) -> list[str]:
        """Option lines of the ``pip:`` list, e.g. ``["--extra-index-url https://…"]``."""
        return [p for p in (self._pip_list() or []) if p.lstrip().startswith("-")]

    @property
    def pip_index_url(self) -> str | None:
        """The URL given by a ``--index-url`` option, or ``None``."""
        for opt in self.pip_options:
            parts = opt.split(None, 1)
            if parts[0] in {"--index-url", "-i"} and len(parts) == 2:
                return parts[1].strip()
            if parts[0].startswith("--index-url="):
                return parts[0].split("=", 1)[1]
        return None

    @property
    def channels(self) -> list[str]:
        """Conda channels (recorded only)."""
        return list(self._data.get("channels") or [])

    @property
    def python_version(self) -> str | None:
        """The version in the ``python=X`` conda spec (``"3.8.12"``), or ``None``."""
        for d in self._deps():
            if isinstance(d, str) and package_name(d) == "python":
                rest = d.strip()[len("python") :].strip()
                return rest.lstrip("=").strip() or None
        return None

    def get_python_version(self) -> str | None:
        """v1 method form of :attr:`python_version`."""
        return self.python_version

    @property
    def name(self) -> str:
        """The ``name:`` of the conda specification."""
        return str(self._data.get("name") or "project_environment")

    # ------------------------------------------------------------------ mutation
    def set_python_version(self, version: str) -> None:
        """Pin the interpreter (``"3.11"``); replaces any earlier ``python`` entry.

        Example::

            cd.set_python_version("3.11")
        """
        if not isinstance(version, str) or not re.fullmatch(r"\d+(\.\d+){0,2}", version.strip()):
            raise ValidationError(f"python_version must look like '3.11', got {version!r}.")
        entry = f"python={version.strip()}"
        deps = self._deps()
        for i, d in enumerate(deps):
            if isinstance(d, str) and package_name(d) == "python":
                deps[i] = entry
                return
        deps.insert(0, entry)

    def add_conda_package(self, conda_package: str) -> None:
        """Add a conda spec, replacing an existing entry for the same package.

        Example::

            cd.add_conda_package("numpy=1.26")
        """
        spec = self._text(conda_package, "conda_package")
        name = package_name(spec)
        deps = self._deps()
        for i, d in enumerate(deps):
            if isinstance(d, str) and package_name(d) == name:
                deps[i] = spec
                return
        pip_at = next((i for i, d in enumerate(deps) if isinstance(d, dict)), len(deps))
        deps.insert(pip_at, spec)

    def remove_conda_package(self, conda_package: str) -> None:
        """Remove the conda entry for that package name (no error when absent)."""
        self._remove_conda(package_name(self._text(conda_package, "conda_package")))

    def add_pip_package(self, pip_package: str) -> None:
        """Add a pip requirement, replacing an existing entry for the same package.

        A string starting with ``-`` is treated as an option (see :meth:`set_pip_option`).

        Example::

            cd.add_pip_package("chainer==7.8.1")
        """
        spec = self._text(pip_package, "pip_package")
        if spec.startswith("-"):
            self.set_pip_option(spec)
            return
        pips = self._ensure_pip_list()
        name = package_name(spec)
        for i, p in enumerate(pips):
            if not p.lstrip().startswith("-") and package_name(p) == name:
                pips[i] = spec
                return
        pips.append(spec)

    def remove_pip_package(self, pip_package: str) -> None:
        """Remove the pip entry for that package name (no error when absent).

        Example::

            cd.remove_pip_package("azureml-defaults")
        """
        name = package_name(self._text(pip_package, "pip_package"))
        pips = self._pip_list()
        if pips is not None:
            pips[:] = [p for p in pips if p.lstrip().startswith("-") or package_name(p) != name]

    def set_pip_option(self, pip_option: str) -> None:
        """Add a pip option line (``--extra-index-url URL``); an option of the same name that
        takes a single value (``--index-url``) is replaced.
        """
        opt = self._text(pip_option, "pip_option")
        pips = self._ensure_pip_list()
        flag = opt.split(None, 1)[0].split("=", 1)[0]
        if flag in {"--index-url", "-i"}:
            pips[:] = [
                p for p in pips if p.split(None, 1)[0].split("=", 1)[0] not in {"--index-url", "-i"}
            ]
        if opt not in pips:
            pips.insert(0, opt)

    def set_pip_index_url(self, index_url: str) -> None:
        """Set the pip index: ``"--index-url URL"`` (v1 form) or just ``"URL"``."""
        text = self._text(index_url, "index_url")
        self.set_pip_option(text if text.startswith("-") else f"--index-url {text}")

    def add_channel(self, channel: str) -> None:
        """Add a conda channel (recorded only)."""
        name = self._text(channel, "channel")
        channels = self._data.setdefault("channels", [])
        if name not in channels:
            channels.append(name)

    @staticmethod
    def _text(value: Any, what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"{what} must be a non-empty string, got {value!r}.")
        return value.strip()

    # ------------------------------------------------------------------ output
    def serialize_to_string(self) -> str:
        """The specification as conda YAML text (keys ``name``, ``dependencies``, ``channels``)."""
        ordered: dict[str, Any] = {
            "name": self.name,
            "dependencies": self.to_dict()["dependencies"],
            "channels": self.channels,
        }
        for key, value in self._data.items():
            ordered.setdefault(key, copy.deepcopy(value))
        text: str = _yaml().safe_dump(ordered, sort_keys=False, default_flow_style=False)
        return text

    def save(self, path: str | Path | None = None) -> str:
        """Write the YAML to ``path`` (default: the file it was loaded from) and return the path.

        Example::

            cd.save("environment.yml")
        """
        target = Path(path) if path is not None else self._path
        if target is None:
            raise ValidationError(
                "save() needs a path: this specification was not loaded from a file."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.serialize_to_string(), encoding="utf-8")
        self._path = target
        return str(target)

    def save_to_file(self, base_directory: str | Path, conda_file_path: str | None = None) -> str:
        """Deprecated v1 form of :meth:`save`: write ``base_directory/conda_file_path``."""
        return self.save(Path(base_directory) / (conda_file_path or DEFAULT_CONDA_FILE))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CondaDependencies) and self._data == other._data

    def __hash__(self) -> int:  # mutable object: identity hash, like v1
        return id(self)

    def __repr__(self) -> str:
        return f"CondaDependencies(python={self.python_version!r}, pip={self.pip_packages!r})"
