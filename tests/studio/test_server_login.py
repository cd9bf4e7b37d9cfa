"""The studio behind ``trainyard server``'s login, in a real browser: a cookie session made from
an API token, CSRF on changes, and roles — a reader cannot reach an admin action."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainyard.testing.server import LiveServer, start_server

SHOTS = Path(__file__).parent / "screenshots"
pytestmark = pytest.mark.timeout(180)


def _call(server: LiveServer, method: str, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        f"{server.url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={
            "Authorization": f"Bearer {server.admin_token}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    base = tmp_path_factory.mktemp("studio-server")
    server = start_server(f"sqlite:///{base / 'ty.db'}", base / "files")
    try:
        _call(server, "POST", "/api/v1/store/ensure_workspace", {"name": "team"})
        _call(server, "POST", "/api/v1/users", {"name": "rita"})
        secret = _call(server, "POST", "/api/v1/tokens", {"user": "rita"})["secret"]
        _call(server, "PUT", "/api/v1/workspaces/team/roles/rita", {"role": "reader"})
        yield server, secret
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; no console errors but the 403s these tests provoke on purpose."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert all("status of 403" in e for e in errors), f"console errors: {errors}"


def _login(page: Any, server: LiveServer, token: str) -> None:
    page.goto(f"{server.url}/studio")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()


def test_reader_cannot_reach_admin_actions(page: Any, team: tuple[LiveServer, str]) -> None:
    server, reader = team
    page.goto(f"{server.url}/studio/")
    page.get_by_role("heading", name="Log in to trainyard studio").wait_for()
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "server-login.png"), full_page=True)
    _login(page, server, reader)
    page.get_by_role("heading", name="Experiments").wait_for()
    assert page.locator("#who").inner_text().startswith("rita")
    assert page.get_by_role("link", name="Members").count() == 0
    page.goto(f"{server.url}/studio/#/w/team/members")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "needs the admin role" in alert.inner_text()
    assert page.locator("form").count() == 0
    page.screenshot(path=str(SHOTS / "server-reader-members.png"), full_page=True)
    # Even with the page's CSRF token, the server refuses a reader's admin calls.
    answer = page.evaluate(
        """async () => {
            const s = await (await fetch('api/session')).json();
            const opts = {headers: {'X-CSRF-Token': s.csrf, 'Content-Type': 'application/json'}};
            const list = await fetch('api/w/team/members', opts);
            const put = await fetch('api/w/team/members/rita', {...opts, method: 'PUT',
                body: JSON.stringify({role: 'admin'})});
            return [s.workspaces, list.status, put.status];
        }"""
    )
    assert answer == [[{"name": "team", "role": "reader"}], 403, 403]


def test_admin_manages_members_and_changes_need_csrf(
    page: Any, team: tuple[LiveServer, str]
) -> None:
    server, _ = team
    _login(page, server, server.admin_token)
    page.get_by_role("link", name="Members").click()
    page.get_by_role("table", name="Members").wait_for()
    assert "rita" in page.get_by_role("table", name="Members").inner_text()
    statuses = page.evaluate(
        """async () => {
            const s = await (await fetch('api/session')).json();
            const body = JSON.stringify({role: 'contributor'});
            const h = {'Content-Type': 'application/json'};
            const bad = await fetch('api/w/team/members/rita', {method: 'PUT', headers: h, body});
            const good = await fetch('api/w/team/members/rita', {method: 'PUT', body,
                headers: {...h, 'X-CSRF-Token': s.csrf}});
            return [bad.status, good.status];
        }"""
    )
    assert statuses == [403, 200]
    page.screenshot(path=str(SHOTS / "server-admin-members.png"), full_page=True)
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("heading", name="Log in to trainyard studio").wait_for()
    assert page.evaluate("async () => (await fetch('api/session')).json()")["user"] is None
