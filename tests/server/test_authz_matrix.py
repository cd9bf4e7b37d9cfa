"""Every route has an explicit authorisation rule, and each role gets exactly what the rule says.

The route table is walked on the app itself (a route added without an ``x-trainyard-access`` rule
fails the first test); the calls go over HTTP to a live server. For every store operation and every
artifact route, each caller — no token, a bad token, a reader, a contributor, a workspace admin, a
member of another workspace, a server admin, a run token (of a run in the workspace) — is either let
through (any answer but 401/403) or refused (401 without a valid token, 403 otherwise), as the table
says.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from trainyard._store.entities import ModelInfo, NewRun
from trainyard._store.rest.codec import encode
from trainyard._store.rest.protocol import OPERATIONS
from trainyard._store.rest.tracking import RestTrackingStore
from trainyard._store.sql.accounts import SqlAccounts
from trainyard._store.sql.store import SqlTrackingStore
from trainyard.server.app import PUBLIC_PATHS, create_app
from trainyard.server.config import ServerConfig
from trainyard.testing.fixtures import unique_name
from trainyard.testing.server import LiveServer, start_server

RULES = {
    "studio-session",  # the web UI (server/studio.py): cookie session, CSRF, roles per workspace
    "public",
    "presigned",  # a multipart upload part: the URL's secret from mpu/create authorises it
    "authenticated",
    "server-admin",
    "workspace:admin",
    "store:read",
    "store:write",
    "store:admin",
    "artifacts:read",
    "artifacts:write",
}


def _api_routes(routes: Any) -> Iterator[APIRoute]:
    """Every API route, routers included lazily (FastAPI wraps them) walked through."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if inner is not None and hasattr(inner, "routes"):
            yield from _api_routes(inner.routes)


def test_every_route_has_an_authorisation_rule(tmp_path: Path) -> None:
    config = ServerConfig(store_url=f"sqlite:///{tmp_path / 'ty.db'}", artifacts=tmp_path / "files")
    app = create_app(config)
    routes = list(_api_routes(app.routes))
    missing = []
    for route in routes:
        rule = (route.openapi_extra or {}).get("x-trainyard-access")
        if rule not in RULES:
            missing.append(f"{sorted(route.methods)} {route.path}: {rule!r}")
        if rule == "public":
            assert route.path in PUBLIC_PATHS, f"{route.path} is public but not listed as public"
    assert not missing, "routes without an authorisation rule:\n" + "\n".join(missing)
    store_routes = {r.path for r in routes if "/store/" in r.path}
    assert store_routes == {op.path for op in OPERATIONS.values()}
    # The OpenAPI document (what clients and schemathesis see) lists exactly these routes.
    documented = {
        (path, method.upper()) for path, item in app.openapi()["paths"].items() for method in item
    }
    served = {
        (r.path.replace(":path}", "}"), m)
        for r in routes
        for m in r.methods
        # the web UI's routes are not the API's
        if (r.openapi_extra or {}).get("x-trainyard-access") != "studio-session"
    }
    assert documented == served


@dataclass
class World:
    server: LiveServer
    ws_name: str
    ws_id: str
    exp_id: int
    run_id: str
    child_of_run: str
    other_run: str
    tokens: dict[str, str | None]


