"""Shared pieces of the TrackingStore conformance suite: helpers and hooks."""

from __future__ import annotations

import math
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from trainyard._lifecycle import RunStatus
from trainyard._store.base import TrackingStore
from trainyard._store.entities import ExperimentInfo, MetricChunk, NewRun, RunInfo
from trainyard._tracking.codec import numeric_chunk

T = TypeVar("T")

_S = RunStatus
#: A path through every pre-terminal status, in v1's typical order.
_TYPICAL_PATH = (
    _S.STARTING,
    _S.PROVISIONING,
    _S.PREPARING,
    _S.QUEUED,
    _S.RUNNING,
    _S.FINALIZING,
    _S.COMPLETED,
)


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _race(n: int, fn: Callable[[int], T]) -> list[T]:
    """Call ``fn(i)`` for ``i`` in ``range(n)`` on ``n`` threads released at the same moment."""
    barrier = threading.Barrier(n)

    def go(i: int) -> T:
        barrier.wait(timeout=30)
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


def _floats(values: Iterable[float]) -> array[float]:
    return array("d", values)


def _chunk(name: str, values: Sequence[float], steps: Sequence[int] | None = None) -> MetricChunk:
    n = len(values)
    return numeric_chunk(
        name,
        _floats(values),
        _floats(1_700_000_000.0 + i for i in range(n)),
        array("q", steps) if steps is not None else None,
        all(type(v) is int for v in values),
    )


def _same_float(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) and type(a) is type(b)


class ConformanceBase:
    """Hooks and helpers shared by the conformance test classes."""

    # -- hooks --------------------------------------------------------------------------------

    @pytest.fixture
    def store(self) -> TrackingStore:
        """Override in the subclass: return the store under test (it need not be empty)."""
        pytest.fail(
            f"{type(self).__name__} must define a `store` fixture returning a TrackingStore"
        )

    def backdate_run_end(self, store: TrackingStore, run_id: str, seconds: float) -> None:
        """Make a terminal run look as if it ended ``seconds`` ago (past the late-flush grace).

        The default handles :class:`~trainyard._store.sql.store.SqlTrackingStore`; other stores
        override it or the tests that need it are skipped.
        """
        from trainyard._store.sql.store import SqlTrackingStore

        if not isinstance(store, SqlTrackingStore):
            pytest.skip(f"{type(store).__name__}: override backdate_run_end to run this test")
        from sqlalchemy import update

        from trainyard._store.sql import schema

        with store.engine.begin() as conn:
            conn.execute(
                update(schema.runs)
                .where(schema.runs.c.run_id == run_id)
                .values(end_time=time.time() - seconds)
            )

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _experiment(store: TrackingStore) -> ExperimentInfo:
        ws = store.ensure_workspace(_name("ws"))
        return store.get_or_create_experiment(ws.id, _name("exp"))

    @staticmethod
    def _run(store: TrackingStore, exp: ExperimentInfo, **kw: Any) -> RunInfo:
        kw.setdefault("run_type", "azureml.scriptrun")
        return store.create_run(NewRun(run_id=_name("run"), experiment_id=exp.id, **kw))

    @staticmethod
    def _snapshot(store: TrackingStore, run_id: str) -> tuple[Any, ...]:
        info = store.get_run(run_id)
        return (
            info,
            store.status_history(run_id),
            [(c.name, c.count, c.values, c.data) for c in store.get_metric_chunks(run_id)],
        )
