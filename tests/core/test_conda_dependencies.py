from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trainyard.core.conda_dependencies import (
    DEFAULT_CHANNELS,
    PYTHON_DEFAULT_VERSION,
    CondaDependencies,
    package_name,
)
from trainyard.exceptions import ConfigError, ValidationError

GEN_B_YAML = """\
name: chainer-env
channels:
  - conda-forge
dependencies:
  - python=3.8.12
  - pip=20.2.4
  - numpy=1.26
  - pip:
    - --extra-index-url https://example.invalid/simple
    - azureml-defaults
    - chainer==7.8.1
    - cupy-cuda111
"""


def write(tmp_path: Path, text: str, name: str = "env.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_specification() -> None:
    cd = CondaDependencies()
    assert cd.python_version == PYTHON_DEFAULT_VERSION
    assert cd.pip_packages == []
    assert cd.conda_packages == []
    assert cd.channels == list(DEFAULT_CHANNELS)
    assert cd.name == "project_environment"


def test_load_yaml_reads_every_section(tmp_path: Path) -> None:
    cd = CondaDependencies(write(tmp_path, GEN_B_YAML))
    assert cd.name == "chainer-env"
    assert cd.python_version == "3.8.12"
    assert cd.conda_packages == ["pip=20.2.4", "numpy=1.26"]
    assert cd.pip_packages == ["azureml-defaults", "chainer==7.8.1", "cupy-cuda111"]
    assert cd.pip_options == ["--extra-index-url https://example.invalid/simple"]
    assert cd.pip_index_url is None
    assert cd.channels == ["conda-forge"]


def test_create_with_everything() -> None:
    cd = CondaDependencies.create(
        pip_indexurl="https://idx.invalid/simple",
        pip_packages=["six==1.16.0", "numpy<2"],
        conda_packages=["scipy"],
        python_version="3.11",
    )
    assert cd.python_version == "3.11"
    assert cd.pip_packages == ["six==1.16.0", "numpy<2"]
    assert cd.conda_packages == ["scipy"]
    assert cd.pip_index_url == "https://idx.invalid/simple"


def test_create_without_python_leaves_it_unset() -> None:
    assert CondaDependencies.create(python_version=None).python_version is None


def test_add_pip_package_replaces_same_name_in_place() -> None:
    cd = CondaDependencies.create(pip_packages=["numpy", "six"])
    cd.add_pip_package("NumPy==1.26.4")
    assert cd.pip_packages == ["NumPy==1.26.4", "six"]
    cd.remove_pip_package("numpy")
    assert cd.pip_packages == ["six"]
    cd.remove_pip_package("not-there")
    assert cd.pip_packages == ["six"]


def test_add_conda_package_goes_before_pip_list_and_replaces() -> None:
    cd = CondaDependencies.create(pip_packages=["six"], python_version="3.11")
    cd.add_conda_package("numpy=1.25")
    cd.add_conda_package("numpy=1.26")
    deps = cd.to_dict()["dependencies"]
    assert deps == ["python=3.11", "numpy=1.26", {"pip": ["six"]}]
    cd.remove_conda_package("numpy")
    assert cd.conda_packages == []


def test_channels_are_deduplicated() -> None:
    cd = CondaDependencies()
    cd.add_channel("pytorch")
    cd.add_channel("pytorch")
    assert cd.channels == [*DEFAULT_CHANNELS, "pytorch"]


def test_set_python_version_replaces_and_validates() -> None:
    cd = CondaDependencies()
    cd.set_python_version("3.12")
    cd.set_python_version("3.11")
    assert cd.python_version == "3.11"
    assert sum(1 for d in cd.to_dict()["dependencies"] if str(d).startswith("python")) == 1
    with pytest.raises(ValidationError):
        cd.set_python_version("three")


def test_index_url_option_is_replaced_not_duplicated() -> None:
    cd = CondaDependencies()
    cd.set_pip_index_url("--index-url https://a.invalid/simple")
    cd.set_pip_index_url("https://b.invalid/simple")
    assert cd.pip_options == ["--index-url https://b.invalid/simple"]
    assert cd.pip_index_url == "https://b.invalid/simple"


def test_add_pip_package_with_dash_is_an_option() -> None:
    cd = CondaDependencies()
    cd.add_pip_package("--extra-index-url https://x.invalid/simple")
    assert cd.pip_packages == []
    assert cd.pip_options == ["--extra-index-url https://x.invalid/simple"]


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_add_pip_package_rejects_non_strings(bad: object) -> None:
    with pytest.raises(ValidationError):
        CondaDependencies().add_pip_package(bad)  # type: ignore[arg-type]


def test_serialize_round_trips_through_yaml(tmp_path: Path) -> None:
    cd = CondaDependencies(write(tmp_path, GEN_B_YAML))
    text = cd.serialize_to_string()
    data = yaml.safe_load(text)
    assert list(data)[:3] == ["name", "dependencies", "channels"]
    again = CondaDependencies(write(tmp_path, text, "again.yml"))
    assert again == cd


def test_save_and_save_to_file(tmp_path: Path) -> None:
    cd = CondaDependencies.create(pip_packages=["six"])
    saved = cd.save(tmp_path / "sub" / "x.yml")
    assert CondaDependencies(saved) == cd
    legacy = cd.save_to_file(tmp_path, "legacy.yml")
    assert Path(legacy) == tmp_path / "legacy.yml"
    assert CondaDependencies(legacy).pip_packages == ["six"]
    assert Path(cd.save_to_file(tmp_path / "d")).name == "conda_dependencies.yml"


def test_save_without_path_writes_back_to_source(tmp_path: Path) -> None:
    path = write(tmp_path, GEN_B_YAML)
    cd = CondaDependencies(path)
    cd.add_pip_package("six")
    cd.save()
    assert "six" in CondaDependencies(path).pip_packages
    with pytest.raises(ValidationError):
        CondaDependencies().save()


@pytest.mark.parametrize(
    "text",
    [
        "dependencies: [",  # not YAML
        "- just\n- a list\n",
        "dependencies: numpy\n",
        "dependencies:\n  - {conda: [x]}\n",
        "dependencies: []\nchannels: conda-forge\n",
    ],
)
def test_malformed_files_raise_config_error_naming_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        CondaDependencies(path)
    assert str(path) in str(info.value)


def test_missing_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        CondaDependencies(tmp_path / "nope.yml")


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("NumPy==1.2", "numpy"),
        ("conda-forge::scikit_learn=1.3", "scikit-learn"),
        ("typing.extensions>=4", "typing-extensions"),
        ("python=3.8.12", "python"),
    ],
)
def test_package_name(spec: str, name: str) -> None:
    assert package_name(spec) == name
