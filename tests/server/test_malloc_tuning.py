"""The server's malloc tuning leaves operators' own MALLOC_* settings alone."""

from __future__ import annotations

import pytest

from trainyard.server.main import release_large_buffers


def test_operator_malloc_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert release_large_buffers() is False


def test_glibc_is_found_by_its_symbols(monkeypatch: pytest.MonkeyPatch) -> None:
    """Applied where the C library is glibc (asked of the C library itself, not of the OS name)."""
    import os

    for name in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(name)
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):
        glibc = False
    assert release_large_buffers() is glibc
