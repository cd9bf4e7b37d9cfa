"""Shipped test helpers: a conformance suite per seam, and pytest fixtures for stores and workspaces.

Example::

    # conftest.py
    pytest_plugins = ["trainyard.testing.fixtures"]   # sqlite_url, postgres_url, store_url, workspace

    # test_my_store.py
    from trainyard.testing import TrackingStoreConformance

    class TestMyStore(TrackingStoreConformance):
        @pytest.fixture
        def store(self):
            return MyStore.connect()
"""

from __future__ import annotations

from trainyard.testing.artifacts import ArtifactStoreConformance, run_artifact_store_conformance
from trainyard.testing.fixtures import (
    POSTGRES_URL_ENV,
    postgres_base_url,
    postgres_schema,
    unique_name,
    with_search_path,
)
from trainyard.testing.store import TrackingStoreConformance, run_tracking_store_conformance

__all__ = [  # noqa: RUF022 - plain sorted(), as the public-API test checks
    "ArtifactStoreConformance",
    "POSTGRES_URL_ENV",
    "TrackingStoreConformance",
    "postgres_base_url",
    "postgres_schema",
    "run_artifact_store_conformance",
    "run_tracking_store_conformance",
    "unique_name",
    "with_search_path",
]
