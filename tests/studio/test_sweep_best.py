"""The sweep page's best child and "best so far" (``routes_registry.best_of``): by the goal, on
each child's best primary-metric value, attributed to the child that holds it."""

from __future__ import annotations

from typing import Any

from trainyard.studio.routes_registry import best_of


def _child(run_id: str, best: float | None, end: float | None) -> dict[str, Any]:
    return {"run_id": run_id, "best_primary_metric": best, "end_time": end}


def test_minimize_keeps_the_lowest_and_names_its_child() -> None:
    children = [
        _child("c0", 0.5, 3.0),
        _child("c1", 0.2, 1.0),
        _child("c2", None, 2.0),  # ended without the metric
        _child("c3", 0.1, None),  # still running: best overall, not yet "so far"
    ]
    found = best_of(children, "minimize")
    assert found["best"] == {"run_id": "c3", "value": 0.1}
    assert found["best_so_far"] == [
        {"after": "c1", "run_id": "c1", "value": 0.2},
        {"after": "c2", "run_id": "c1", "value": 0.2},
        {"after": "c0", "run_id": "c1", "value": 0.2},
    ]


def test_maximize_and_nothing_logged() -> None:
    children = [_child("a", 0.4, 1.0), _child("b", 0.9, 2.0)]
    assert best_of(children, "maximize")["best_so_far"][-1] == {
        "after": "b",
        "run_id": "b",
        "value": 0.9,
    }
    assert best_of([_child("a", None, 1.0)], "maximize") == {"best": None, "best_so_far": []}
