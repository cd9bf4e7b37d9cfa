from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from trainyard.core.conda_dependencies import CondaDependencies
from trainyard.core.environment import Environment
from trainyard.exceptions import (
    ConfigError,
    EnvironmentNotFound,
    InvalidNameError,
    UserErrorException,
    ValidationError,
)

CONDA_YML = """\
name: whatever
dependencies:
  - python=3.11
  - numpy=1.26.4
  - pip
  - pip:
    - chainer==7.8.1
    - azureml-defaults
channels: [conda-forge]
"""


def env_with(*pips: str, name: str = "demo") -> Environment:
    env = Environment(name)
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=list(pips))
    return env


def test_defaults() -> None:
    env = Environment("demo")
    assert env.version is None
    assert env.python.user_managed_dependencies is False
    assert env.python.interpreter_path is None
    assert isinstance(env.python.conda_dependencies, CondaDependencies)
    assert env.docker.enabled is False
    assert env.docker.base_image is None
    assert env.environment_variables == {}
    assert env.inferencing_stack_version is None


@pytest.mark.parametrize("bad", ["", "  ", None])
def test_empty_name_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidNameError):
        Environment(bad)


def test_conda_dependencies_setter_checks_type() -> None:
    with pytest.raises(ValidationError):
        Environment("x").python.conda_dependencies = ["six"]  # type: ignore[assignment]


def test_from_conda_specification_honours_pip_section(tmp_path: Path) -> None:
    path = tmp_path / "environment.yml"
    path.write_text(CONDA_YML)
    env = Environment.from_conda_specification("mnist", path)
    cd = env.python.conda_dependencies
    assert env.name == "mnist"
    assert cd.pip_packages == ["chainer==7.8.1", "azureml-defaults"]
    assert cd.conda_packages == ["numpy=1.26.4", "pip"]
    assert cd.python_version == "3.11"
    env.validate()


def test_from_conda_specification_refuses_conda_only_packages(tmp_path: Path) -> None:
    path = tmp_path / "environment.yml"
    path.write_text("dependencies:\n  - python=3.11\n  - mkl=2023.1\n  - pip:\n    - six\n")
    with pytest.raises(ValidationError) as info:
        Environment.from_conda_specification("mnist", path)
    assert "'mkl'" in str(info.value)
    assert "conda-only packages are not supported; list it under pip:" in str(info.value)


def test_from_pip_requirements(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.16.0  # pinned\n")
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# comment line\n"
        "-r base.txt\n"
        "--extra-index-url https://extra.invalid/simple\n"
        "numpy<2\n"
        "\n"
        "requests[socks] >= 2 ; python_version >= '3.8'\n"
    )
    env = Environment.from_pip_requirements("reqs", req, pip_version="24.0")
    cd = env.python.conda_dependencies
    assert cd.pip_packages == [
        "pip==24.0",
        "six==1.16.0",
        "numpy<2",
        "requests[socks] >= 2 ; python_version >= '3.8'",
    ]
    assert cd.pip_options == ["--extra-index-url https://extra.invalid/simple"]
    env.validate()


@pytest.mark.parametrize("line", ["-e ./mypkg", "-c constraints.txt", "--pre"])
def test_from_pip_requirements_refuses_unsupported_options(tmp_path: Path, line: str) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(f"six\n{line}\n")
    with pytest.raises(ValidationError, match=line.split()[0]):
        Environment.from_pip_requirements("reqs", req)


def test_from_pip_requirements_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Environment.from_pip_requirements("reqs", tmp_path / "nope.txt")


def test_from_existing_conda_environment_explains() -> None:
    with pytest.raises(ValidationError, match="from_conda_specification"):
        Environment.from_existing_conda_environment("x", "base")


def test_from_dockerfile_records_it(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM ubuntu:22.04\n")
    env = Environment.from_dockerfile("d", dockerfile)
    assert env.docker.base_dockerfile == "FROM ubuntu:22.04\n"
    assert (
        Environment.from_dockerfile("d", "FROM x\nRUN y").docker.base_dockerfile == "FROM x\nRUN y"
    )


def test_to_dict_from_dict_round_trip_is_json() -> None:
    env = env_with("six==1.16.0", name="rt")
    env.version = "3"
    env.environment_variables = {"A": "1"}
    env.docker.base_image = "img:1"
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = "/usr/bin/python3"
    data = json.loads(json.dumps(env.to_dict()))
    again = Environment.from_dict(data)
    assert again == env
    assert again.version == "3"
    assert again.python.conda_dependencies.pip_packages == ["six==1.16.0"]


def test_from_dict_rejects_garbage() -> None:
    with pytest.raises(ConfigError):
        Environment.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]


