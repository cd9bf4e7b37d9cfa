"""``InferenceConfig`` (aml-reference §9.1): v1's argument rule and path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainyard.core.environment import Environment
from trainyard.core.inference_config import InferenceConfig as Direct
from trainyard.core.model import InferenceConfig
from trainyard.core.webservice import InferenceConfig as FromPackage
from trainyard.exceptions import WebserviceException


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    (tmp_path / "app" / "env.yml").write_text(
        "name: e\ndependencies:\n  - python=3.11\n  - pip:\n    - six==1.16.0\nchannels: [conda-forge]\n"
    )
    return tmp_path / "app"


def test_importable_from_v1_paths() -> None:
    assert InferenceConfig is Direct is FromPackage


def test_entry_script_is_relative_to_source_directory(app: Path) -> None:
    cfg = InferenceConfig(entry_script="score.py", source_directory=str(app))
    assert cfg.entry_script_path == app / "score.py"
    assert cfg.source_path == app


def test_entry_script_without_source_directory_is_relative_to_cwd(
    app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(app)
    assert InferenceConfig(entry_script="score.py").entry_script_path == app / "score.py"


@pytest.mark.parametrize(
    "extra",
    [
        {"runtime": "python"},
        {"conda_file": "env.yml"},
        {"enable_gpu": True},
        {"base_image": "python:3.11"},
        {"cuda_version": "11.1"},
        {"extra_docker_file_steps": "steps.txt"},
        {"base_image_registry": object()},
    ],
)
def test_environment_excludes_other_environment_arguments(app: Path, extra: dict) -> None:
    with pytest.raises(WebserviceException, match="only entry_script, source_directory"):
        InferenceConfig(
            entry_script="score.py",
            source_directory=str(app),
            environment=Environment("e"),
            **extra,
        )


def test_environment_with_description_is_fine(app: Path) -> None:
    env = Environment("e")
    cfg = InferenceConfig(
        entry_script="score.py", source_directory=str(app), description="d", environment=env
    )
    assert cfg.resolved_environment() is env
    assert cfg.description == "d"


def test_missing_script_or_folder_raises(app: Path) -> None:
    with pytest.raises(WebserviceException, match=r"Cannot find the entry_script 'nope\.py'"):
        InferenceConfig(entry_script="nope.py", source_directory=str(app))
    with pytest.raises(WebserviceException, match="is not a folder"):
        InferenceConfig(entry_script="score.py", source_directory=str(app / "missing"))
    with pytest.raises(WebserviceException, match="needs an entry_script"):
        InferenceConfig(entry_script="")


def test_script_outside_source_directory_raises(app: Path, tmp_path: Path) -> None:
    (tmp_path / "other.py").write_text("")
    with pytest.raises(WebserviceException, match="outside source_directory"):
        InferenceConfig(entry_script="../other.py", source_directory=str(app))


def test_legacy_conda_file_builds_an_environment(app: Path) -> None:
    cfg = InferenceConfig(
        entry_script="score.py", source_directory=str(app), runtime="python", conda_file="env.yml"
    )
    env = cfg.resolved_environment()
    assert env.python.conda_dependencies.pip_packages == ["six==1.16.0"]
    assert not env.python.user_managed_dependencies


def test_unsupported_runtime_and_missing_conda_file(app: Path) -> None:
    with pytest.raises(WebserviceException, match="spark-py"):
        InferenceConfig(entry_script="score.py", source_directory=str(app), runtime="spark-py")
    with pytest.raises(WebserviceException, match="conda_file"):
        InferenceConfig(entry_script="score.py", source_directory=str(app), conda_file="no.yml")


def test_default_environment_is_the_current_interpreter(app: Path) -> None:
    env = InferenceConfig(entry_script="score.py", source_directory=str(app)).resolved_environment()
    assert env.python.user_managed_dependencies


def test_serialize_round_trip(app: Path) -> None:
    env = Environment("e")
    env.environment_variables["A"] = "1"
    cfg = InferenceConfig(entry_script="score.py", source_directory=str(app), environment=env)
    back = InferenceConfig.deserialize(cfg.serialize())
    assert back.serialize() == cfg.serialize()
    assert back.environment is not None and back.environment.environment_variables == {"A": "1"}
