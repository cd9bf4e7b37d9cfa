"""The server's malloc tuning leaves operators' own MALLOC_* settings alone."""

from __future__ import annotations

import pytest

from trainyard.server.main import release_large_buffers


def test_operator_malloc_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert release_large_buffers() is False
