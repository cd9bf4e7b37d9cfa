"""The shipped TrackingStore conformance suite, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from trainyard._store.sql.store import SqlTrackingStore
from trainyard.testing.store import TrackingStoreConformance, run_tracking_store_conformance


class TestSqliteConformance(TrackingStoreConformance):
    @pytest.fixture
    def store(self, sqlite_url: str) -> SqlTrackingStore:
        return SqlTrackingStore(sqlite_url)


@pytest.mark.postgres
class TestPostgresConformance(TrackingStoreConformance):
    @pytest.fixture
    def store(self, postgres_url: str) -> SqlTrackingStore:
        return SqlTrackingStore(postgres_url)


def test_runner_without_pytest_collection(tmp_path: Path) -> None:
    counter = iter(range(1000))

    def fresh() -> SqlTrackingStore:
        return SqlTrackingStore(f"sqlite:///{tmp_path / f'{next(counter)}.db'}")

    picked = [
        "test_properties_are_add_only",
        "test_list_runs_newest_first",
        "test_duplicate_run_id",
    ]
    assert run_tracking_store_conformance(fresh, only=picked) == 3


def test_runner_names_the_failing_test(tmp_path: Path) -> None:
    class Broken(SqlTrackingStore):
        def remove_tags(self, run_id: str, keys: Sequence[str]) -> None:
            return None  # forgets to delete anything

    with pytest.raises(AssertionError) as info:
        run_tracking_store_conformance(
            lambda: Broken(f"sqlite:///{tmp_path / 'b.db'}"), only=["test_tags_are_mutable"]
        )
    assert "test_tags_are_mutable" in "".join(info.value.__notes__)
