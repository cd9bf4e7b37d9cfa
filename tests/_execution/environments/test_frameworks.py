"""The framework constraint table and the one merge function, on every path an environment takes.

Each class of problem from the field has a test here that fails on the code before the table:
a user environment listing ``chainer`` got no setuptools/NumPy bounds, an estimator's
``pip_packages=['numpy']`` replaced its NumPy pin, a conda YAML and a service's inference
environment went unchecked, and a contradiction surfaced only as a resolver error at build time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

from trainyard._execution.environments.frameworks import (
    FRAMEWORKS,
    apply_framework_constraints,
    exact_version,
    resolve_framework,
)
from trainyard._execution.environments.pins import (
    combine,
    merge_requirement_texts,
    parse_requirement,
    specifiers_conflict,
)
from trainyard._execution.environments.spec import EnvSpec
from trainyard._execution.environments.uv import build_hints
from trainyard.core.conda_dependencies import CondaDependencies
from trainyard.core.environment import Environment
from trainyard.core.webservice._environment import inference_spec
from trainyard.exceptions import UserErrorException, ValidationError
from trainyard.train.dnn import Chainer

CHAINER_BOUNDS = ("numpy<1.24", "protobuf<4", "setuptools<74")


def reqs(*texts: str) -> list[Requirement]:
    return [parse_requirement(t) for t in texts]


def applied(*texts: str, machine: str = "x86_64") -> tuple[str, ...]:
    out, _build, _notices = apply_framework_constraints(reqs(*texts), machine=machine)
    return tuple(str(r) for r in out)


# ---------------------------------------------------------------------- the merge function
@pytest.mark.parametrize(
    ("a", "b", "merged"),
    [
        ("numpy", "numpy<2", "numpy<2"),  # an unpinned user package takes the bound
        ("numpy==1.26.4", "numpy<2", "numpy==1.26.4"),  # the stricter pin is kept as written
        ("numpy<1.20", "numpy<2", "numpy<1.20"),
        ("numpy>=1.20", "numpy<2", "numpy<2,>=1.20"),
        ("numpy<2,>=1.20", "numpy<1.24", "numpy<1.24,>=1.20"),  # redundant bounds dropped
        ("numpy==1.26.*", "numpy<2", "numpy==1.26.*"),
        ("requests[socks]", "requests[security]>=2", "requests[security,socks]>=2"),
    ],
)
def test_combine_keeps_the_stricter_pin(a: str, b: str, merged: str) -> None:
    assert str(combine(Requirement(a), "mine", Requirement(b), "theirs")) == merged
    # Either order admits the same versions.
    reverse = combine(Requirement(b), "theirs", Requirement(a), "mine")
    assert reverse.specifier == Requirement(merged).specifier
    assert reverse.extras == Requirement(merged).extras


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("numpy==1.26.4", "numpy<1.24"),
        ("numpy>=2", "numpy<2"),
        ("numpy>2,<=3", "numpy==2"),
        ("numpy==1.26.*", "numpy>=1.27"),
        ("numpy~=1.23.0", "numpy>=1.24"),
        ("chainer==7.8.1", "chainer==5.1.0"),
        ("six==1.16.0", "six!=1.16.0"),
    ],
)
def test_contradictions_are_typed_errors_naming_both(a: str, b: str) -> None:
    with pytest.raises(ValidationError) as info:
        combine(Requirement(a), "pip_packages", Requirement(b), "Chainer 5.1.0")
    message = str(info.value)
    assert str(Requirement(a)) in message and str(Requirement(b)) in message
    assert "pip_packages" in message and "Chainer 5.1.0" in message
    assert info.value.details["conflicting"] == str(Requirement(b))


@pytest.mark.parametrize(
    ("a", "b"), [("numpy<2", "numpy>=1.24"), ("six!=1.15", "six>=1.10"), ("x===abc", "x<2")]
)
def test_compatible_specifiers_do_not_conflict(a: str, b: str) -> None:
    assert not specifiers_conflict(Requirement(a).specifier, Requirement(b).specifier)


def test_merge_requirement_texts_keeps_first_seen_order() -> None:
    merged = merge_requirement_texts(
        (["chainer==5.1.0", "mpi4py"], "Chainer 5.1.0"),
        (["pytest", "Chainer", "typing_extensions"], "pip_packages"),
        (["typing-extensions==4.0"], "requirements.txt"),
    )
    assert merged == ["chainer==5.1.0", "mpi4py", "pytest", "typing-extensions==4.0"]


# ---------------------------------------------------------------------- the table
def test_chainer_gets_its_bounds_and_the_build_constraint() -> None:
    out, build, notices = apply_framework_constraints(reqs("chainer"), machine="x86_64")
    assert tuple(str(r) for r in out) == ("chainer", *CHAINER_BOUNDS)
    assert [str(r) for r in build] == ["setuptools<74"]
    assert any("np.sctypes" in n for n in notices) and any("np.int" in n for n in notices)


def test_a_users_numpy_pin_within_the_hard_bound_wins_over_the_default() -> None:
    assert applied("chainer", "numpy==1.26.4") == (
        "chainer",
        "numpy==1.26.4",
        "protobuf<4",
        "setuptools<74",
    )
    _, _, notices = apply_framework_constraints(reqs("chainer", "numpy==1.26.4"), machine="x86_64")
    assert any("numpy<1.24 not applied" in n and "numpy==1.26.4" in n for n in notices)


def test_a_users_pin_outside_the_hard_bound_is_an_error_naming_both() -> None:
    with pytest.raises(ValidationError) as info:
        apply_framework_constraints(reqs("chainer", "numpy>=2"), machine="x86_64")
    assert "numpy>=2" in str(info.value) and "numpy<2" in str(info.value)
    assert "np.sctypes" in str(info.value)


def test_no_framework_no_change() -> None:
    out, build, notices = apply_framework_constraints(reqs("six", "numpy"), machine="x86_64")
    assert [str(r) for r in out] == ["numpy", "six"] and build == [] and notices == []


def test_torch_defaults_to_the_cpu_wheel_and_torchvision_to_the_pair_that_imports() -> None:
    assert applied("torch") == ("torch==2.13.0",)
    assert applied("torch", "torchvision") == ("torch==2.14.1", "torchvision==0.29.1")
    assert applied("torchvision") == ("torch==2.14.1", "torchvision==0.29.1")
    # A user's own torch pin is kept; the pair is then not forced on it.
    assert applied("torch==2.9.1", "torchvision") == ("torch==2.9.1", "torchvision")
    # The torch wheels were measured on x86_64 only: elsewhere nothing is assumed.
    assert applied("torch", "torchvision", machine="aarch64") == ("torch", "torchvision")


def test_old_mpi4py_gets_a_build_constraint_only() -> None:
    out, build, _ = apply_framework_constraints(reqs("mpi4py==3.1.6"), machine="x86_64")
    assert [str(r) for r in out] == ["mpi4py==3.1.6"] and [str(r) for r in build] == [
        "setuptools<74"
    ]
    _, build, _ = apply_framework_constraints(reqs("mpi4py"), machine="x86_64")
    assert build == []


# ---------------------------------------------------------------------- every path applies it
def test_user_environment_listing_chainer() -> None:
    env = Environment("mine")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["chainer", "pytest"])
    spec = EnvSpec.from_environment_dict(env.to_dict(), gpu=False)
    assert set(CHAINER_BOUNDS) <= set(spec.requirements)
    assert "setuptools<74" in spec.build_constraints
    env.python.conda_dependencies.add_pip_package("numpy>=2")
    with pytest.raises(ValidationError, match=r"numpy>=2.*numpy<2"):
        env.validate()


def test_conda_yaml_listing_chainer(tmp_path: Path) -> None:
    # Gen B's conda_dependencies.yml (python 3.8.12, azureml-*, cupy, unpinned chainer).
    path = tmp_path / "conda_dependencies.yml"
    path.write_text(
        "channels: [conda-forge]\n"
        "dependencies:\n"
        "  - python=3.8.12\n  - pip=22.3.1\n  - numpy\n"
        "  - pip:\n    - azureml-defaults\n    - azureml-opendatasets\n"
        "    - chainer\n    - cupy-cuda111\n    - pytest\n"
    )
    env = Environment.from_conda_specification("chainer-gpu", path)
    spec = EnvSpec.from_environment_dict(env.to_dict(), gpu=False)
    assert spec.requirements == (
        "chainer",
        "numpy<1.24",
        "pip==22.3.1",
        "protobuf<4",
        "pytest",
        "setuptools<74",
    )


def test_inference_environment_listing_chainer() -> None:
    env = Environment("myenv")
    cd = CondaDependencies.create()
    cd.add_conda_package("numpy")
    cd.add_pip_package("chainer==5.1.0")
    cd.add_pip_package("azureml-defaults")
    env.python.conda_dependencies = cd
    spec = inference_spec(env)
    assert set(CHAINER_BOUNDS) <= set(spec.requirements)
    assert "chainer==5.1.0" in spec.requirements


def test_estimator_pip_packages_numpy_keeps_the_framework_bound(tmp_path: Path) -> None:
    est = Chainer(str(tmp_path), entry_script="train.py", pip_packages=["numpy", "pytest"])
    env = est.run_config.environment
    assert env is not None
    spec = EnvSpec.from_environment_dict(env.to_dict(), gpu=False)
    assert "numpy<1.24" in spec.requirements and "numpy" not in spec.requirements


def test_estimator_pin_that_contradicts_the_framework_version_names_both(tmp_path: Path) -> None:
    est = Chainer(
        str(tmp_path),
        entry_script="train.py",
        framework_version="5.1.0",
        pip_packages=["chainer==7.8.1"],
    )
    with pytest.raises(ValidationError) as info:
        est.run_config  # noqa: B018 - building the config merges the packages
    message = str(info.value)
    assert "chainer==7.8.1" in message and "chainer==5.1.0" in message
    assert "pip_packages" in message and "Chainer 5.1.0" in message


# ---------------------------------------------------------------------- framework releases
@pytest.mark.parametrize("version", ["5.1.0", "7.0.0", "7.8.1"])
def test_installable_chainer_versions_are_honoured(version: str) -> None:
    resolved = resolve_framework(FRAMEWORKS["Chainer"], version, use_gpu=False)
    assert resolved.version == version and resolved.mapped == ""
    assert resolved.packages(False) == [f"chainer=={version}"]


def test_versions_that_cannot_install_map_with_the_reason() -> None:
    torch = resolve_framework(FRAMEWORKS["PyTorch"], "1.6", use_gpu=False)
    assert torch.version == "2.13.0" and "no wheels for Python 3.11" in torch.mapped
    gpu = resolve_framework(FRAMEWORKS["Chainer"], "5.1.0", use_gpu=True)
    assert gpu.version == "7.8.1" and "CuPy" in gpu.mapped
    assert gpu.packages(True) == ["chainer==7.8.1", "cupy-cuda12x"]
    with pytest.raises(UserErrorException, match="not supported"):
        resolve_framework(FRAMEWORKS["Chainer"], "4.0.0", use_gpu=False)


def test_exact_version() -> None:
    assert exact_version(["Chainer==5.1.0", "six"], "chainer") == "5.1.0"
    assert exact_version(["chainer>=5"], "chainer") is None
    assert exact_version(["torch==2.*"], "torch") is None


# ---------------------------------------------------------------------- build hints
def test_build_hints_name_what_to_install() -> None:
    mpi = (
        "Building mpi4py==3.1.6\n_configtest.c:2:10: fatal error: mpi.h: No such file or directory"
    )
    assert any("apt-get install openmpi-bin libopenmpi-dev" in h for h in build_hints(mpi))
    assert any(
        "setuptools<74" in h
        for h in build_hints("ModuleNotFoundError: No module named 'pkg_resources'")
    )
    assert build_hints("error: some other failure") == []
