"""Service keys at rest: the record holds only their hashes; the keys themselves live in a
0600 file in the service's folder on the machine that runs it (``keys.secret.json``), next to the
hashed ``keys.json`` the scoring server checks against.

``get_keys()`` and ``service.run()`` read the secret file; a caller on another machine (a shared
PostgreSQL store, a team server) cannot read the keys out of the database and is told to rotate
them where the service runs. Records written before this (plaintext ``primaryKey`` /
``secondaryKey``) still work and lose their plaintext at the next key change.

Example::

    hashes = store_keys(ws.path, "svc", primary, secondary)   # → record data
    primary, secondary = load_keys(ws.path, "svc", record.data)
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from trainyard._serving.auth import hash_key, write_keys_file
from trainyard.core.webservice import _manager as m
from trainyard.exceptions import WebserviceException

SECRET_FILE = "keys.secret.json"
#: Record fields: the keys' hashes, where the keys are, and the legacy plaintext fields.
HASH_FIELDS = ("primaryKeyHash", "secondaryKeyHash")
LEGACY_FIELDS = ("primaryKey", "secondaryKey")


def _secret(home: Path, name: str) -> Path:
    return m.ServicePaths(home, name).root / SECRET_FILE


def store_keys(home: Path, name: str, primary: str, secondary: str) -> dict[str, Any]:
    """Write both keys (owner-only) and the scoring server's hashes; return the record fields
    (hashes, host, and ``None`` over any legacy plaintext)."""
    root = m.ServicePaths(home, name).root
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)  # the folder holding a secret is the owner's only
    fd, tmp = tempfile.mkstemp(prefix=".secret-", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"primary": primary, "secondary": secondary}, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, root / SECRET_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    write_keys_file(m.ServicePaths(home, name).keys_file, [primary, secondary])
    return {
        "primaryKeyHash": hash_key(primary),
        "secondaryKeyHash": hash_key(secondary),
        "keysHost": socket.gethostname(),
        "primaryKey": None,
        "secondaryKey": None,
    }


def load_keys(home: Path, name: str, data: dict[str, Any]) -> tuple[str, str]:
    """``(primary, secondary)`` from the secret file (or a legacy record); ``WebserviceException``
    saying where they are when this machine does not have them."""
    try:
        keys = json.loads(_secret(home, name).read_text(encoding="utf-8"))
        primary, secondary = str(keys["primary"]), str(keys["secondary"])
    except (OSError, ValueError, KeyError, TypeError):
        if data.get("primaryKey") and data.get("secondaryKey"):
            return str(data["primaryKey"]), str(data["secondaryKey"])
        raise WebserviceException(
            f"The keys of service {name!r} are kept only on the machine that runs it "
            f"({data.get('keysHost') or 'unknown'}); the workspace stores their hashes. Call "
            "service.regen_key('Primary') there (or here, to set new keys here) to get keys.",
            name=name,
        ) from None
    if data.get("primaryKeyHash") and hash_key(primary) != data["primaryKeyHash"]:
        raise WebserviceException(
            f"The key file of service {name!r} does not match its record (the keys were changed "
            "elsewhere); call service.regen_key('Primary') to set new ones.",
            name=name,
        )
    return primary, secondary


def write_hashes(home: Path, name: str, data: dict[str, Any]) -> None:
    """The scoring server's hashed keys file from what this machine holds (before a generation
    starts)."""
    primary, secondary = load_keys(home, name, data)
    m.ServicePaths(home, name).root.mkdir(parents=True, exist_ok=True)
    write_keys_file(m.ServicePaths(home, name).keys_file, [primary, secondary])
