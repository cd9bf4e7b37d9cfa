"""A live server per test session and store kind (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trainyard.testing.server import LiveServer, start_server


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("server-sqlite")
    server = start_server(f"sqlite:///{root / 'ty.db'}", root / "files")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("server-pg")
    server = start_server(postgres_url, root / "files")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def live_server(request: pytest.FixtureRequest) -> LiveServer:
    if request.param == "postgres":
        return request.getfixturevalue("postgres_server")  # type: ignore[no-any-return]
    return request.getfixturevalue("sqlite_server")  # type: ignore[no-any-return]
