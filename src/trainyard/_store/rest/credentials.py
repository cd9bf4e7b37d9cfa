"""Where a client finds its token for a server: ``TRAINYARD_TOKEN``, else the user's credentials
file (``trainyard login URL`` writes it, mode 0600; never the workspace config).

The file is ``$XDG_CONFIG_HOME/trainyard/credentials.json`` (``~/.config``): ``{"servers": {url:
{"token": …}}}``.

Example::

    save_token("http://127.0.0.1:8765", "ty_…")
    token_for("http://127.0.0.1:8765")     # 'ty_…' (or $TRAINYARD_TOKEN when set)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainyard.exceptions import ConfigError

TOKEN_ENV = "TRAINYARD_TOKEN"


def credentials_path(env: Mapping[str, str] | None = None) -> Path:
    """The user's credentials file."""
    e = os.environ if env is None else env
    base = e.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "trainyard" / "credentials.json"


def _key(url: str) -> str:
    return url.rstrip("/")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"servers": {}}
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"Cannot read {path}: {err}. Delete it and run `trainyard login URL` again.",
            file=str(path),
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("servers"), dict):
        return {"servers": {}}
    return data


def token_for(url: str, env: Mapping[str, str] | None = None) -> str | None:
    """``$TRAINYARD_TOKEN``, else the saved token for ``url``, else ``None``."""
    e = os.environ if env is None else env
    if e.get(TOKEN_ENV):
        return e[TOKEN_ENV]
    entry = _read(credentials_path(e))["servers"].get(_key(url))
    token = entry.get("token") if isinstance(entry, dict) else None
    return str(token) if token else None


def save_token(url: str, token: str, env: Mapping[str, str] | None = None) -> Path:
    """Remember ``token`` for ``url`` in the credentials file (created 0600 in a 0700 folder)."""
    path = credentials_path(env)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    data = _read(path)
    data["servers"][_key(url)] = {"token": token}
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def forget_token(url: str, env: Mapping[str, str] | None = None) -> bool:
    """Remove the saved token for ``url``; whether there was one."""
    path = credentials_path(env)
    data = _read(path)
    if data["servers"].pop(_key(url), None) is None:
        return False
    save = dict(data)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(save, fh, indent=2, sort_keys=True)
    return True
