from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from trainyard._execution.environments.spec import (
    EnvSpec,
    TrainyardRuntime,
    conda_to_pip,
    current_python_version,
    python_version_matches,
    spec_hash,
)
from trainyard.core.conda_dependencies import CondaDependencies
from trainyard.core.environment import Environment
from trainyard.exceptions import ConfigError, ValidationError

RUNTIME = TrainyardRuntime(version="9.9.9", package_dir="/x/trainyard")


def spec(*reqs: str, **kw: object) -> EnvSpec:
    return EnvSpec.from_requirements(list(reqs), gpu=False, **kw)  # type: ignore[arg-type]


def h(s: EnvSpec, runtime: TrainyardRuntime = RUNTIME) -> str:
    return spec_hash(s, runtime)


# ---------------------------------------------------------------------- hashing
def test_hash_is_order_and_spelling_insensitive() -> None:
    a = spec("six==1.16.0", "numpy<2", "typing_extensions")
    b = spec("Typing.Extensions", "NumPy<2", "six==1.16.0")
    assert a == b
    assert h(a) == h(b)


def test_hash_ignores_environment_names_versions_files_and_variables(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("six==1.16.0\nnumpy<2\n")
    (tmp_path / "other-name.txt").write_text("numpy<2\nsix==1.16.0\n")
    one = Environment.from_pip_requirements("first", tmp_path / "a.txt")
    two = Environment.from_pip_requirements("second", tmp_path / "other-name.txt")
    two.version = "12"
    two.environment_variables["X"] = "1"
    two.docker.base_image = "something/else"
    s1 = EnvSpec.from_environment(one, gpu=False)
    s2 = EnvSpec.from_environment(two, gpu=False)
    assert h(s1) == h(s2)


@pytest.mark.parametrize(
    "changed",
    [
        ("six==1.17.0", "numpy<2"),  # re-pin
        ("six==1.16.0",),  # remove
        ("six==1.16.0", "numpy<2", "pytest"),  # add
        ("six==1.16.0", "numpy<2,>=1.24"),  # tighten
        ("six[extra]==1.16.0", "numpy<2"),  # extras
    ],
)
def test_any_package_change_changes_the_hash(changed: tuple[str, ...]) -> None:
    assert h(spec("six==1.16.0", "numpy<2")) != h(spec(*changed))


def test_python_version_and_index_options_change_the_hash() -> None:
    base = spec("six")
    assert h(base) != h(spec("six", python_version="3.12"))
    assert h(base) != h(spec("six", pip_options=["--index-url https://idx.invalid/simple"]))


def test_runtime_is_part_of_the_hash() -> None:
    s = spec("six")
    assert h(s) != h(s, replace(RUNTIME, version="9.9.10"))
    assert h(s) != h(s, replace(RUNTIME, package_dir="/elsewhere/trainyard"))


def test_notices_do_not_count() -> None:
    assert h(spec("six", "azureml-defaults")) == h(spec("six"))


def test_user_managed_hash_depends_only_on_interpreter() -> None:
    a = spec("six", user_managed=True)
    b = spec("numpy", user_managed=True)
    assert h(a) == h(b)
    assert h(a) != h(spec("six", user_managed=True, interpreter_path="/usr/bin/python3"))


def test_to_dict_round_trip() -> None:
    s = spec("six==1.16.0", "setuptools<74", pip_options=["-f /opt/wheels"])
    assert EnvSpec.from_dict(s.to_dict()) == s


# ---------------------------------------------------------------------- normalisation
def test_duplicates_merge() -> None:
    s = spec("numpy", "numpy<2", "numpy>=1.24", "requests[socks]", "requests[security]")
    assert s.requirements == ("numpy<2,>=1.24", "requests[security,socks]")


def test_build_constraints_hold_upper_pins_only() -> None:
    s = spec(
        "attrs==23.1.0",
        "setuptools<74",
        "numpy>=1.24,<2",
        "six",
        "foo>=1",
        "bar<=3; python_version>'3'",
    )
    assert s.build_constraints == (
        "attrs==23.1.0",
        'bar<=3; python_version > "3"',
        "numpy<2",
        "setuptools<74",
    )


@pytest.mark.parametrize("bad", ["not a requirement!!", "numpy>>1", "git+https://github.com/x/y"])
def test_bad_requirements_name_themselves(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec(bad)
    assert bad in str(info.value)


def test_runtime_packages_are_dropped_with_notices() -> None:
    s = spec("azureml-defaults>=1.0.45", "azureml-opendatasets", "AzureML_Core", "trainyard", "six")
    assert s.requirements == ("six",)
    assert len(s.notices) == 4
    assert all("trainyard runtime" in n for n in s.notices)


def test_gpu_wheels_skipped_only_without_gpu() -> None:
    cpu = EnvSpec.from_requirements(["cupy-cuda111==9.0", "cupy", "six"], gpu=False)
    assert cpu.requirements == ("six",)
    assert any("no GPU" in n for n in cpu.notices)
    gpu = EnvSpec.from_requirements(["cupy-cuda111==9.0", "six"], gpu=True)
    assert gpu.requirements == ("cupy-cuda111==9.0", "six")


def test_python_version_rules() -> None:
    assert spec("six").python_version == current_python_version()
    assert spec("six", python_version="3.12").python_version == "3.12"
    old = spec("six", python_version="3.8.12")
    assert old.python_version == current_python_version()
    assert any("python=3.8.12" in n for n in old.notices)
    with pytest.raises(ValidationError):
        spec("six", python_version="three")


def test_python_from_conda_list() -> None:
    assert spec(conda_packages=["python=3.12.1"]).python_version == "3.12.1"
    assert spec(conda_packages=["conda-forge::python==3.12"]).python_version == "3.12"
    assert spec(conda_packages=["python>=3.9"]).python_version == current_python_version()
    with pytest.raises(ValidationError):
        spec(conda_packages=["python<3.0"])


@pytest.mark.parametrize(
    ("conda", "pip"),
    [
        ("numpy", "numpy"),
        ("numpy=1.26", "numpy==1.26.*"),
        ("numpy=1.26.4", "numpy==1.26.4"),
        ("numpy=1.26.4=py311h64a7726_0", "numpy==1.26.4"),
        ("numpy==1.26.4", "numpy==1.26.4"),
        ("numpy 1.26.*", "numpy==1.26.*"),
        ("scikit-learn>=1.3,<2", "scikit-learn>=1.3,<2"),
        ("conda-forge::pandas", "pandas"),
        ("pytorch=2.13.0", "torch==2.13.0"),
        ("cudatoolkit=11.1", None),
    ],
)
def test_conda_to_pip(conda: str, pip: str | None) -> None:
    assert conda_to_pip(conda) == pip


@pytest.mark.parametrize(
    "conda", ["mkl", "libgcc-ng=11.2", "conda-forge::openmpi", "numpy=1.2|1.3"]
)
def test_conda_only_packages_are_refused(conda: str) -> None:
    with pytest.raises(ValidationError) as info:
        conda_to_pip(conda)
    assert conda.split("::")[-1].split("=")[0] in str(info.value)


def test_conda_mapping_in_spec_records_notices() -> None:
    s = spec("six", conda_packages=["pip=20.2.4", "numpy=1.26", "cudatoolkit=11.1"])
    assert s.requirements == ("numpy==1.26.*", "pip==20.2.4", "six")
    assert any("cudatoolkit" in n for n in s.notices)


def test_pip_options() -> None:
    s = spec(
        "six",
        pip_options=[
            "--index-url https://main.invalid/simple",
            "--extra-index-url=https://a.invalid/simple",
            "-f /opt/wheels",
        ],
    )
    assert s.index_url == "https://main.invalid/simple"
    assert s.extra_index_urls == ("https://a.invalid/simple",)
    assert s.find_links == ("/opt/wheels",)
    with pytest.raises(ValidationError, match="--pre"):
        spec("six", pip_options=["--pre"])


def test_from_environment_dict_reads_the_v1_object() -> None:
    env = Environment("x")
    env.python.conda_dependencies = CondaDependencies.create(
        pip_packages=["chainer==7.8.1", "azureml-defaults", "--find-links /opt/wheels"],
        conda_packages=["numpy=1.26.4"],
        python_version="3.8.12",
    )
    env.environment_variables["A"] = "1"
    s = EnvSpec.from_environment_dict(env.to_dict(), gpu=False)
    # The user's numpy pin satisfies Chainer's hard bound (<2), so it is kept as written.
    assert s.requirements == ("chainer==7.8.1", "numpy==1.26.4", "protobuf<4", "setuptools<74")
    assert s.find_links == ("/opt/wheels",)
    assert s.python_version == current_python_version()
    assert EnvSpec.from_environment(env, gpu=False) == s
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = sys.executable
    um = EnvSpec.from_environment_dict(env.to_dict(), gpu=False)
    assert um.user_managed and um.interpreter_path == sys.executable
    # Nothing is installed in a user-managed environment: the framework table is not applied.
    assert um.requirements == ("chainer==7.8.1", "numpy==1.26.4")


def test_from_environment_dict_of_an_empty_definition() -> None:
    s = EnvSpec.from_environment_dict({}, gpu=False)
    assert s == EnvSpec(python_version=current_python_version())


def test_from_environment_dict_accepts_python_ranges_in_conda() -> None:
    data = {"python": {"condaDependencies": {"dependencies": ["python=3.11.*", {"pip": ["six"]}]}}}
    assert EnvSpec.from_environment_dict(data, gpu=False).python_version == "3.11"


@pytest.mark.parametrize(
    "bad",
    [
        ["not", "a", "dict"],
        {"python": "nope"},
        {"python": {"condaDependencies": {"dependencies": "six"}}},
        {"python": {"condaDependencies": {"dependencies": [{"pip": ["six"], "conda": ["x"]}]}}},
        {"python": {"interpreterPath": 3}},
    ],
)
def test_from_environment_dict_rejects_malformed_definitions(bad: object) -> None:
    with pytest.raises(ConfigError):
        EnvSpec.from_environment_dict(bad, gpu=False)  # type: ignore[arg-type]


# The cache keys of specs without frameworks, recorded when trainyard stopped installing its own
# pinned dependencies into built environments (their content changed, so their keys did); a
# user-managed environment is built by no one, so its key never depended on them.
GOLDEN = {
    "pins": "d338bdc8fd3e7c6b66db638386c0d34197dca5618a34f75e6147c86d58786a2d",
    "conda": "588743247d14f90cbbeeb25735a2e2a303cd92aff727eaabc552b715a9a8d9f5",
    "user-managed": "6e782adf6c63aded6cd38d4f9a0248e16bcc866acff97fa0a4f1a264f1ef8a9c",
}


def test_cache_keys_of_existing_specs_are_unchanged() -> None:
    pins = spec("six==1.16.0", "numpy<2", python_version="3.11")
    assert h(pins) == GOLDEN["pins"]
    env = Environment("x")
    env.python.conda_dependencies = CondaDependencies.create(
        pip_packages=[
            "six==1.16.0",
            "azureml-defaults",
            "--extra-index-url https://a.invalid/simple",
        ],
        conda_packages=["numpy=1.26.4"],
        python_version="3.11",
    )
    assert h(EnvSpec.from_environment_dict(env.to_dict(), gpu=False)) == GOLDEN["conda"]
    um = Environment("u")
    um.python.user_managed_dependencies = True
    assert h(EnvSpec.from_environment_dict(um.to_dict(), gpu=False)) == GOLDEN["user-managed"]


def test_current_runtime_is_the_running_trainyard_and_pins_nothing() -> None:
    import trainyard

    rt = TrainyardRuntime.current()
    assert rt.version == trainyard.__version__
    assert Path(rt.package_dir) == Path(trainyard.__file__).resolve().parent
    # Nothing of trainyard's own dependencies goes into a user's environment (issue 10, item 3).
    assert rt.to_dict() == {"version": rt.version, "package_dir": rt.package_dir}


@pytest.mark.parametrize(
    ("requested", "actual", "ok"),
    [
        ("3.11", "3.11.7", True),
        ("3.11.7", "3.11.7", True),
        ("3.11.4", "3.11.7", False),
        ("3.1", "3.11.7", False),
    ],
)
def test_python_version_matches(requested: str, actual: str, ok: bool) -> None:
    assert python_version_matches(requested, actual) is ok
