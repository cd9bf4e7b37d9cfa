"""Tests for service keys: hashing, the keys file, the constant-time check and reloading."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from trainyard._serving.auth import (
    KeyStore,
    generate_key,
    hash_key,
    is_key_hash,
    read_keys_file,
    write_keys_file,
)
from trainyard.exceptions import ConfigError


def test_generated_keys_are_long_urlsafe_and_distinct() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert len(key) >= 43  # 32 random bytes
        assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("abc") == hashlib.sha256(b"abc").hexdigest()
    assert is_key_hash(hash_key("x"))
    assert not is_key_hash("abc")
    assert not is_key_hash(hash_key("x").upper())
    assert not is_key_hash(hash_key("x") + "\n")


def test_keys_file_holds_only_hashes_and_is_private(tmp_path: Path) -> None:
    primary, secondary = generate_key(), generate_key()
    path = write_keys_file(tmp_path / "keys.json", [primary, secondary])
    text = path.read_text()
    assert primary not in text and secondary not in text
    assert json.loads(text) == {"key_hashes": [hash_key(primary), hash_key(secondary)]}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_keys_file(path) == (hash_key(primary), hash_key(secondary))
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temp file left behind


@pytest.mark.parametrize(
    "content",
    ["", "not json", "[]", '{"key_hashes": "abc"}', '{"key_hashes": ["abc"]}', '{"other": []}'],
)
def test_malformed_keys_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"keys\.json"):
        read_keys_file(path)


def test_missing_keys_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        KeyStore.from_file(tmp_path / "absent.json")


def test_check_authorization() -> None:
    store = KeyStore([hash_key("k1"), hash_key("k2")])
    assert store.check_authorization(b"Bearer k1")
    assert store.check_authorization(b"bearer k2")
    assert store.check_authorization(b"Bearer   k2  ")
    for header in [
        None,
        b"",
        b"Bearer",
        b"Bearer ",
        b"k1",
        b"Basic k1",
        b"Bearer k3",
        b"Bearer k1x",
    ]:
        assert not store.check_authorization(header), header


def test_no_keys_rejects_everything() -> None:
    assert not KeyStore([]).check_authorization(b"Bearer anything")


def test_file_store_follows_rewrites_and_denies_when_unreadable(tmp_path: Path) -> None:
    path = write_keys_file(tmp_path / "keys.json", ["old", "second"])
    store = KeyStore.from_file(path, reload_interval_s=0)
    assert store.check_authorization(b"Bearer old")

    write_keys_file(path, ["new", "second"])
    assert store.check_authorization(b"Bearer new")
    assert not store.check_authorization(b"Bearer old")
    assert store.check_authorization(b"Bearer second")

    path.write_text("garbage")
    assert not store.check_authorization(b"Bearer second")
    write_keys_file(path, ["second"])
    assert store.check_authorization(b"Bearer second")

    path.unlink()
    assert not store.check_authorization(b"Bearer second")
