"""Conformance suite that every :class:`~trainyard._store.base.TrackingStore` must pass.

Subclass :class:`TrackingStoreConformance` and provide a ``store`` fixture (as Optuna's
``pytest_storages`` does); the SQL store runs it on SQLite and PostgreSQL, and a REST store will run
the same tests::

    import pytest
    from trainyard._store.sql.store import SqlTrackingStore
    from trainyard.testing.store import TrackingStoreConformance

    class TestSqliteConformance(TrackingStoreConformance):
        @pytest.fixture
        def store(self, sqlite_url):
            return SqlTrackingStore(sqlite_url)

or without pytest's collection::

    run_tracking_store_conformance(lambda: SqlTrackingStore(f"sqlite:///{tempfile.mkdtemp()}/t.db"))

The store need not be empty: every test works in workspaces with fresh random names. Tests that need
a terminal run *older than the late-flush grace period* call :meth:`~TrackingStoreConformance.
backdate_run_end`; override it for stores other than the SQL one (or let those tests skip).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator

import pytest

from trainyard._store.base import TrackingStore
from trainyard.testing.store._base import ConformanceBase
from trainyard.testing.store._metrics import MetricsConformance
from trainyard.testing.store._registry import RegistryConformance
from trainyard.testing.store._runs import RunsConformance
from trainyard.testing.store._search import SearchConformance

__all__ = ["ConformanceBase", "TrackingStoreConformance", "run_tracking_store_conformance"]


class TrackingStoreConformance(
    RunsConformance, SearchConformance, MetricsConformance, RegistryConformance
):
    """The behaviour every ``TrackingStore`` shares; subclass it and provide a ``store`` fixture.

    Example::

        class TestMyStore(TrackingStoreConformance):
            @pytest.fixture
            def store(self):
                return MyStore.connect()
    """


def _conformance_tests(
    only: Iterable[str] | None = None,
) -> Iterator[tuple[str, Callable[..., None]]]:
    wanted = set(only) if only is not None else None
    for name, func in inspect.getmembers(TrackingStoreConformance, inspect.isfunction):
        if name.startswith("test_") and (wanted is None or name in wanted):
            yield name, func


def run_tracking_store_conformance(
    store_factory: Callable[[], TrackingStore], only: Iterable[str] | None = None
) -> int:
    """Run the suite without pytest's collection; return how many tests passed.

    ``store_factory`` is called once per test. ``only`` restricts the run to those test names. The
    first failure is raised with a note naming the test. Tests that need a hook the store does not
    support (``pytest.skip``) count as neither passed nor failed.

    Example::

        n = run_tracking_store_conformance(lambda: SqlTrackingStore("sqlite:////tmp/t.db"))
    """
    suite = TrackingStoreConformance()
    passed = 0
    for name, func in _conformance_tests(only):
        store = store_factory()
        try:
            func(suite, store)
        except pytest.skip.Exception:
            continue
        except BaseException as err:
            err.add_note(f"TrackingStore conformance test {name} failed")
            raise
        finally:
            store.close()
        passed += 1
    return passed
