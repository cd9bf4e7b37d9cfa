"""What the SQL store keeps beside metric chunks: their summaries (``ty_metric_summaries``) and each
run's latest values (``ty_run_latest_metrics``) — written with the chunks, and for a database from
before them, filled by migrations 0007 and 0008 exactly as writing would have."""

from __future__ import annotations

import math
import time
from array import array
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select

from trainyard._lifecycle import RunStatus
from trainyard._store import summary
from trainyard._store.entities import MetricChunk, NewRun
from trainyard._store.sql import schema as s
from trainyard._store.sql.engine import _MIGRATIONS, get_engine
from trainyard._store.sql.store import SqlTrackingStore
from trainyard._tracking.codec import json_chunk, numeric_chunk
from trainyard.testing.fixtures import BACKENDS


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "fresh_postgres_url"
    url: str = request.getfixturevalue(name)
    return url


def _numbers(name: str, values: list[float], steps: bool = True, lo: int = 0) -> MetricChunk:
    n = len(values)
    return numeric_chunk(
        name,
        array("d", values),
        array("d", (1.7e9 + (lo + i) * 0.5 for i in range(n))),
        array("q", range(lo, lo + n)) if steps else None,
        all(type(v) is int for v in values),
    )


def _wavy(n: int, lo: int = 0) -> list[float]:
    out = [math.sin((lo + i) / 50.0) * (1 + (lo + i) % 7) for i in range(n)]
    for at in range(3, n, 611):
        out[at] = float("nan")
    if n > 700:
        out[700] = float("inf")
        out[2 * summary.BLOCK : 3 * summary.BLOCK] = [float("nan")] * summary.BLOCK
    return out


#: Per run: the chunks it logs, batch by batch.
_HISTORY: dict[str, list[list[MetricChunk]]] = {
    "long": [
        [_numbers("loss", _wavy(5000)), json_chunk("note", "scalar", [("hi", None, 1.0)])],
        [_numbers("loss", _wavy(300, 5000), steps=False), _numbers("acc", [1, 2, 3])],
    ],
    "shadowed": [[_numbers("acc", [0.25, 0.75])], [json_chunk("acc", "scalar", [("x", 1, 2.0)])]],
    "nan": [[_numbers("acc", [0.5, float("nan")])]],
    "table": [[json_chunk("acc", "table", [({"a": 1}, None, 1.0)]), _numbers("acc", [0.9])]],
    "quiet": [],
}


def test_python_and_numpy_summaries_agree() -> None:
    for n in (1, summary.BLOCK - 1, summary.BLOCK, summary.NUMPY_FROM + 1, 5000):
        for steps in (True, False):
            chunk = _numbers("m", _wavy(n), steps=steps)
            fast = summary.summarize(chunk)
            saved = summary.NUMPY_FROM
            summary.NUMPY_FROM = 10**12
            try:
                slow = summary.summarize(chunk)
            finally:
                summary.NUMPY_FROM = saved
            assert fast is not None and slow is not None
            a, b = array("d"), array("d")
            a.frombytes(fast["blocks"])
            b.frombytes(slow["blocks"])
            assert len(a) == summary.block_count(n) * summary.FIELDS
            assert all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True)), n
            assert {k: v for k, v in fast.items() if k != "blocks"} == {
                k: v for k, v in slow.items() if k != "blocks"
            }


def test_a_summary_is_each_blocks_min_max_and_last() -> None:
    values = _wavy(3 * summary.BLOCK + 10)
    found = summary.summarize(_numbers("m", values, lo=0))
    assert found is not None
    blocks = array("d")
    blocks.frombytes(found["blocks"])
    for b in range(summary.block_count(len(values))):
        part = values[b * summary.BLOCK : (b + 1) * summary.BLOCK]
        low, high, last, step, _at = blocks[b * summary.FIELDS : (b + 1) * summary.FIELDS]
        clean = [v for v in part if v == v]
        if clean:
            assert (low, high) == (min(clean), max(clean))
        else:  # every value NaN
            assert low != low and high != high
        assert step == b * summary.BLOCK + len(part) - 1
        assert last == part[-1] or (last != last and part[-1] != part[-1])
    assert summary.summarize(json_chunk("m", "scalar", [("x", None, 1.0)])) is None


def _log_history(store: SqlTrackingStore, exp_id: int, suffix: str) -> dict[str, str]:
    ids = {}
    for key, batches in _HISTORY.items():
        run_id = f"{key}_{suffix}"
        store.create_run(NewRun(run_id=run_id, experiment_id=exp_id, run_type="interactive"))
        store.update_run_status(run_id, RunStatus.RUNNING.value)
        for batch in batches:
            store.log_metric_chunks(run_id, batch)
        ids[key] = run_id
        time.sleep(0.002)
    return ids


