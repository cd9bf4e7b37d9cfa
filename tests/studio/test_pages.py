"""trainyard studio in a real browser (Debian's Chromium) through a real ``trainyard ui`` process
over a real workspace with real runs (interactive runs, a failed run, a HyperDrive sweep whose
children ran under their supervisors, a live run)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Studio

SHOTS = Path(__file__).parent / "screenshots"

pytestmark = pytest.mark.timeout(240)


def shot(page: Any, name: str) -> None:
    """Save a full-page screenshot of ``page`` as ``screenshots/<name>.png`` (look at them)."""
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def wait_terminal(run: Any, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := run.get_status()) not in ("Completed", "Failed", "Canceled"):
        assert time.monotonic() < deadline, f"{run.id} did not finish (status {status})"
        time.sleep(0.1)
    return str(status)


def _go(page: Any, studio: Studio, route: str) -> None:
    page.goto(f"{studio.url}#/w/{studio.ws_name}/{route}")


def _api(page: Any, path: str) -> Any:
    return page.evaluate(
        "async (p) => (await fetch('api/' + p, {headers: {Accept: 'application/json'}})).json()",
        path,
    )


def test_experiments_page(page: Any, studio: Studio) -> None:
    page.goto(studio.url)
    page.get_by_role("heading", name="Experiments").wait_for()
    assert page.get_by_role("link", name="mnist").is_visible()
    assert page.get_by_role("link", name="tune").is_visible()
    shot(page, "experiments")


def test_runs_table_lists_sorts_and_navigates_by_keyboard(page: Any, studio: Studio) -> None:
    _go(page, studio, "runs")
    page.locator("table.runs tbody tr").first.wait_for()
    rows = page.locator("table.runs tbody tr")
    listed = {rows.nth(i).get_attribute("data-run") for i in range(rows.count())}
    assert set(studio.lr_runs) | {studio.failed_run, studio.sweep_run} <= listed
    shot(page, "runs")
    page.get_by_role("button", name="lr", exact=True).click()
    page.locator("th[aria-sort='ascending']").wait_for()
    page.wait_for_function(
        "() => document.querySelector('table.runs tbody tr').dataset.run === "
        + json.dumps(min(studio.lr_runs, key=lambda r: studio.lr_runs[r]))
    )
    order = [rows.nth(i).get_attribute("data-run") for i in range(len(studio.lr_runs))]
    assert order == sorted(studio.lr_runs, key=lambda r: studio.lr_runs[r])  # numeric, not text
    page.get_by_role(
        "button", name="loss", exact=True
    ).click()  # a metric column, sorted by the server
    by_loss = [
        studio.metrics_run,
        *sorted(
            (r for r in studio.lr_runs if r != studio.metrics_run), key=lambda r: studio.lr_runs[r]
        ),
    ]
    page.wait_for_function(
        "(want) => [...document.querySelectorAll('table.runs tbody tr')].slice(0, want.length)"
        ".map((r) => r.dataset.run).join() === want.join()",
        arg=by_loss,
    )
    page.get_by_role("button", name="lr", exact=True).click()
    page.locator("th[aria-sort='ascending']").wait_for()
    page.wait_for_function(
        "() => document.querySelector('table.runs tbody tr').dataset.run === "
        + json.dumps(order[0])
    )
    rows.first.focus()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.run") == order[1]
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/runs/{order[1]}")


def test_run_page_chart_matches_get_metrics(page: Any, studio: Studio) -> None:
    from trainyard.core import Run

    _go(page, studio, f"runs/{studio.metrics_run}")
    chart = page.locator(".chart[data-metric='loss']")
    chart.locator("canvas").wait_for()
    assert "500 points" in chart.inner_text()
    data = _api(page, f"w/{studio.ws_name}/series?name=loss&run={studio.metrics_run}&points=1000")
    got = data["runs"][studio.metrics_run]
    expected = Run.get(studio.ws, studio.metrics_run).get_metrics()["loss"]
    assert got["y"] == expected and got["x"] == list(range(500))
    small = _api(page, f"w/{studio.ws_name}/series?name=loss&run={studio.metrics_run}&points=50")
    bucket = small["runs"][studio.metrics_run]
    assert bucket["downsampled"] and len(bucket["y"]) == 50
    assert bucket["max"][0] == expected[0] and bucket["y"][-1] == expected[-1]
    page.locator("[data-metric='confusion'] table").wait_for()
    page.locator("[data-metric='sample'] img").wait_for()
    assert page.locator("[data-metric='sample'] img").evaluate("i => i.naturalWidth") == 2
    assert page.get_by_role("link", name="outputs/model.txt").is_visible()
    page.get_by_label("loss: log scale").check()
    shot(page, "run")


def test_run_page_lists_the_snapshot_files(page: Any, studio: Studio) -> None:
    child = studio.sweep_child()
    _go(page, studio, f"runs/{child.run_id}")
    files = page.locator("ul.snapshot-files li")
    files.first.wait_for()
    assert [files.nth(i).inner_text().split(" ")[0] for i in range(files.count())] == ["train.py"]
    assert "(1 file, " in page.locator("section.snapshot h3").inner_text()
    with page.expect_download() as download:
        page.locator("ul.snapshot-files").get_by_role("link", name="train.py").click()
    assert Path(download.value.path()).read_bytes() == (studio.src / "train.py").read_bytes()
    assert page.get_by_role("link", name="Download all (zip)").is_visible()
    shot(page, "run-snapshot")


def test_run_page_charts_system_metrics(page: Any, studio: Studio) -> None:
    child = studio.sweep_child()
    _go(page, studio, f"runs/{child.run_id}")
    section = page.get_by_label("System metrics")
    chart = section.locator(".chart[data-metric='system/rss_mb']")
    chart.locator("canvas").wait_for()
    assert "Memory (RSS) (MiB)" in chart.inner_text() and " points" in chart.inner_text()
    shot(page, "run-system-metrics")


def test_failed_run_shows_error(page: Any, studio: Studio) -> None:
    _go(page, studio, f"runs/{studio.failed_run}")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "the data folder is empty" in alert.inner_text()
    shot(page, "run-failed")


def test_live_run_chart_and_log_grow(page: Any, studio: Studio) -> None:
    from trainyard.core import Experiment, ScriptRunConfig

    run = Experiment(studio.ws, "live").submit(
        ScriptRunConfig(
            source_directory=studio.src,
            script="train.py",
            arguments=["--epochs", "40", "--sleep", "0.25", "--lr", "0.01"],
        )
    )
    _go(page, studio, f"runs/{run.id}")
    chart = page.locator(".chart[data-metric='accuracy']")
    chart.locator("canvas").wait_for(timeout=60_000)
    log = page.locator("pre.log")
    # The page opens while the run is queued or preparing, when only its system logs exist: it
    # must move to the user log once the script starts (not stay on the first log it saw).
    page.wait_for_function(
        "() => document.querySelector('pre.log').textContent.includes('epoch 0 accuracy')",
        timeout=60_000,
    )
    assert page.locator("#log-name").input_value() == "user_logs/std_log.txt"
    first_points = int(chart.inner_text().split(" points")[0].split()[-1].replace(",", ""))
    first_log = len(log.inner_text())
    page.wait_for_function(
        "([n, l]) => { const t = document.querySelector(\".chart[data-metric='accuracy'] p\")"
        ".textContent; return parseInt(t.replace(/,/g, '')) > n && "
        "document.querySelector('pre.log').textContent.length > l; }",
        arg=[first_points, first_log],
        timeout=30_000,
    )
    shot(page, "run-live")
    assert wait_terminal(run) == "Completed"
    page.wait_for_function(
        "() => document.querySelector('pre.log').textContent.includes('epoch 39')", timeout=30_000
    )
    assert page.locator("pre.log").inner_text().count("epoch 0 ") == 1  # never read twice


def test_compare_page(page: Any, studio: Studio) -> None:
    runs = ",".join(list(studio.lr_runs)[:3])
    _go(page, studio, f"compare?runs={runs}")
    page.get_by_role("heading", name="Compare 3 runs").wait_for()
    page.locator(".chart[data-metric='loss'] canvas").wait_for()
    assert page.locator("svg.parallel polyline").count() == 3
    assert page.locator("tr.differs").count() >= 1
    shot(page, "compare")


def test_sweep_page(page: Any, studio: Studio) -> None:
    _go(page, studio, f"sweeps/{studio.sweep_run}")
    table = page.get_by_role("table", name="Child runs")
    table.wait_for()
    assert table.locator("tbody tr").count() == 3
    best = page.locator("tr.best")
    assert "0.3" in best.inner_text()
    assert "best accuracy (maximize):" in page.locator("p.sweep-best").inner_text()
    assert "= 0.9" in page.locator("p.sweep-best").inner_text()
    page.get_by_role("heading", name="Best accuracy so far (maximize)").wait_for()
    steps = page.locator("ol.best-so-far li")
    assert steps.count() == 3
    last = steps.nth(2).inner_text()
    assert best.locator("a").first.inner_text() in last and "= 0.9" in last
    page.locator(".chart[data-metric='accuracy'] canvas").wait_for()
    shot(page, "sweep")


@pytest.mark.parametrize("route", ["models", "endpoints", "environments", "members"])
def test_other_pages_render(page: Any, studio: Studio, route: str) -> None:
    _go(page, studio, route)
    page.locator("main h1").wait_for()
    assert "Cannot show" not in page.locator("main").inner_text()
    shot(page, route)


def test_narrow_window(browser: Any, studio: Studio) -> None:
    context = browser.new_context(viewport={"width": 380, "height": 800})
    pg = context.new_page()
    pg.goto(f"{studio.url}#/w/{studio.ws_name}/runs/{studio.metrics_run}")
    pg.locator(".chart canvas").first.wait_for()
    width = pg.evaluate("document.documentElement.scrollWidth")
    shot(pg, "run-narrow")
    context.close()
    assert width <= 400


def test_changes_need_the_csrf_token(studio: Studio) -> None:
    import urllib.error
    import urllib.request

    url = f"{studio.url}api/w/{studio.ws_name}/runs/{studio.failed_run}/cancel"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b"{}"), timeout=10)
    assert info.value.code == 403
    assert b"CSRF" in info.value.read()
