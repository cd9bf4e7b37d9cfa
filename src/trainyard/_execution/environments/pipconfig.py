"""Carry the user's pip configuration over to uv, which ignores pip's files and ``PIP_*`` variables.

:func:`read_pip_config` reads what ``pip install`` would use, with pip's precedence:

1. files, lowest priority first: global (``$XDG_CONFIG_DIRS/pip/pip.conf``, ``/etc/pip.conf``),
   user (``~/.pip/pip.conf``, ``$XDG_CONFIG_HOME/pip/pip.conf``; skipped when ``PIP_CONFIG_FILE``
   names an existing file), site (``<sys.prefix>/pip.conf``), then ``$PIP_CONFIG_FILE``
   (``os.devnull`` there disables every file);
2. inside the merged files, an ``[install]`` value beats a ``[global]`` one;
3. ``PIP_*`` environment variables beat every file.

:meth:`PipConfig.uv_args` turns it into uv flags; the certificate goes through :meth:`PipConfig.uv_env`
(``SSL_CERT_FILE``), which every uv release honours. uv's default index strategy (first index that
has the package wins) differs from pip's (best version across all indexes and find-links), so the
flags ask for ``--index-strategy unsafe-best-match``: with ``find-links=/opt/wheels`` holding
``torch-2.13.0+cpu``, ``torch==2.13.0`` then resolves to the CPU wheel exactly as pip does.

Example::

    import os
    from trainyard._execution.environments.pipconfig import read_pip_config
    cfg = read_pip_config(os.environ)
    print(cfg.uv_args())   # ['--find-links', '/opt/wheels', '--index-strategy', 'unsafe-best-match', …]
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainyard.exceptions import ConfigError

if TYPE_CHECKING:
    from trainyard._execution.environments.spec import EnvSpec

_KEYS = ("index-url", "extra-index-url", "find-links", "cert", "trusted-host", "no-index")
_TRUE = {"1", "true", "yes", "on", "y"}


@dataclass(frozen=True)
class PipConfig:
    """The pip settings that decide where packages come from.

    Example::

        PipConfig(find_links=("/opt/wheels",)).uv_args()
        # ['--find-links', '/opt/wheels', '--index-strategy', 'unsafe-best-match']
    """

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    cert: str | None = None
    trusted_hosts: tuple[str, ...] = ()
    no_index: bool = False

    def uv_args(self) -> list[str]:
        """Flags for ``uv pip install`` / ``uv pip compile`` (the certificate is in :meth:`uv_env`)."""
        args: list[str] = []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        if self.no_index:
            args.append("--no-index")
        for host in self.trusted_hosts:
            args += ["--allow-insecure-host", host]
        args += ["--index-strategy", "unsafe-best-match"]
        return args

    def uv_env(self) -> dict[str, str]:
        """Environment variables for the uv process (``SSL_CERT_FILE`` when pip has a ``cert``)."""
        return {"SSL_CERT_FILE": self.cert} if self.cert else {}

    def with_spec(self, spec: EnvSpec) -> PipConfig:
        """This configuration plus the index options written in an environment spec.

        The spec's ``--index-url`` replaces the host's; extra indexes and find-links add up.
        """
        return PipConfig(
            index_url=spec.index_url or self.index_url,
            extra_index_urls=_unique(self.extra_index_urls + spec.extra_index_urls),
            find_links=_unique(self.find_links + spec.find_links),
            cert=self.cert,
            trusted_hosts=self.trusted_hosts,
            no_index=self.no_index,
        )


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def pip_config_files(
    env: Mapping[str, str], *, site_prefix: str | Path | None = None
) -> list[Path]:
    """The files pip would read for ``env``, lowest priority first (existing or not).

    Example::

        pip_config_files({"HOME": "/root"})[-1]   # /usr/…/pip.conf (the site file)
    """
    env_file = env.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    files: list[Path] = []
    xdg_dirs = env.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files += [Path(d) / "pip" / "pip.conf" for d in xdg_dirs.split(os.pathsep) if d]
    files.append(Path("/etc/pip.conf"))
    if not (env_file and Path(env_file).exists()):
        home = Path(env["HOME"]) if env.get("HOME") else Path.home()
        xdg_home = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
        files += [home / ".pip" / "pip.conf", xdg_home / "pip" / "pip.conf"]
    files.append(Path(site_prefix if site_prefix is not None else sys.prefix) / "pip.conf")
    if env_file:
        files.append(Path(env_file))
    return files


def _read_file(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        return {}
    except (OSError, configparser.Error) as err:
        raise ConfigError(
            f"pip configuration file {str(path)!r} cannot be read: {err}", path=str(path)
        ) from None
    out: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        out[section] = {k.lstrip("-").replace("_", "-"): v for k, v in parser.items(section)}
    return out


def read_pip_config(
    env: Mapping[str, str],
    *,
    files: Sequence[Path] | None = None,
    site_prefix: str | Path | None = None,
) -> PipConfig:
    """What ``pip install`` would use for its index, find-links, certificate and trusted hosts.

    ``files`` overrides discovery (:func:`pip_config_files`); ``PIP_*`` variables in ``env`` still
    win over them.

    Example::

        cfg = read_pip_config({"PIP_FIND_LINKS": "/opt/wheels"}, files=[])
        cfg.find_links   # ("/opt/wheels",)
    """
    merged: dict[tuple[str, str], str] = {}
    for path in pip_config_files(env, site_prefix=site_prefix) if files is None else files:
        for section, items in _read_file(Path(path)).items():
            for key, value in items.items():
                merged[(section, key)] = value
    values: dict[str, str] = {}
    for section in ("global", "install"):
        for key in _KEYS:
            if (section, key) in merged:
                values[key] = merged[(section, key)]
    for key in _KEYS:
        var = "PIP_" + key.upper().replace("-", "_")
        if var in env:
            values[key] = env[var]

    def many(key: str) -> tuple[str, ...]:
        return _unique(values.get(key, "").split())

    return PipConfig(
        index_url=values.get("index-url", "").strip() or None,
        extra_index_urls=many("extra-index-url"),
        find_links=many("find-links"),
        cert=values.get("cert", "").strip() or None,
        trusted_hosts=many("trusted-host"),
        no_index=values.get("no-index", "").strip().lower() in _TRUE,
    )