def test_save_and_load_directory(tmp_path: Path) -> None:
    env = env_with("six==1.16.0", name="saved")
    env.environment_variables["X"] = "y"
    env.save_to_directory(tmp_path / "def")
    assert {p.name for p in (tmp_path / "def").iterdir()} == {
        "azureml_environment.json",
        "conda_dependencies.yml",
    }
    loaded = Environment.load_from_directory(tmp_path / "def")
    assert loaded == env
    with pytest.raises(UserErrorException, match="overwrite=True"):
        env.save_to_directory(tmp_path / "def")
    env.environment_variables["X"] = "z"
    env.save_to_directory(tmp_path / "def", overwrite=True)
    assert Environment.load_from_directory(tmp_path / "def").environment_variables == {"X": "z"}


def test_load_directory_without_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("azureml_environment.json")):
        Environment.load_from_directory(tmp_path)


def test_spec_hash_ignores_name_and_version_but_not_definition() -> None:
    a, b = env_with("six", name="a"), env_with("six", name="b")
    b.version = "7"
    assert a.get_spec_hash() == b.get_spec_hash()
    b.environment_variables["K"] = "v"
    assert a.get_spec_hash() != b.get_spec_hash()
    c = env_with("six", name="c")
    c.docker.base_image = "other"
    assert a.get_spec_hash() != c.get_spec_hash()
    assert a.get_spec_hash() != env_with("six==1.16.0").get_spec_hash()


@pytest.mark.parametrize("bad", ["not a requirement!!", "numpy>>1", "six==1.0; bogus_marker"])
def test_validate_rejects_bad_requirements(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        env_with("six", bad).validate()
    assert bad in str(info.value)


def test_validate_rejects_non_string_environment_variables() -> None:
    env = env_with("six")
    env.environment_variables["N"] = 3  # type: ignore[assignment]
    with pytest.raises(ValidationError, match="str"):
        env.validate()


def test_clone_drops_version() -> None:
    env = env_with("six", name="orig")
    env.version = "2"
    copy = env.clone("copy")
    assert copy.name == "copy" and copy.version is None
    assert copy.python.conda_dependencies == env.python.conda_dependencies
    copy.python.conda_dependencies.add_pip_package("numpy")
    assert "numpy" not in env.python.conda_dependencies.pip_packages


# ---------------------------------------------------------------------- registry (real store)
def test_register_versions_only_on_change(workspace: Any) -> None:
    env = env_with("six==1.16.0", name="reg")
    assert env.register(workspace).version == "1"
    assert env_with("six==1.16.0", name="reg").register(workspace).version == "1"
    changed = env_with("six==1.17.0", name="reg")
    assert changed.register(workspace).version == "2"
    latest = Environment.get(workspace, "reg")
    assert latest.version == "2"
    assert latest.python.conda_dependencies.pip_packages == ["six==1.17.0"]
    first = Environment.get(workspace, "reg", version="1")
    assert first.python.conda_dependencies.pip_packages == ["six==1.16.0"]
    assert Environment.get(workspace, "reg", version=1) == first


def test_register_refuses_reserved_and_bad_names(workspace: Any) -> None:
    for name in ("AzureML-Mine", "azureml-lower", "Microsoft.Thing"):
        with pytest.raises(InvalidNameError, match="reserved"):
            env_with("six", name=name).register(workspace)
    with pytest.raises(InvalidNameError):
        env_with("six", name="has/slash").register(workspace)


def test_register_validates_first(workspace: Any) -> None:
    with pytest.raises(ValidationError):
        env_with("not valid!!", name="broken").register(workspace)
    with pytest.raises(EnvironmentNotFound):
        Environment.get(workspace, "broken")


def test_get_unknown_and_bad_version(workspace: Any) -> None:
    with pytest.raises(EnvironmentNotFound):
        Environment.get(workspace, "never-registered")
    env_with("six", name="one").register(workspace)
    with pytest.raises(EnvironmentNotFound):
        Environment.get(workspace, "one", version=5)
    with pytest.raises(ValidationError):
        Environment.get(workspace, "one", version="latest")


def test_get_curated_and_unknown_reserved(workspace: Any) -> None:
    env = Environment.get(workspace, "AzureML-Chainer-5.1.0-GPU")
    assert env.version == "1"
    assert "chainer==7.8.1" in env.python.conda_dependencies.pip_packages
    with pytest.raises(EnvironmentNotFound, match=re.escape("AzureML-Chainer-5.1.0-GPU")):
        Environment.get(workspace, "AzureML-Nope")


def test_list_has_curated_and_latest_registered(workspace: Any) -> None:
    env_with("six==1.16.0", name="listed").register(workspace)
    env_with("six==1.17.0", name="listed").register(workspace)
    found = Environment.list(workspace)
    assert found["listed"].version == "2"
    assert "AzureML-Chainer-5.1.0-CPU" in found
    assert all(isinstance(v, Environment) for v in found.values())


def test_curated_clone_can_be_registered(workspace: Any) -> None:
    mine = Environment.get(workspace, "AzureML-Chainer-5.1.0-CPU").clone("my-chainer")
    mine.python.conda_dependencies.add_pip_package("pytest")
    assert mine.register(workspace).version == "1"
