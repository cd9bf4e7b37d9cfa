"""Conformance: metric chunks."""

from __future__ import annotations

import math
from array import array

import pytest

from trainyard._store.base import TrackingStore
from trainyard._tracking.codec import decode, json_chunk, numeric_chunk
from trainyard.exceptions import (
    RunFinishedError,
    RunNotFound,
)
from trainyard.testing.store._base import (
    ConformanceBase,
    _chunk,
    _name,
    _race,
    _same_float,
)


class MetricsConformance(ConformanceBase):
    """Conformance: metric chunks."""

    # -- metrics ------------------------------------------------------------------------------

    def test_metric_chunk_round_trip(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        special = [0.5, math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324]
        chunks = [
            _chunk("special", special),
            _chunk("ints", [1, -2, 2**52, 0]),
            _chunk("stepped", [1.5, 2.5], steps=[10, 20]),
            json_chunk("text", "scalar", [("a", None, 1.0), (True, None, 2.0), (None, None, 3.0)]),
            json_chunk("row", "row", [({"x": 1, "y": math.nan}, None, 1.0)], "a table"),
            json_chunk("lst", "list", [([1, 2.5, "s", -math.inf], None, 1.0)]),
        ]
        store.log_metric_chunks(run.run_id, chunks)
        back = store.get_metric_chunks(run.run_id)
        assert [c.name for c in back] == [c.name for c in chunks]
        for sent, got in zip(chunks, back, strict=True):
            for field in (
                "name",
                "kind",
                "dtype",
                "count",
                "timestamps",
                "values",
                "steps",
                "data",
            ):
                assert getattr(got, field) == getattr(sent, field), (sent.name, field)
            assert got.description == sent.description
        decoded = decode(back)
        values = [p.value for p in decoded["special"][1]]
        assert all(_same_float(a, b) for a, b in zip(values, special, strict=True))
        assert math.copysign(1.0, values[4]) == -1.0
        assert [p.value for p in decoded["ints"][1]] == [1, -2, 2**52, 0]
        assert all(type(p.value) is int for p in decoded["ints"][1])
        assert [(p.step, p.value) for p in decoded["stepped"][1]] == [(10, 1.5), (20, 2.5)]
        assert [p.value for p in decoded["text"][1]] == ["a", True, None]
        row = decoded["row"][1][0].value
        assert row["x"] == 1 and math.isnan(row["y"])
        lst = decoded["lst"][1][0].value
        assert lst[:3] == [1, 2.5, "s"] and lst[3] == -math.inf

    def test_metric_chunks_in_write_order_and_by_name(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        for i in range(5):
            store.log_metric_chunks(run.run_id, [_chunk("a", [float(i)]), _chunk("b", [float(-i)])])
        back = store.get_metric_chunks(run.run_id)
        assert [(c.name, decode([c])[c.name][1][0].value) for c in back] == [
            (n, v) for i in range(5) for n, v in (("a", float(i)), ("b", float(-i)))
        ]
        seqs = [c.seq for c in back]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        only_a = store.get_metric_chunks(run.run_id, ["a"])
        assert [c.name for c in only_a] == ["a"] * 5
        assert store.get_metric_chunks(run.run_id, ["zzz"]) == []
        assert store.get_metric_chunks(run.run_id, []) == []

    def test_huge_metric_chunk(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        n = 500_000
        chunk = numeric_chunk(
            "big",
            array("d", range(n)),
            array("d", range(10**9, 10**9 + n)),
            array("q", range(0, 3 * n, 3)),
            True,
        )
        store.log_metric_chunks(run.run_id, [chunk])
        (got,) = store.get_metric_chunks(run.run_id, ["big"])
        assert got.count == n
        assert (got.values, got.timestamps, got.steps) == (
            chunk.values,
            chunk.timestamps,
            chunk.steps,
        )
        values, steps = array("d"), array("q")
        values.frombytes(got.values or b"")
        steps.frombytes(got.steps or b"")
        assert (len(values), values[-1], steps[-1]) == (n, n - 1, 3 * (n - 1))

    def test_empty_chunk_list_is_a_no_op(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        store.log_metric_chunks(run.run_id, [])
        assert store.get_metric_chunks(run.run_id) == []

    def test_metrics_of_missing_run(self, store: TrackingStore) -> None:
        with pytest.raises(RunNotFound):
            store.log_metric_chunks(_name("nope"), [_chunk("a", [1.0])])
        with pytest.raises(RunNotFound):
            store.get_metric_chunks(_name("nope"))

    def test_concurrent_metric_writers(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")

        def write(i: int) -> None:
            for j in range(10):
                store.log_metric_chunks(run.run_id, [_chunk("m", [float(i * 100 + j)] * 3)])

        _race(8, write)
        chunks = store.get_metric_chunks(run.run_id)
        assert len(chunks) == 80 and sum(c.count for c in chunks) == 240
        values = sorted({p.value for p in decode(chunks)["m"][1]})
        assert values == sorted(float(i * 100 + j) for i in range(8) for j in range(10))

    def test_late_flush_within_grace_is_accepted(self, store: TrackingStore) -> None:
        run = self._run(store, self._experiment(store), status="Running")
        store.update_run_status(run.run_id, "Completed")
        store.log_metric_chunks(run.run_id, [_chunk("late", [1.0])])
        assert [c.name for c in store.get_metric_chunks(run.run_id)] == ["late"]

    def test_terminal_run_past_grace_takes_no_metrics(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        for end in ("Completed", "Failed", "Canceled"):
            run = self._run(store, exp, status="Running")
            store.log_metric_chunks(run.run_id, [_chunk("m", [1.0])])
            store.update_run_status(run.run_id, end)
            self.backdate_run_end(store, run.run_id, 3600)
            before = store.get_metric_chunks(run.run_id)
            with pytest.raises(RunFinishedError):
                store.log_metric_chunks(run.run_id, [_chunk("m", [2.0]), _chunk("n", [3.0])])
            assert store.get_metric_chunks(run.run_id) == before
