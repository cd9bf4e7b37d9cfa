from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trainyard._execution.environments.pipconfig import PipConfig, pip_config_files, read_pip_config
from trainyard._execution.environments.spec import EnvSpec
from trainyard.exceptions import ConfigError

CONF = """\
[global]
index-url = https://main.invalid/simple
extra-index-url =
    https://a.invalid/simple
    https://b.invalid/simple
find_links = /wheels/one /wheels/two
cert = /certs/global.pem

[install]
trusted-host = a.invalid
cert = /certs/install.pem
"""


@pytest.fixture
def conf_env(tmp_path: Path) -> dict[str, str]:
    conf = tmp_path / "pip.conf"
    conf.write_text(CONF)
    home = tmp_path / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text(
        "[global]\nindex-url = https://user.invalid/simple\n"
    )
    return {
        "PIP_CONFIG_FILE": str(conf),
        "HOME": str(home),
        "XDG_CONFIG_DIRS": str(tmp_path / "nowhere"),
    }


def test_reads_a_pip_config_file(conf_env: dict[str, str]) -> None:
    cfg = read_pip_config(conf_env)
    assert cfg.index_url == "https://main.invalid/simple"
    assert cfg.extra_index_urls == ("https://a.invalid/simple", "https://b.invalid/simple")
    assert cfg.find_links == ("/wheels/one", "/wheels/two")
    assert cfg.cert == "/certs/install.pem"  # [install] beats [global]
    assert cfg.trusted_hosts == ("a.invalid",)


def test_environment_variables_win(conf_env: dict[str, str]) -> None:
    env = conf_env | {
        "PIP_FIND_LINKS": "/opt/wheels",
        "PIP_INDEX_URL": "https://env.invalid/simple",
        "PIP_NO_INDEX": "1",
    }
    cfg = read_pip_config(env)
    assert cfg.find_links == ("/opt/wheels",)
    assert cfg.index_url == "https://env.invalid/simple"
    assert cfg.no_index is True
    assert cfg.extra_index_urls == ("https://a.invalid/simple", "https://b.invalid/simple")


def test_user_file_used_only_without_existing_pip_config_file(
    conf_env: dict[str, str], tmp_path: Path
) -> None:
    without = dict(conf_env)
    without["PIP_CONFIG_FILE"] = str(tmp_path / "missing.conf")
    files = pip_config_files(without, site_prefix=tmp_path / "site")
    assert Path(conf_env["HOME"]) / ".config" / "pip" / "pip.conf" in files
    # user files outrank the global ones, so this holds whatever /etc/pip.conf says
    assert (
        read_pip_config(without, site_prefix=tmp_path / "site").index_url
        == "https://user.invalid/simple"
    )
    assert Path(conf_env["HOME"]) / ".config" / "pip" / "pip.conf" not in pip_config_files(conf_env)


def test_discovery_order(tmp_path: Path) -> None:
    env = {
        "HOME": "/h",
        "XDG_CONFIG_DIRS": "/x1:/x2",
        "PIP_CONFIG_FILE": str(tmp_path / "absent.conf"),
    }
    files = pip_config_files(env, site_prefix="/site")
    assert files == [
        Path("/x1/pip/pip.conf"),
        Path("/x2/pip/pip.conf"),
        Path("/etc/pip.conf"),
        Path("/h/.pip/pip.conf"),
        Path("/h/.config/pip/pip.conf"),
        Path("/site/pip.conf"),
        tmp_path / "absent.conf",
    ]


def test_devnull_disables_files(conf_env: dict[str, str]) -> None:
    env = conf_env | {"PIP_CONFIG_FILE": os.devnull}
    assert pip_config_files(env) == []
    assert read_pip_config(env) == PipConfig()


def test_broken_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("no section header\n")
    with pytest.raises(ConfigError, match=re.escape("bad.conf")):
        read_pip_config({}, files=[bad])


def test_uv_args_and_env() -> None:
    cfg = PipConfig(
        index_url="https://main.invalid/simple",
        extra_index_urls=("file:///opt/pypi/simple", "file:///opt/pypi-more/simple"),
        find_links=("/opt/wheels",),
        cert="/etc/ssl/certs/ca-certificates.crt",
        trusted_hosts=("main.invalid",),
    )
    assert cfg.uv_args() == [
        "--index-url", "https://main.invalid/simple",
        "--extra-index-url", "file:///opt/pypi/simple",
        "--extra-index-url", "file:///opt/pypi-more/simple",
        "--find-links", "/opt/wheels",
        "--allow-insecure-host", "main.invalid",
        "--index-strategy", "unsafe-best-match",
    ]  # fmt: skip
    assert cfg.uv_env() == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}
    assert PipConfig().uv_env() == {}
    assert "--no-index" in PipConfig(no_index=True).uv_args()


def test_with_spec_merges_index_options() -> None:
    host = PipConfig(
        index_url="https://host.invalid/simple",
        extra_index_urls=("https://x.invalid",),
        find_links=("/w",),
    )
    spec = EnvSpec.from_requirements(
        ["six"],
        gpu=False,
        pip_options=[
            "--index-url https://spec.invalid/simple",
            "--extra-index-url https://x.invalid",
            "-f /v",
        ],
    )
    merged = host.with_spec(spec)
    assert merged.index_url == "https://spec.invalid/simple"
    assert merged.extra_index_urls == ("https://x.invalid",)
    assert merged.find_links == ("/w", "/v")
    assert host.with_spec(EnvSpec.from_requirements(["six"], gpu=False)) == host


def _pip_effective(env: dict[str, str]) -> dict[str, str]:
    """What real pip reports, resolved with pip's own precedence (:env: > install > global)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    by_section: dict[str, dict[str, str]] = {"global": {}, "install": {}, ":env:": {}}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        section, _, name = key.partition(".")
        if section in by_section:
            by_section[section][name] = str(ast.literal_eval(value.strip()))
    return by_section["global"] | by_section["install"] | by_section[":env:"]


def test_matches_real_pip(conf_env: dict[str, str]) -> None:
    env = conf_env | {"PATH": os.environ.get("PATH", ""), "PIP_FIND_LINKS": "/opt/wheels"}
    pip = _pip_effective(env)
    ours = read_pip_config(env)
    assert ours.index_url == pip.get("index-url")
    assert " ".join(ours.extra_index_urls) == " ".join(pip.get("extra-index-url", "").split())
    assert " ".join(ours.find_links) == " ".join(
        pip.get("find-links", pip.get("find_links", "")).split()
    )
    assert ours.cert == pip.get("cert")
    assert " ".join(ours.trusted_hosts) == pip.get("trusted-host", "")
