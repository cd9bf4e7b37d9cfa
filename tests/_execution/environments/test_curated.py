from __future__ import annotations

import re

import pytest

from trainyard._execution.environments.curated import (
    CHAINER_PINS,
    curated_names,
    get_curated_environment,
    is_curated,
)
from trainyard._execution.environments.spec import EnvSpec, current_python_version, spec_hash
from trainyard.core.environment import is_reserved_name
from trainyard.exceptions import EnvironmentNotFound


def test_catalogue_names_are_reserved_and_build_valid_specs() -> None:
    names = curated_names()
    assert "AzureML-Chainer-5.1.0-GPU" in names and "AzureML-Chainer-5.1.0-CPU" in names
    for name in names:
        assert is_reserved_name(name) and is_curated(name)
        env = get_curated_environment(name)
        assert env.name == name and env.version == "1"
        env.validate()


def test_chainer_gpu_drops_cupy_on_cpu_hosts_and_matches_cpu_variant() -> None:
    gpu = EnvSpec.from_environment(get_curated_environment("AzureML-Chainer-5.1.0-GPU"), gpu=False)
    cpu = EnvSpec.from_environment(get_curated_environment("AzureML-Chainer-5.1.0-CPU"), gpu=False)
    assert gpu == cpu
    assert spec_hash(gpu) == spec_hash(cpu)
    assert any("cupy-cuda12x" in n and "no GPU" in n for n in gpu.notices)
    on_gpu = EnvSpec.from_environment(
        get_curated_environment("AzureML-Chainer-5.1.0-GPU"), gpu=True
    )
    assert "cupy-cuda12x" in on_gpu.requirements


def test_chainer_pins_constrain_the_build() -> None:
    spec = EnvSpec.from_environment(get_curated_environment("AzureML-Chainer-5.1.0-CPU"), gpu=False)
    assert "setuptools==65.5.0" in spec.build_constraints
    assert "numpy==1.26.4" in spec.requirements
    assert spec.python_version == current_python_version()
    assert len(spec.requirements) == len(CHAINER_PINS)


def test_pytorch_is_pinned() -> None:
    spec = EnvSpec.from_environment(get_curated_environment("AzureML-PyTorch-2.13-CPU"), gpu=False)
    assert "torch==2.13.0" in spec.requirements


def test_unknown_curated_name() -> None:
    with pytest.raises(EnvironmentNotFound, match=re.escape("AzureML-Chainer-5.1.0-GPU")):
        get_curated_environment("AzureML-Unknown")


def test_curated_objects_are_independent() -> None:
    a = get_curated_environment("AzureML-Chainer-5.1.0-CPU")
    a.python.conda_dependencies.add_pip_package("pytest")
    b = get_curated_environment("AzureML-Chainer-5.1.0-CPU")
    assert "pytest" not in b.python.conda_dependencies.pip_packages
