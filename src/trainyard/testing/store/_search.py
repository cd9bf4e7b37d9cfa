"""Conformance: ``search_runs`` (the studio's runs table) and ``latest_metrics``."""

from __future__ import annotations

import time

import pytest

from trainyard._lifecycle import RunStatus
from trainyard._store.base import TrackingStore
from trainyard._store.entities import ExperimentInfo, RunInfo
from trainyard.exceptions import ValidationError
from trainyard.testing.store._base import ConformanceBase, _chunk


class SearchConformance(ConformanceBase):
    """Sorting, filtering and paging runs in the store, and the last value of their metrics."""

    def _five(self, store: TrackingStore) -> tuple[ExperimentInfo, list[RunInfo]]:
        exp = self._experiment(store)
        made = []
        for i, (lr, user) in enumerate(
            [("0.3", "ann"), ("0.1", "bob"), (None, "ann"), ("0.2", "bob"), ("0.5", "ann")]
        ):
            run = self._run(
                store,
                exp,
                display_name=f"trial {i}",
                submitted_by=user,
                properties={"lr": lr} if lr else {},
                tags={"i": str(i)},
            )
            made.append(run)
            time.sleep(0.002)  # distinct creation times
        return exp, made

    def test_search_runs_default_is_newest_first_with_total(self, store: TrackingStore) -> None:
        exp, made = self._five(store)
        page = store.search_runs(exp.workspace_id, limit=2)
        assert page.total == 5
        assert [r.run_id for r in page.runs] == [made[4].run_id, made[3].run_id]
        rest = store.search_runs(exp.workspace_id, offset=2, limit=10)
        assert [r.run_id for r in rest.runs] == [r.run_id for r in reversed(made[:3])]
        oldest = store.search_runs(exp.workspace_id, descending=False, limit=1)
        assert oldest.runs[0].run_id == made[0].run_id

    def test_search_runs_sorts_on_property_with_missing_last(self, store: TrackingStore) -> None:
        exp, made = self._five(store)
        up = store.search_runs(exp.workspace_id, order_by="property:lr", descending=False)
        assert [r.properties.get("lr") for r in up.runs] == ["0.1", "0.2", "0.3", "0.5", None]
        down = store.search_runs(exp.workspace_id, order_by="property:lr")
        assert [r.properties.get("lr") for r in down.runs] == ["0.5", "0.3", "0.2", "0.1", None]
        by_tag = store.search_runs(exp.workspace_id, order_by="tag:i", descending=False, limit=2)
        assert [r.run_id for r in by_tag.runs] == [made[0].run_id, made[1].run_id]

    def test_search_runs_sorts_numbers_as_numbers_then_text(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        for value in ("10", "2", "abc", "0.5", None, "-1e2", "b"):
            self._run(store, exp, properties={"p": value} if value else {}, tags={})
            time.sleep(0.002)
        up = store.search_runs(exp.workspace_id, order_by="property:p", descending=False)
        assert [r.properties.get("p") for r in up.runs] == [
            "-1e2", "0.5", "2", "10", "abc", "b", None
        ]  # fmt: skip
        down = store.search_runs(exp.workspace_id, order_by="property:p", limit=3)
        assert [r.properties.get("p") for r in down.runs] == ["10", "2", "0.5"]
        assert down.total == 7

    def test_search_runs_sorts_on_a_metric_last_value(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        made = []
        for values in ([0.9, 0.2], [0.5], None, [0.1, 0.7], [float("nan")], [3.0, 1.0]):
            run = self._run(store, exp)
            store.update_run_status(run.run_id, RunStatus.RUNNING.value)
            if values is not None:
                store.log_metric_chunks(run.run_id, [_chunk("acc", values)])
            store.log_metric_chunks(run.run_id, [_chunk("other", [100.0])])
            made.append(run.run_id)
            time.sleep(0.002)
        up = store.search_runs(exp.workspace_id, order_by="metric:acc", descending=False)
        # last values 0.2, 0.5, -, 0.7, NaN, 1.0; no value (and NaN) last, newest first
        assert [r.run_id for r in up.runs] == [made[i] for i in (0, 1, 3, 5, 4, 2)]
        down = store.search_runs(exp.workspace_id, order_by="metric:acc", offset=1, limit=2)
        assert [r.run_id for r in down.runs] == [made[3], made[1]] and down.total == 6
        assert store.search_runs(exp.workspace_id, order_by="metric:none").total == 6
        with pytest.raises(ValidationError):
            store.search_runs(exp.workspace_id, order_by="metric:")

    def test_search_runs_filters(self, store: TrackingStore) -> None:
        exp, made = self._five(store)
        ws = exp.workspace_id
        assert store.search_runs(ws, submitted_by="bob").total == 2
        assert [r.run_id for r in store.search_runs(ws, text="TRIAL 2").runs] == [made[2].run_id]
        assert store.search_runs(ws, text="100%_").total == 0
        assert store.search_runs(ws, properties={"lr": "0.2"}).runs[0].run_id == made[3].run_id
        store.update_run_status(made[1].run_id, RunStatus.FAILED.value)
        failed = store.search_runs(ws, statuses=["Failed"])
        assert [r.run_id for r in failed.runs] == [made[1].run_id]
        other = self._experiment(store)
        assert store.search_runs(other.workspace_id).total == 0

    def test_search_runs_children_and_duration(self, store: TrackingStore) -> None:
        exp, made = self._five(store)
        parent = made[0].run_id
        kids = [self._run(store, exp, parent_run_id=parent) for _ in range(2)]
        ws = exp.workspace_id
        assert store.search_runs(ws).total == 5
        assert store.search_runs(ws, include_children=True).total == 7
        assert {r.run_id for r in store.search_runs(ws, parent_run_id=parent).runs} == {
            k.run_id for k in kids
        }
        for run_id in (made[1].run_id, made[2].run_id):
            store.update_run_status(run_id, RunStatus.RUNNING.value)
        time.sleep(0.05)
        store.update_run_status(made[2].run_id, RunStatus.COMPLETED.value)
        longest = store.search_runs(ws, order_by="duration", limit=5)
        assert longest.runs[0].run_id == made[1].run_id  # still running: its duration grows
        assert longest.runs[1].run_id == made[2].run_id
        assert longest.runs[2].start_time is None

    def test_search_runs_refuses_bad_arguments(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        for kw in ({"order_by": "password"}, {"order_by": "tag:"}, {"limit": 0}, {"offset": -1}):
            with pytest.raises(ValidationError):
                store.search_runs(exp.workspace_id, **kw)

    def test_latest_metrics(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        a, b, c = (self._run(store, exp) for _ in range(3))
        for run in (a, b):
            store.update_run_status(run.run_id, RunStatus.RUNNING.value)
        store.log_metric_chunks(a.run_id, [_chunk("loss", [3.0, 2.0]), _chunk("acc", [1, 2])])
        store.log_metric_chunks(a.run_id, [_chunk("loss", [1.5])])
        store.log_metric_chunks(b.run_id, [_chunk("loss", [float("inf")])])
        found = store.latest_metrics([a.run_id, b.run_id, c.run_id, "no-such-run"])
        assert found == {a.run_id: {"loss": 1.5, "acc": 2}, b.run_id: {"loss": float("inf")}}
        assert type(found[a.run_id]["acc"]) is int

    def test_chart_chunks_hold_what_a_chart_needs(self, store: TrackingStore) -> None:
        exp = self._experiment(store)
        run = self._run(store, exp)
        store.update_run_status(run.run_id, RunStatus.RUNNING.value)
        store.log_metric_chunks(
            run.run_id, [_chunk("loss", [3.0, 2.0], steps=[10, 20]), _chunk("acc", [1.0])]
        )
        store.log_metric_chunks(run.run_id, [_chunk("loss", [1.0])])
        full = store.get_metric_chunks(run.run_id, ["loss"])
        by_step = store.chart_chunks(run.run_id, "loss", "step")
        by_time = store.chart_chunks(run.run_id, "loss", "time")
        assert [c.values for c in by_step] == [c.values for c in full]
        assert [c.steps for c in by_step] == [c.steps for c in full]
        assert [c.timestamps for c in by_time] == [c.timestamps for c in full]
        assert [c.count for c in by_time] == [2, 1]
        assert store.chart_chunks(run.run_id, "nothing", "step") == []
        seen = by_step[0].seq
        newer = store.chart_chunks(run.run_id, "loss", "step", after_seq=seen)
        assert [c.count for c in newer] == [1] and newer[0].seq > seen
        assert store.chart_chunks(run.run_id, "loss", "time", after_seq=newer[0].seq) == []

    def test_search_runs_by_metric_pages_through_runs_with_and_without_values(
        self, store: TrackingStore
    ) -> None:
        exp = self._experiment(store)
        made = []
        # ties (0.5 twice), no value, NaN, +inf, an update that lowers a run's last value
        for values in ([0.5], None, [0.2, 0.9], [0.5], [float("nan")], None, [float("inf")], [7]):
            run = self._run(store, exp)
            store.update_run_status(run.run_id, RunStatus.RUNNING.value)
            if values is not None:
                store.log_metric_chunks(run.run_id, [_chunk("m", values)])
            made.append(run.run_id)
            time.sleep(0.002)
        store.log_metric_chunks(made[7], [_chunk("m", [0.1])])  # 7 → 0.1
        no_value = [made[i] for i in (6, 5, 4, 1)]  # newest first
        up = [made[i] for i in (7, 3, 0, 2)] + no_value  # ties newest first
        down = [made[i] for i in (2, 3, 0, 7)] + no_value
        ws = exp.workspace_id
        for descending, expected in ((False, up), (True, down)):
            for size in (1, 2, 3, 8):
                got: list[str] = []
                for offset in range(0, 9, size):
                    page = store.search_runs(
                        ws, order_by="metric:m", descending=descending, offset=offset, limit=size
                    )
                    assert page.total == 8
                    got.extend(r.run_id for r in page.runs)
                assert got == expected, (descending, size)
        store.update_run_status(made[3], RunStatus.FAILED.value)
        failed = store.search_runs(ws, order_by="metric:m", statuses=["Running"], limit=3)
        assert [r.run_id for r in failed.runs] == [made[2], made[0], made[7]]
        assert failed.total == 7

    def test_chart_summaries_describe_the_numeric_chunks(self, store: TrackingStore) -> None:
        from trainyard._store.summary import BLOCK, FIELDS, summarize
        from trainyard._tracking.codec import json_chunk
        from trainyard.exceptions import RunNotFound

        exp = self._experiment(store)
        run = self._run(store, exp)
        store.update_run_status(run.run_id, RunStatus.RUNNING.value)
        long = [float(i % 97) for i in range(3 * BLOCK + 5)]
        long[7], long[BLOCK + 1] = float("nan"), float("-inf")
        store.log_metric_chunks(
            run.run_id,
            [
                _chunk("loss", long, steps=list(range(10, 10 + len(long)))),
                _chunk("acc", [1.0]),
                json_chunk("loss", "scalar", [("text", None, 1.0)]),
            ],
        )
        store.log_metric_chunks(run.run_id, [_chunk("loss", [2.0, 1.0])])  # no steps
        chunks = [c for c in store.get_metric_chunks(run.run_id, ["loss"]) if c.dtype != "j"]
        found = store.chart_summaries(run.run_id, "loss")
        assert [f.seq for f in found] == [c.seq for c in chunks]
        assert [f.count for f in found] == [len(long), 2]
        for f, c in zip(found, chunks, strict=True):
            expected = summarize(c)
            assert expected is not None
            assert f.blocks == expected["blocks"]
            assert (f.first_step, f.last_step) == (expected["first_step"], expected["last_step"])
            assert (f.first_time, f.last_time) == (expected["first_time"], expected["last_time"])
        assert (found[0].first_step, found[0].last_step) == (10, 9 + len(long))
        assert found[1].first_step is None and len(found[1].blocks or b"") == FIELDS * 8
        assert len(found[0].blocks or b"") == 4 * FIELDS * 8
        newer = store.chart_summaries(run.run_id, "loss", after_seq=found[0].seq)
        assert [f.seq for f in newer] == [found[1].seq]
        assert store.chart_summaries(run.run_id, "nothing") == []
        with pytest.raises(RunNotFound):
            store.chart_summaries("no-such-run", "loss")