def _http(server: LiveServer, method: str, path: str, token: str | None, body: Any = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{server.url}{path}", data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as err:
        err.read()
        return int(err.code)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("authz")
    server = start_server(f"sqlite:///{root / 'ty.db'}", root / "files")
    admin = RestTrackingStore(server.url, server.admin_token)
    ws = admin.ensure_workspace(unique_name("ws"))
    other_ws = admin.ensure_workspace(unique_name("other"))
    exp = admin.get_or_create_experiment(ws.id, "exp")
    run = admin.create_run(NewRun(run_id=unique_name("run"), experiment_id=exp.id, run_type="t"))
    other = admin.create_run(NewRun(run_id=unique_name("run"), experiment_id=exp.id, run_type="t"))
    child = admin.create_run(
        NewRun(
            run_id=unique_name("child"),
            experiment_id=exp.id,
            run_type="t",
            parent_run_id=run.run_id,
        )
    )
    accounts = SqlAccounts(SqlTrackingStore(server.store_url).engine)
    tokens: dict[str, str | None] = {"anonymous": None, "bad token": "ty_not-a-real-token"}
    for name, role, where in (
        ("reader", "reader", ws.id),
        ("contributor", "contributor", ws.id),
        ("ws-admin", "admin", ws.id),
        ("outsider", "admin", other_ws.id),
    ):
        user = accounts.create_user(unique_name(name))
        accounts.set_role(where, user.id, role)
        tokens[name] = accounts.create_token(user.id)[1]
    tokens["server-admin"] = server.admin_token
    tokens["run token"] = accounts.create_token(
        None, kind="run", run_id=run.run_id, workspace_id=ws.id
    )[1]
    admin.put_compute_target(ws.id, "cpu", "local", {})
    admin.register_environment(ws.id, "env", {"a": 1}, "h")
    admin.create_webservice(ws.id, "svc", "Healthy", {})
    yield World(server, ws.name, ws.id, exp.id, run.run_id, child.run_id, other.run_id, tokens)
    server.stop()


def _model(w: World, run_id: str | None) -> dict[str, Any]:
    return encode(
        ModelInfo(
            workspace_id=w.ws_id,
            name="m",
            version=0,
            description=None,
            tags={},
            properties={},
            run_id=run_id,
            experiment_name=None,
            framework=None,
            framework_version=None,
            created_at=time.time(),
            storage_prefix="models/m",
            model_root="m",
            files=(),
        )
    )


def _args(w: World, op: str, target_run: str) -> dict[str, Any]:
    """Valid arguments for ``op`` in the test workspace (``target_run``: the run written)."""
    new = encode(
        NewRun(
            run_id=unique_name("r"), experiment_id=w.exp_id, run_type="t", parent_run_id=target_run
        )
    )
    table: dict[str, dict[str, Any]] = {
        "ensure_workspace": {"name": unique_name("ws")},
        "get_workspace": {"name": w.ws_name},
        "list_workspaces": {},
        "get_or_create_experiment": {"workspace_id": w.ws_id, "name": "exp2"},
        "get_experiment": {"workspace_id": w.ws_id, "name": "exp"},
        "get_experiment_by_id": {"experiment_id": w.exp_id},
        "list_experiments": {"workspace_id": w.ws_id},
        "set_experiment_archived": {"experiment_id": w.exp_id, "archived": False},
        "rename_experiment": {"experiment_id": w.exp_id, "name": "exp"},  # its own name
        "create_run": {"new": new},
        "get_run": {"run_id": target_run},
        "list_runs": {"workspace_id": w.ws_id},
        "update_run_status": {"run_id": target_run, "status": "Running"},
        "update_run": {"run_id": target_run, "description": "d"},
        "heartbeat": {"run_id": target_run},
        "status_history": {"run_id": target_run},
        "set_tags": {"run_id": target_run, "tags": {"k": "v"}},
        "remove_tags": {"run_id": target_run, "keys": ["k"]},
        "add_properties": {"run_id": target_run, "properties": {"p": "1"}},
        "log_metric_chunks": {"run_id": target_run, "chunks": []},
        "get_metric_chunks": {"run_id": target_run},
        "register_environment": {
            "workspace_id": w.ws_id,
            "name": "env",
            "spec": {"a": 1},
            "spec_hash": "h",
        },
        "get_environment": {"workspace_id": w.ws_id, "name": "env"},
        "list_environments": {"workspace_id": w.ws_id},
        "put_compute_target": {
            "workspace_id": w.ws_id,
            "name": "cpu",
            "target_type": "local",
            "config": {},
        },
        "get_compute_target": {"workspace_id": w.ws_id, "name": "cpu"},
        "list_compute_targets": {"workspace_id": w.ws_id},
        "delete_compute_target": {"workspace_id": w.ws_id, "name": "nope"},
        "create_model": {"model": _model(w, target_run)},
        "get_model": {"workspace_id": w.ws_id, "name": "nope"},
        "list_models": {"workspace_id": w.ws_id},
        "update_model": {"workspace_id": w.ws_id, "name": "nope", "version": 1},
        "delete_model": {"workspace_id": w.ws_id, "name": "nope", "version": 1},
        "put_registered_model": {"workspace_id": w.ws_id, "name": unique_name("rm")},
        "get_registered_model": {"workspace_id": w.ws_id, "name": "nope"},
        "list_registered_models": {"workspace_id": w.ws_id},
        "rename_model": {"workspace_id": w.ws_id, "name": "nope", "new_name": "nope2"},
        "delete_registered_model": {"workspace_id": w.ws_id, "name": "nope"},
        "create_webservice": {
            "workspace_id": w.ws_id,
            "name": unique_name("s"),
            "state": "Healthy",
            "data": {},
        },
        "get_webservice": {"workspace_id": w.ws_id, "name": "svc"},
        "list_webservices": {"workspace_id": w.ws_id},
        "update_webservice": {"workspace_id": w.ws_id, "name": "svc", "data": {"x": 1}},
        "delete_webservice": {"workspace_id": w.ws_id, "name": "nope"},
    }
    return table[op]


_LEVEL = {"reader": 0, "contributor": 1, "ws-admin": 2, "server-admin": 3}
_NEED = {"read": 0, "write": 1, "admin": 2}


def _store_allowed(caller: str, op_name: str, writes_own_run: bool) -> bool:
    op = OPERATIONS[op_name]
    if caller in ("anonymous", "bad token", "outsider"):
        return False
    if op_name in ("ensure_workspace", "list_workspaces"):
        return caller == "server-admin"
    if caller == "run token":
        if op.access == "read":
            return True
        return writes_own_run and (op.run_arg is not None or op_name == "create_model")
    return _LEVEL[caller] >= _NEED[op.access]


CALLERS = (
    "anonymous",
    "bad token",
    "reader",
    "contributor",
    "ws-admin",
    "outsider",
    "server-admin",
    "run token",
)


def _expect(world: World, status: int, allowed: bool, caller: str, what: str) -> None:
    if allowed:
        assert status not in (401, 403), f"{caller} was refused {what} ({status})"
    elif caller == "anonymous":
        assert status == 401, f"{caller} got {status} for {what}, expected 401"
    elif caller == "bad token":  # 429 once the address has guessed wrong too often
        assert status in (401, 429), f"{caller} got {status} for {what}, expected 401"
    else:
        assert status == 403, f"{caller} got {status} for {what}, expected 403"


@pytest.mark.parametrize("op_name", sorted(OPERATIONS))
def test_store_route_matrix(world: World, op_name: str) -> None:
    for caller in CALLERS:
        for target, own in ((world.child_of_run, True), (world.other_run, False)):
            if not own and OPERATIONS[op_name].run_arg is None and op_name != "create_model":
                continue  # the target run only matters to run-scoped writes
            status = _http(
                world.server,
                "POST",
                OPERATIONS[op_name].path,
                world.tokens[caller],
                _args(world, op_name, target),
            )
            _expect(
                world,
                status,
                _store_allowed(caller, op_name, own),
                caller,
                f"{op_name} on {target}",
            )


def _artifact_calls(w: World) -> list[tuple[str, str, Any, str, Callable[[str], bool]]]:
    base = f"/api/v1/workspaces/{w.ws_name}"
    own = f"runs/{w.child_of_run}/outputs/a.txt"
    other = f"runs/{w.other_run}/outputs/a.txt"
    readers = {"reader", "contributor", "ws-admin", "server-admin", "run token"}
    writers = {"contributor", "ws-admin", "server-admin"}
    return [
        ("GET", f"{base}/artifacts-list?prefix=runs", None, "list", lambda c: c in readers),
        ("GET", f"{base}/artifacts/{own}", None, "read", lambda c: c in readers),
        (
            "PUT",
            f"{base}/artifacts/{own}",
            b"x",
            "write own run",
            lambda c: c in writers | {"run token"},
        ),
        ("PUT", f"{base}/artifacts/{other}", b"x", "write other run", lambda c: c in writers),
        (
            "PUT",
            f"{base}/artifacts/datastores/x/a.txt",
            b"x",
            "write datastore",
            lambda c: c in writers,
        ),
        (
            "DELETE",
            f"{base}/artifacts/{other}",
            None,
            "delete other run's file",
            lambda c: c in writers,
        ),
        (
            "POST",
            f"{base}/artifacts-delete-prefix",
            {"prefix": "datastores/x"},
            "delete a folder",
            lambda c: c in writers,
        ),
        (
            "POST",
            f"{base}/artifacts-delete-prefix",
            {"prefix": ""},
            "delete everything",
            lambda c: c in {"ws-admin", "server-admin"},
        ),
        ("GET", "/api/v1/users", None, "list users", lambda c: c == "server-admin"),
        (
            "POST",
            "/api/v1/users",
            {"name": unique_name("u")},
            "create a user",
            lambda c: c == "server-admin",
        ),
        ("GET", f"{base}/roles", None, "list roles", lambda c: c in {"ws-admin", "server-admin"}),
        ("GET", "/api/v1/whoami", None, "whoami", lambda c: c not in {"anonymous", "bad token"}),
    ]


def test_artifact_and_account_route_matrix(world: World) -> None:
    for method, path, body, what, allowed in _artifact_calls(world):
        for caller in CALLERS:
            token = world.tokens[caller]
            if method == "PUT":
                req = urllib.request.Request(f"{world.server.url}{path}", data=body, method="PUT")
                if token:
                    req.add_header("Authorization", f"Bearer {token}")
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        status = int(resp.status)
                except urllib.error.HTTPError as err:
                    status = int(err.code)
            else:
                status = _http(world.server, method, path, token, body)
            ok = allowed(caller) and not (
                caller == "outsider" and "/users" not in path and "whoami" not in path
            )
            if caller == "outsider" and "whoami" in path:
                ok = True
            _expect(world, status, ok, caller, what)


def test_public_routes_need_no_token(world: World) -> None:
    for path in sorted(PUBLIC_PATHS):
        assert _http(world.server, "GET", path, None) == 200


def test_wrong_tokens_are_rate_limited_but_known_ones_keep_working(world: World) -> None:
    path = "/api/v1/whoami"
    assert _http(world.server, "GET", path, world.tokens["reader"]) == 200
    codes = [_http(world.server, "GET", path, f"ty_guess-{i}") for i in range(30)]
    assert 429 in codes and set(codes) <= {401, 429}
    assert _http(world.server, "GET", path, world.tokens["reader"]) == 200
