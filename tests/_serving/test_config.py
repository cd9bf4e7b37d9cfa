"""Tests for ServingConfig: path resolution, validation, the JSON wire form."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainyard._serving.auth import hash_key
from trainyard._serving.config import (
    DEFAULT_MAX_REQUEST_BYTES,
    ServingConfig,
    resolve_entry_script,
)
from trainyard.exceptions import ConfigError


def test_defaults() -> None:
    cfg = ServingConfig(entry_script="/srv/app/score.py")
    assert cfg.max_request_bytes == DEFAULT_MAX_REQUEST_BYTES == 10 * 1024 * 1024
    assert not cfg.auth_enabled and cfg.key_hashes == () and cfg.keys_file is None
    assert cfg.run_concurrency == 1 and not cfg.enable_docs
    assert cfg.app_directory == Path("/srv/app")


def test_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = ServingConfig(
        entry_script="score.py", source_directory="app", model_dir="m/1", keys_file="k.json"
    )
    assert cfg.source_directory == tmp_path / "app"
    assert cfg.entry_script == tmp_path / "app" / "score.py"
    assert cfg.model_dir == tmp_path / "m" / "1"
    assert cfg.keys_file == tmp_path / "k.json"
    assert cfg.app_directory == tmp_path / "app"


def test_entry_script_relative_to_cwd_when_not_inside_source_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "score.py").write_text("")
    # "app/score.py" does not exist under app/, but does under the cwd
    assert resolve_entry_script("app/score.py", tmp_path / "app") == tmp_path / "app" / "score.py"
    assert resolve_entry_script("score.py", tmp_path / "app") == tmp_path / "app" / "score.py"
    assert resolve_entry_script("x.py", None) == tmp_path / "x.py"
    assert resolve_entry_script("/abs/x.py", tmp_path) == Path("/abs/x.py")


def test_json_round_trip() -> None:
    cfg = ServingConfig(
        entry_script="/a/score.py",
        source_directory="/a",
        model_dir="/m",
        key_hashes=(hash_key("p"), hash_key("s")),
        auth_enabled=True,
        max_request_bytes=123,
        service_name="svc",
        run_concurrency=2,
        enable_docs=True,
    )
    raw = cfg.to_json()
    assert "key_hashes" in json.loads(raw)
    assert ServingConfig.from_json(raw) == cfg


@pytest.mark.parametrize(
    "kwargs",
    [
        {"auth_enabled": True},
        {"key_hashes": ("not-a-hash",)},
        {"max_request_bytes": 0},
        {"run_concurrency": 0},
    ],
)
def test_invalid(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ServingConfig(entry_script="/a/score.py", **kwargs)  # type: ignore[arg-type]


def test_hashes_are_normalised() -> None:
    h = hash_key("k")
    assert ServingConfig(entry_script="/a.py", key_hashes=(h.upper(),)).key_hashes == (h,)


@pytest.mark.parametrize(
    "raw", ["", "[]", "{", '{"entry_script": "/a.py", "bogus": 1}', '{"x": 1}']
)
def test_from_json_rejects_garbage(raw: str) -> None:
    with pytest.raises(ConfigError):
        ServingConfig.from_json(raw)


def test_config_is_frozen() -> None:
    cfg = ServingConfig(entry_script=os.path.abspath("score.py"))
    with pytest.raises(AttributeError):
        cfg.service_name = "x"  # type: ignore[misc]


def test_exposure_timeouts_and_log_round_trip(tmp_path: Path) -> None:
    cfg = ServingConfig(
        entry_script=Path("/srv/app/score.py"),
        host="0.0.0.0",
        allowed_hosts=("Scoring.Internal", ".corp.example"),
        allowed_origins=("https://App.example.com/",),
        allow_remote_without_auth=True,
        header_timeout_s=5,
        body_timeout_s=None,
        run_timeout_s=1.5,
        log_file=tmp_path / "service.log",
        log_max_bytes=4096,
        log_backups=0,
    )
    assert cfg.allowed_hosts == ("scoring.internal", ".corp.example")
    assert cfg.allowed_origins == ("https://app.example.com",)
    assert ServingConfig.from_json(cfg.to_json()) == cfg


def test_defaults_for_exposure_timeouts_and_log() -> None:
    cfg = ServingConfig(entry_script=Path("/srv/app/score.py"))
    assert cfg.host == "127.0.0.1" and cfg.allowed_hosts == () and cfg.allowed_origins == ()
    assert not cfg.allow_remote_without_auth
    assert (cfg.header_timeout_s, cfg.body_timeout_s, cfg.run_timeout_s) == (10.0, 30.0, 60.0)
    assert cfg.log_file is None


@pytest.mark.parametrize(
    "bad",
    [
        {"allowed_hosts": ("evil host",)},
        {"allowed_hosts": ("http://x",)},
        {"allowed_origins": ("app.example.com",)},
        {"allowed_origins": ("https://app.example.com/path",)},
        {"run_timeout_s": 0},
        {"body_timeout_s": -1},
        {"header_timeout_s": True},
        {"log_max_bytes": 10},
        {"log_backups": -1},
    ],
)
def test_bad_exposure_values_are_config_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ServingConfig(entry_script="/srv/app/score.py", **bad)  # type: ignore[arg-type]