def _upgrade(url: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with get_engine(url).connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


def _seed_before_summaries(url: str) -> dict[str, str]:
    """Runs and chunks written as a trainyard at revision 0006 wrote them."""
    _upgrade(url, "0006")
    ids = {}
    now = time.time()
    with get_engine(url).begin() as conn:
        conn.execute(insert(s.workspaces).values(id="w-old", name="old", created_at=now))
        exp_id = conn.execute(
            insert(s.experiments)
            .values(workspace_id="w-old", name="e", archived=False, created_at=now, run_counter=0)
            .returning(s.experiments.c.id)
        ).scalar_one()
        for i, (key, batches) in enumerate(_HISTORY.items()):
            pk = conn.execute(
                insert(s.runs)
                .values(
                    run_id=f"{key}_old",
                    experiment_id=exp_id,
                    number=i + 1,
                    run_type="interactive",
                    status="Running",
                    created_at=now + i,
                )
                .returning(s.runs.c.pk)
            ).scalar_one()
            for batch in batches:
                for c in batch:
                    conn.execute(
                        insert(s.metric_chunks).values(
                            run_pk=pk,
                            name=c.name,
                            kind=c.kind,
                            dtype=c.dtype,
                            count=c.count,
                            timestamps=c.timestamps,
                            vals=c.values,
                            steps=c.steps,
                            data=c.data,
                        )
                    )
            ids[key] = f"{key}_old"
    return ids


def _latest_rows(store: SqlTrackingStore, run_id: str) -> list[tuple[Any, ...]]:
    lm = s.run_latest_metrics
    q = (
        select(lm.c.name, lm.c.value, lm.c["last"], lm.c.dtype, lm.c.step, lm.c.shadowed)
        .join(s.runs, s.runs.c.pk == lm.c.run_pk)
        .where(s.runs.c.run_id == run_id)
        .order_by(lm.c.name)
    )
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(q).all()]


def test_the_migrations_fill_summaries_and_latest_values_as_writing_does(
    empty_db_url: str,
) -> None:
    old = _seed_before_summaries(empty_db_url)
    store = SqlTrackingStore(empty_db_url)  # migrates 0006 → head
    exp = store.get_or_create_experiment(store.ensure_workspace("new").id, "e")
    new = _log_history(store, exp.id, "new")
    for key in _HISTORY:
        for name in ("loss", "acc", "note"):
            before = store.chart_summaries(old[key], name)
            after = store.chart_summaries(new[key], name)
            strip = [(c.count, c.first_step, c.last_step, c.blocks) for c in before]
            assert strip == [(c.count, c.first_step, c.last_step, c.blocks) for c in after]
            assert all(c.blocks is not None for c in before)
        assert _latest_rows(store, old[key]) == _latest_rows(store, new[key]), key
    latest_old = store.latest_metrics(list(old.values()))
    latest_new = store.latest_metrics(list(new.values()))
    assert _by_key(latest_old, "_old") == _by_key(latest_new, "_new")
    assert latest_new[new["long"]] == {"loss": _wavy(300, 5000)[-1], "acc": 3}
    assert type(latest_new[new["long"]]["acc"]) is int
    assert "acc" not in latest_new.get(new["shadowed"], {})  # its newest scalar chunk is text
    assert math.isnan(latest_new[new["nan"]]["acc"])
    for ids in (old, new):
        ws = store.get_run(ids["long"]).workspace_id
        up = store.search_runs(ws, order_by="metric:acc", descending=False)
        # shadowed still sorts on its last number (0.75); NaN has none; newest first among those
        assert [r.run_id for r in up.runs] == [ids[k] for k in ("shadowed", "table", "long")] + [
            ids[k] for k in ("quiet", "nan")
        ]


def _by_key(found: dict[str, dict[str, Any]], suffix: str) -> dict[str, Any]:
    """``latest_metrics`` keyed by history key, NaN as a string (NaN equals nothing)."""
    return {
        run_id.removesuffix(suffix): {
            k: ("nan", type(v)) if isinstance(v, float) and v != v else (v, type(v))
            for k, v in values.items()
        }
        for run_id, values in found.items()
    }


def test_a_number_after_text_is_the_latest_again(store_url: str) -> None:
    store = SqlTrackingStore(store_url)
    exp = store.get_or_create_experiment(store.ensure_workspace("again").id, "e")
    store.create_run(NewRun(run_id="again_1", experiment_id=exp.id, run_type="interactive"))
    store.update_run_status("again_1", RunStatus.RUNNING.value)
    store.log_metric_chunks("again_1", [json_chunk("m", "scalar", [("x", None, 1.0)])])
    assert store.latest_metrics(["again_1"]) == {}
    page = store.search_runs(exp.workspace_id, order_by="metric:m")
    assert [r.run_id for r in page.runs] == ["again_1"]  # no value: still listed, last
    store.log_metric_chunks("again_1", [_numbers("m", [4.0, 5.0])])
    assert store.latest_metrics(["again_1"]) == {"again_1": {"m": 5.0}}
    assert _latest_rows(store, "again_1")[0][4] == 1  # the step of the last point
