"""List answers are cut into cursor pages on the wire (by count and by bytes); the REST stores
follow the cursors, so callers still get whole lists."""

from __future__ import annotations

import httpx
import pytest

from trainyard._store.rest import paging
from trainyard._store.rest.artifacts import RestArtifactStore
from trainyard._store.rest.tracking import RestTrackingStore
from trainyard.testing.fixtures import unique_name
from trainyard.testing.server import LiveServer


def _post(server: LiveServer, op: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/store/{op}",
        json=body,
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=30,
    )


def test_a_list_comes_in_pages_and_the_client_follows_them(sqlite_server: LiveServer) -> None:
    store = RestTrackingStore(sqlite_server.url, sqlite_server.admin_token)
    ws = store.ensure_workspace(unique_name("pages"))
    names = sorted(f"exp-{i:03d}" for i in range(23))
    for name in names:
        store.get_or_create_experiment(ws.id, name)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        answer = _post(
            sqlite_server,
            "list_experiments",
            {"workspace_id": ws.id, paging.PAGE_CURSOR: cursor, paging.PAGE_SIZE: 5},
        ).json()
        assert len(answer["result"]) <= 5
        seen += [e["name"] for e in answer["result"]]
        pages += 1
        cursor = answer[paging.NEXT]
        if cursor is None:
            break
    assert pages == 5 and sorted(seen) == names and len(seen) == len(set(seen))
    store.page_size = 4
    assert sorted(e.name for e in store.list_experiments(ws.id)) == names


def test_bad_page_arguments_are_typed_400s(sqlite_server: LiveServer) -> None:
    ws = RestTrackingStore(sqlite_server.url, sqlite_server.admin_token).ensure_workspace(
        unique_name("badpage")
    )
    for extra in (
        {paging.PAGE_CURSOR: "not-a-cursor!"},
        {paging.PAGE_SIZE: 0},
        {paging.PAGE_SIZE: paging.MAX_PAGE + 1},
        {paging.PAGE_SIZE: "5"},
    ):
        resp = _post(sqlite_server, "list_experiments", {"workspace_id": ws.id, **extra})
        assert resp.status_code == 400, (extra, resp.text)
        assert resp.json()["error"]["code"] == "INVALID_VALUE"


def test_large_items_are_paged_by_bytes(sqlite_server: LiveServer) -> None:
    from array import array

    from trainyard._store.entities import NewRun
    from trainyard._tracking.codec import numeric_chunk

    store = RestTrackingStore(sqlite_server.url, sqlite_server.admin_token)
    ws = store.ensure_workspace(unique_name("bytes"))
    exp = store.get_or_create_experiment(ws.id, "big")
    run = store.create_run(
        NewRun(run_id=unique_name("big"), experiment_id=exp.id, run_type="azureml.interactive")
    )
    n = 200_000  # 3.2 MB packed per chunk, ~4.3 MB as JSON: two chunks overflow one 8 MB page
    for name in ("a", "b", "c"):
        vals = array("d", (float(i) for i in range(n)))
        chunk = numeric_chunk(name, vals, array("d", [1.0] * n), None, False)
        store.log_metric_chunks(run.run_id, [chunk])
    answer = _post(sqlite_server, "get_metric_chunks", {"run_id": run.run_id}).json()
    assert len(answer["result"]) < 3 and answer[paging.NEXT]
    chunks = store.get_metric_chunks(run.run_id)
    assert sorted(c.name for c in chunks) == ["a", "b", "c"]
    assert sum(c.count for c in chunks) == 3 * n


def test_artifact_listings_are_paged(sqlite_server: LiveServer) -> None:
    from trainyard._store.rest.transport import Transport

    name = unique_name("files")
    RestTrackingStore(sqlite_server.url, sqlite_server.admin_token).ensure_workspace(name)
    artifacts = RestArtifactStore(Transport(sqlite_server.url, sqlite_server.admin_token), name)
    paths = [f"runs/r/outputs/f{i:04d}.txt" for i in range(paging.DEFAULT_PAGE + 37)]
    for p in paths:
        artifacts.write_bytes(p, b"x")
    first = httpx.get(
        f"{sqlite_server.url}/api/v1/workspaces/{name}/artifacts-list",
        params={"prefix": "runs/r"},
        headers={"Authorization": f"Bearer {sqlite_server.admin_token}"},
        timeout=30,
    ).json()
    assert len(first["paths"]) == paging.DEFAULT_PAGE and first[paging.NEXT]
    assert sorted(artifacts.list("runs/r")) == paths


@pytest.mark.parametrize("size", [1, 7, paging.MAX_PAGE])
def test_cut_covers_every_item_once(size: int) -> None:
    items = list(range(103))
    got: list[int] = []
    cursor = None
    while True:
        page, cursor = paging.cut(items, cursor, size)
        got += page
        if cursor is None:
            break
    assert got == items
