"""Service keys: generate, hash, store hashed, check in constant time (aml-reference §9.7).

Keys are ≥ 32 random bytes, URL-safe. The server only ever sees their SHA-256 hashes: the keys file holds
``{"key_hashes": ["<64 hex>", ...]}`` and is written atomically, so a regenerated key takes effect (and
the old one stops working) within about a second, without a restart.

Example::

    from trainyard._serving.auth import generate_key, write_keys_file, KeyStore
    primary, secondary = generate_key(), generate_key()
    write_keys_file("keys.json", [primary, secondary])
    store = KeyStore.from_file("keys.json")
    assert store.check_authorization(f"Bearer {primary}".encode())
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from trainyard._serving.lines import say
from trainyard.exceptions import ConfigError

#: How often (seconds) a :class:`KeyStore` backed by a file looks at the file for changes.
RELOAD_INTERVAL_S = 1.0

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def generate_key() -> str:
    """A new service key: 32 random bytes, URL-safe base64 (43 characters).

    Example::

        key = generate_key()
    """
    return secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Lowercase hex SHA-256 of ``key`` (UTF-8): the only form the server stores.

    Example::

        hash_key("abc")  # 'ba7816bf…'
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_key_hash(value: str) -> bool:
    """True if ``value`` looks like :func:`hash_key` output (64 lowercase hex digits)."""
    return bool(_SHA256_HEX.fullmatch(value))


def write_keys_file(path: str | os.PathLike[str], keys: Iterable[str]) -> Path:
    """Write the hashes of ``keys`` to ``path`` atomically (temp file, mode 0600, rename).

    Example::

        write_keys_file(service_dir / "keys.json", [primary, secondary])
    """
    target = Path(path)
    payload = json.dumps({"key_hashes": [hash_key(k) for k in keys]})
    fd, tmp = tempfile.mkstemp(prefix=".keys-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_keys_file(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The key hashes stored in ``path``; :class:`ConfigError` if it is missing or malformed.

    Example::

        hashes = read_keys_file("keys.json")
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        hashes = data["key_hashes"]
        if not isinstance(hashes, list) or not all(
            isinstance(h, str) and is_key_hash(h.strip().lower()) for h in hashes
        ):
            raise TypeError("key_hashes is not a list of SHA-256 hex digests")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"Keys file {os.fspath(path)} is unreadable or malformed ({type(err).__name__}); "
            'expected {"key_hashes": ["<sha256 hex>", ...]}.'
        ) from None
    return tuple(h.strip().lower() for h in hashes)


def _digest_of_bearer(header: bytes) -> bytes | None:
    scheme, _, token = header.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return None
    return hashlib.sha256(token).digest()


def _stat_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class KeyStore:
    """The accepted key hashes, checked in constant time.

    Thread-safe for readers: the hash tuple is replaced atomically on reload. A file-backed store
    re-reads its file when its stat signature changes (checked at most every ``reload_interval_s``);
    if the file becomes unreadable every key is rejected until it is fixed (deny by default).

    Example::

        store = KeyStore([hash_key("k1"), hash_key("k2")])
        store.check_authorization(b"Bearer k2")  # True
    """

    def __init__(
        self,
        key_hashes: Iterable[str],
        *,
        path: Path | None = None,
        reload_interval_s: float = RELOAD_INTERVAL_S,
    ) -> None:
        self._digests: tuple[bytes, ...] = tuple(bytes.fromhex(h) for h in key_hashes)
        self._path = path
        self._signature = _stat_signature(path) if path is not None else None
        self._interval = reload_interval_s
        self._next_check = time.monotonic() + reload_interval_s

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, reload_interval_s: float = RELOAD_INTERVAL_S
    ) -> KeyStore:
        """A store that follows the keys file at ``path``; :class:`ConfigError` if unreadable now."""
        resolved = Path(os.path.abspath(os.fspath(path)))
        return cls(read_keys_file(resolved), path=resolved, reload_interval_s=reload_interval_s)

    def _maybe_reload(self, path: Path) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self._interval
        signature = _stat_signature(path)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            self._digests = tuple(bytes.fromhex(h) for h in read_keys_file(path))
        except ConfigError as err:
            self._digests = ()
            say(f"trainyard-serving: rejecting all keys: {err}", error=True)

    def check_authorization(self, header: bytes | None) -> bool:
        """True if ``header`` is ``Bearer <key>`` for an accepted key.

        Every stored hash is compared (no early exit) with :func:`hmac.compare_digest`, so the time taken
        does not depend on which key matched or how much of it did.
        """
        if self._path is not None:
            self._maybe_reload(self._path)
        if not header:
            return False
        digest = _digest_of_bearer(header)
        if digest is None:
            return False
        ok = False
        for stored in self._digests:
            ok |= hmac.compare_digest(digest, stored)
        return ok
