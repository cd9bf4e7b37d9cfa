"""The curated catalogue: names, their definitions, v1 names resolved to the nearest entry."""

from __future__ import annotations

import re

import pytest

from trainyard._execution.environments.curated import (
    curated_definition,
    curated_names,
    is_curated,
    resolve_curated,
)
from trainyard._execution.environments.spec import EnvSpec, current_python_version, spec_hash
from trainyard.core.environment import Environment, get_curated_environment, is_reserved_name
from trainyard.exceptions import EnvironmentNotFound


def spec_of(name: str, *, gpu: bool = False) -> EnvSpec:
    return EnvSpec.from_environment_dict(curated_definition(name), gpu=gpu)


def test_catalogue_names_are_reserved_and_build_valid_specs() -> None:
    names = curated_names()
    assert {"AzureML-Chainer-5.1.0-GPU", "AzureML-Chainer-5.1.0-CPU"} <= set(names)
    assert {"AzureML-PyTorch-2.14-CPU", "AzureML-PyTorch-2.14-GPU"} <= set(names)
    for name in names:
        assert is_reserved_name(name) and is_curated(name)
        env = get_curated_environment(name)
        assert env.name == name and env.version == "1"
        env.validate()
        # The lower layer's dict is exactly what the public object round-trips.
        assert Environment.from_dict(curated_definition(name)).to_dict() == env.to_dict()


def test_chainer_cpu_is_5_1_0_with_mpi4py_and_the_constraint_table() -> None:
    spec = spec_of("AzureML-Chainer-5.1.0-CPU")
    assert spec.requirements == (
        "chainer==5.1.0",
        "mpi4py",
        "numpy<1.24",
        "protobuf<4",
        "setuptools<74",
    )
    assert "setuptools<74" in spec.build_constraints
    assert spec.python_version == current_python_version()


def test_chainer_gpu_maps_to_7_8_1_and_drops_cupy_without_a_gpu() -> None:
    cpu_host = spec_of("AzureML-Chainer-5.1.0-GPU")
    assert "chainer==7.8.1" in cpu_host.requirements and "mpi4py" in cpu_host.requirements
    assert not any(r.startswith("cupy") for r in cpu_host.requirements)
    assert any("cupy-cuda12x" in n and "no GPU" in n for n in cpu_host.notices)
    assert "cupy-cuda12x" in spec_of("AzureML-Chainer-5.1.0-GPU", gpu=True).requirements
    assert spec_hash(cpu_host) != spec_hash(spec_of("AzureML-Chainer-5.1.0-CPU"))


def test_pytorch_includes_torchvision_pinned_to_the_pair_that_imports() -> None:
    for name in ("AzureML-PyTorch-2.14-CPU", "AzureML-PyTorch-2.14-GPU"):
        assert spec_of(name).requirements == ("torch==2.14.1", "torchvision==0.29.1")


@pytest.mark.parametrize(
    ("pasted", "resolved"),
    [
        ("AzureML-PyTorch-1.6-CPU", "AzureML-PyTorch-2.14-CPU"),
        ("AzureML-PyTorch-1.6-GPU", "AzureML-PyTorch-2.14-GPU"),
        ("AzureML-PyTorch-1.0-CPU", "AzureML-PyTorch-2.14-CPU"),
        ("AzureML-pytorch-1.7-ubuntu18.04-py37-cuda11-gpu", "AzureML-PyTorch-2.14-GPU"),
        ("AzureML-PyTorch-2.13-CPU", "AzureML-PyTorch-2.14-CPU"),
        ("azureml-chainer-5.1.0-gpu", "AzureML-Chainer-5.1.0-GPU"),
    ],
)
def test_v1_names_resolve_to_the_nearest_entry_with_a_message(pasted: str, resolved: str) -> None:
    entry, message = resolve_curated(pasted)
    assert entry.name == resolved
    assert pasted in message and resolved in message
    with pytest.warns(UserWarning, match=re.escape(resolved)):
        env = get_curated_environment(pasted)
    assert env.name == resolved


def test_exact_names_resolve_silently() -> None:
    entry, message = resolve_curated("AzureML-Chainer-5.1.0-CPU")
    assert entry.name == "AzureML-Chainer-5.1.0-CPU" and message == ""


@pytest.mark.parametrize(
    "name", ["AzureML-Unknown", "AzureML-TensorFlow-2.2-CPU", "AzureML-Chainer-9"]
)
def test_unknown_curated_name_lists_the_known_ones(name: str) -> None:
    with pytest.raises(EnvironmentNotFound) as info:
        resolve_curated(name)
    for known in curated_names():
        assert known in str(info.value)


def test_curated_objects_are_independent() -> None:
    a = get_curated_environment("AzureML-Chainer-5.1.0-CPU")
    a.python.conda_dependencies.add_pip_package("pytest")
    b = get_curated_environment("AzureML-Chainer-5.1.0-CPU")
    assert "pytest" not in b.python.conda_dependencies.pip_packages
