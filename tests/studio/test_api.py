"""The studio's JSON API through the real ``trainyard ui`` process: typed errors that say what to
do, the path-safety choke point on file downloads, the Host check, paging and filtering."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Studio


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_runs_paging_and_filters(studio: Studio) -> None:
    api = f"{studio.url}api/w/{studio.ws_name}/runs"
    status, first = _get(f"{api}?limit=2")
    assert status == 200 and len(first["runs"]) == 2 and first["total"] >= 6
    _, second = _get(f"{api}?limit=2&offset=2")
    assert not {r["run_id"] for r in first["runs"]} & {r["run_id"] for r in second["runs"]}
    _, failed = _get(f"{api}?status=Failed")
    assert [r["run_id"] for r in failed["runs"]] == [studio.failed_run]
    _, found = _get(f"{api}?property.lr=0.05")
    assert [r["run_id"] for r in found["runs"]] == [studio.metrics_run]
    assert found["runs"][0]["metrics"]["loss"] == pytest.approx(1 / 500)


@pytest.mark.parametrize(
    ("path", "status", "code", "says"),
    [
        ("runs?sort=password", 400, "INVALID_VALUE", "Cannot sort runs on"),
        ("runs/no-such-run", 404, "RUN_NOT_FOUND", "no-such-run"),
        ("series?name=loss&run=x&points=1", 400, "INVALID_VALUE", "points must be"),
        ("nothing-here", 404, "NOT_FOUND", "no API route"),
    ],
)
def test_typed_errors(studio: Studio, path: str, status: int, code: str, says: str) -> None:
    got, body = _get(f"{studio.url}api/w/{studio.ws_name}/{path}")
    assert got == status, body
    assert body["error"]["code"] == code and says in body["error"]["message"]


def test_other_workspace_is_refused(studio: Studio) -> None:
    got, body = _get(f"{studio.url}api/w/someone-else/experiments")
    assert got == 403 and "no role" in body["error"]["message"]


@pytest.mark.parametrize("bad", ["../../trainyard.db", "/etc/passwd", "outputs/..%2F..%2Fx"])
def test_file_download_refuses_unsafe_paths(studio: Studio, bad: str) -> None:
    url = f"{studio.url}api/w/{studio.ws_name}/runs/{studio.metrics_run}/file?path={bad}"
    got, body = _get(url)
    assert got in (400, 404), body
    assert body["error"]["code"] in ("UNSAFE_PATH", "ARTIFACT_NOT_FOUND")


def test_file_download(studio: Studio) -> None:
    url = (
        f"{studio.url}api/w/{studio.ws_name}/runs/{studio.metrics_run}/file?path=outputs/model.txt"
    )
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert resp.read().startswith(b"\x89PNG")


def test_foreign_host_header_is_refused(studio: Studio) -> None:
    got, _ = _get(f"{studio.url}api/session", headers={"Host": "evil.example.com"})
    assert got == 403


def test_runs_sort_numerically_and_by_metric(studio: Studio) -> None:
    from trainyard.core import Experiment

    exp = Experiment(studio.ws, "sorting")
    made = {}
    for epochs, score in (("2", 0.5), ("10", 0.25), ("100", 0.75), ("x", None)):
        run = exp.start_logging()
        run.add_properties({"epochs": epochs})
        if score is not None:
            run.log("score", score)
        run.complete()
        made[epochs] = run.id
    api = f"{studio.url}api/w/{studio.ws_name}/runs?experiment={exp.id}"
    _, up = _get(f"{api}&sort=property:epochs&desc=0")
    assert [r["properties"]["epochs"] for r in up["runs"]] == ["2", "10", "100", "x"]
    _, down = _get(f"{api}&sort=metric:score&desc=1")
    assert [r["run_id"] for r in down["runs"]] == [made[k] for k in ("100", "2", "10", "x")]
    status, body = _get(f"{api}&sort=metric:")
    assert status == 400 and "metric:<name>" in body["error"]["message"]


def test_sweep_best_follows_the_goal_and_run_snapshot_lists_files(studio: Studio) -> None:
    api = f"{studio.url}api/w/{studio.ws_name}"
    _, sweep = _get(f"{api}/sweeps/{studio.sweep_run}")
    assert sweep["goal"] == "maximize" and sweep["best"]["value"] == pytest.approx(0.9)
    best_child = next(c for c in sweep["children"] if c["run_id"] == sweep["best"]["run_id"])
    assert best_child["hyperparameters"] == {"--lr": 0.3}
    assert [round(c["best_primary_metric"], 3) for c in sweep["children"]] == [0.3, 0.6, 0.9]
    assert sweep["best_so_far"][-1]["run_id"] == best_child["run_id"]
    _, snap = _get(f"{api}/runs/{best_child['run_id']}/snapshot")
    assert [f["path"] for f in snap["files"]] == ["train.py"] and snap["total_bytes"] > 0
    _, none = _get(f"{api}/runs/{studio.metrics_run}/snapshot")
    assert none == {"snapshot_id": None, "files": [], "total_bytes": 0}


def test_system_metrics_of_a_submitted_run(studio: Studio) -> None:
    from trainyard.core import Run

    child = studio.sweep_child()
    status, body = _get(f"{studio.url}api/w/{studio.ws_name}/runs/{child.run_id}/system")
    assert status == 200
    metrics = {m["name"]: m for m in body["metrics"]}
    assert {"rss_mb", "disk_read_mb", "disk_write_mb"} <= set(metrics)
    rss = metrics["rss_mb"]
    assert rss["unit"] == "MiB" and rss["series"]["count"] >= 1
    assert all(v > 1 for v in rss["series"]["y"])  # a Python process holds more than 1 MiB
    xs = rss["series"]["x"]
    assert xs == sorted(xs) and child.start_time is not None and xs[0] >= child.start_time - 5
    # They are the supervisor's, not the script's: the run's own metrics are untouched.
    assert set(Run.get(studio.ws, child.run_id).get_metrics()) == {"accuracy"}
    # A run that never executed (an interactive one) has none, and says so with an empty list.
    status, none = _get(f"{studio.url}api/w/{studio.ws_name}/runs/{studio.metrics_run}/system")
    assert status == 200 and none["metrics"] == []
    status, _ = _get(f"{studio.url}api/w/{studio.ws_name}/runs/{child.run_id}/system?points=1")
    assert status == 400


def test_snapshot_files_download_one_by_one_and_as_a_zip(studio: Studio) -> None:
    import io
    import zipfile

    child = studio.sweep_child()
    api = f"{studio.url}api/w/{studio.ws_name}/runs/{child.run_id}"
    source = (studio.src / "train.py").read_bytes()
    with urllib.request.urlopen(f"{api}/snapshot/file?path=train.py", timeout=30) as resp:
        assert resp.headers["Content-Disposition"].startswith('attachment; filename="train.py"')
        assert resp.read() == source
    with urllib.request.urlopen(f"{api}/snapshot.zip", timeout=30) as resp:
        zf = zipfile.ZipFile(io.BytesIO(resp.read()))
        assert zf.namelist() == ["train.py"] and zf.read("train.py") == source
    for bad, code in (("../workspace.json", "UNSAFE_PATH"), ("nope.py", "ARTIFACT_NOT_FOUND")):
        status, body = _get(f"{api}/snapshot/file?path={bad}")
        assert status in (400, 404) and body["error"]["code"] == code, body
    status, body = _get(
        f"{studio.url}api/w/{studio.ws_name}/runs/{studio.metrics_run}/snapshot.zip"
    )
    assert status == 404 and "not submitted with a snapshot" in body["error"]["message"]
