"""The REST store passes the TrackingStore conformance suite against a live server (SQLite and
PostgreSQL behind it)."""

from __future__ import annotations

import pytest

from trainyard._store.base import TrackingStore
from trainyard._store.rest.tracking import RestTrackingStore
from trainyard._store.sql.store import SqlTrackingStore
from trainyard.testing.server import LiveServer
from trainyard.testing.store import TrackingStoreConformance


class TestRestStoreConformance(TrackingStoreConformance):
    @pytest.fixture
    def store(self, live_server: LiveServer) -> RestTrackingStore:
        return RestTrackingStore(live_server.url, live_server.admin_token)

    @pytest.fixture(autouse=True)
    def _server(self, live_server: LiveServer) -> None:
        self.live = live_server

    def backdate_run_end(self, store: TrackingStore, run_id: str, seconds: float) -> None:
        # The server's own database, as the SQL store's default hook does.
        super().backdate_run_end(SqlTrackingStore(self.live.store_url), run_id, seconds)
