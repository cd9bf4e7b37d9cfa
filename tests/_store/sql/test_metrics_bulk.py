"""The SQL store's bulk read of many runs' metric chunks (the MLflow endpoint's search path)."""

from __future__ import annotations

from array import array

from trainyard._store.entities import NewRun
from trainyard._store.sql.store import SqlTrackingStore
from trainyard._tracking.codec import decode_values, numeric_chunk


def test_chunks_of_many_runs_come_back_per_run(store_url: str) -> None:
    store = SqlTrackingStore(store_url)
    ws = store.ensure_workspace("bulk")
    exp = store.get_or_create_experiment(ws.id, "e")
    ids = [f"bulk_{i}" for i in range(3)]
    for run_id in ids:
        store.create_run(NewRun(run_id=run_id, experiment_id=exp.id, run_type="interactive"))
    for i, run_id in enumerate(ids[:2]):
        vals = array("d", [float(i), float(i) + 0.5])
        store.log_metric_chunks(
            run_id, [numeric_chunk("x", vals, array("d", [1.0, 2.0]), None, False)]
        )
    found = store.metric_chunks_of_runs([*ids, "missing", ids[0]])
    assert sorted(found) == ids[:2]
    assert decode_values(found[ids[1]])["x"][1] == [1.0, 1.5]
    assert found[ids[0]] == store.get_metric_chunks(ids[0])
