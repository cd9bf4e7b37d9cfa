"""The REST artifact store passes the ArtifactStore conformance suite against a live server."""

from __future__ import annotations

import pytest

from trainyard._store.rest.artifacts import RestArtifactStore
from trainyard._store.rest.tracking import RestTrackingStore
from trainyard._store.rest.transport import Transport
from trainyard.testing.artifacts import ArtifactStoreConformance
from trainyard.testing.fixtures import unique_name
from trainyard.testing.server import LiveServer


class TestRestArtifactsConformance(ArtifactStoreConformance):
    @pytest.fixture
    def store(self, sqlite_server: LiveServer) -> RestArtifactStore:
        transport = Transport(sqlite_server.url, sqlite_server.admin_token)
        name = unique_name("ws")
        RestTrackingStore(sqlite_server.url, transport=transport).ensure_workspace(name)
        return RestArtifactStore(transport, name)
