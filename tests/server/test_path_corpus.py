"""The hostile-path corpus against every route that takes a name or a path, over a live server.

The routes are found by walking the app's route table: every path parameter, every string query
parameter and every name-like field of a JSON body (a store operation's names from the wire
protocol's table; the other routes' body fields from ``BODY_NAMES``, which must list every route
with a body) gets each payload of :mod:`trainyard.testing.paths`, percent-encoded as a client
would and raw where HTTP allows. Every answer must be a 4xx carrying a typed error code; afterwards
nothing outside the workspace's files has changed, no file was created anywhere, and no answer
carried the bytes of a file outside the artifacts folder.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from fastapi.routing import APIRoute

from trainyard._store.entities import NewRun
from trainyard._store.rest.artifacts import RestArtifactStore
from trainyard._store.rest.codec import encode
from trainyard._store.rest.protocol import OPERATIONS
from trainyard._store.rest.tracking import RestTrackingStore
from trainyard._store.rest.transport import Transport
from trainyard.server.app import create_app
from trainyard.server.config import ServerConfig
from trainyard.server.routes_store import NAME_FIELDS
from trainyard.testing.fixtures import unique_name
from trainyard.testing.paths import BAD_NAMES, NON_PORTABLE_NAMES
from trainyard.testing.server import LiveServer, start_server

SECRET = "trainyard-corpus-secret-7f3a9c"
#: Hostile names aimed at this server's own layout (the secret sits next to the files folder).
LAYOUT_NAMES = [
    "../../../secret.txt",
    "../../secret.txt",
    "../secret.txt",
    "runs/../../../../secret.txt",
    "%2e%2e/%2e%2e/%2e%2e/secret.txt",
]
#: Well-formed names that lead out through symlinks planted in the artifacts folder (for the
#: routes whose paths are artifact paths).
SYMLINK_NAMES = ["runs/escape/secret.txt", "runs/escape", "runs/escape/new.txt", "runs/loop/x"]
PAYLOADS = list(dict.fromkeys([*BAD_NAMES, *NON_PORTABLE_NAMES, *LAYOUT_NAMES]))
#: JSON body fields that are names or paths, per route (store operations come from the protocol).
BODY_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    # the studio's routes (walked both as mounted under /studio and in their own routers)
    **{
        (method, prefix + path): names
        for prefix in ("", "/studio")
        for method, path, names in (
            ("POST", "/api/login", ("token",)),
            ("PUT", "/api/w/{workspace}/members/{user}", ("role",)),
            ("POST", "/api/w/{workspace}/endpoints/{name}/score", ()),
        )
    },
    ("POST", "/api/v1/workspaces/{workspace}/artifacts-delete-prefix"): ("prefix",),
    ("POST", "/api/v1/workspaces/{workspace}/artifacts-link"): ("src", "dst"),
    ("POST", "/api/v1/users"): ("name",),
    ("POST", "/api/v1/tokens"): ("user",),
    ("PUT", "/api/v1/workspaces/{workspace}/roles/{user}"): (),
    ("POST", "/api/v1/workspaces/{workspace}/snapshots/missing"): (),
    ("PUT", "/api/v1/workspaces/{workspace}/snapshots/manifests/{snapshot_id}"): ("id",),
}
#: Bodies that are valid apart from the payload.
BODY_DEFAULTS: dict[str, Any] = {
    "/api/v1/workspaces/{workspace}/artifacts-link": {"src": "a.txt", "dst": "b.txt"},
    "/api/v1/workspaces/{workspace}/snapshots/missing": {"objects": []},
    "/api/v1/workspaces/{workspace}/roles/{user}": {"role": "reader"},
}


def _routes() -> Iterator[APIRoute]:
    folder = Path(tempfile.mkdtemp(prefix="ty-corpus-routes-"))
    try:
        config = ServerConfig(store_url=f"sqlite:///{folder / 'ty.db'}", artifacts=folder)
        yield from _walk(create_app(config).routes)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _walk(routes: Any) -> Iterator[APIRoute]:
    """Every API route, included routers (which FastAPI may wrap) walked through."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if inner is not None and hasattr(inner, "routes"):
            yield from _walk(inner.routes)


@dataclass
class Target:
    method: str
    path: str
    where: str  # "path:<param>", "query:<param>" or "body:<field>"


def _targets() -> list[Target]:
    targets: list[Target] = []
    for route in _routes():
        for method in sorted(route.methods):
            for param in route.dependant.path_params:
                targets.append(Target(method, route.path, f"path:{param.name}"))
            for param in route.dependant.query_params:
                if param.field_info.annotation in (str, str | None):
                    targets.append(Target(method, route.path, f"query:{param.name}"))
            if route.body_field is None:
                continue
            if "/store/" in route.path:
                op = OPERATIONS[route.path.rsplit("/", 1)[-1]]
                names = [p.name for p in op.params if p.name in NAME_FIELDS]
                names += (
                    [f"new.{f}" for f in ("run_id", "parent_run_id")]
                    if op.name == "create_run"
                    else []
                )
            else:
                assert (method, route.path) in BODY_NAMES, (
                    f"{method} {route.path} takes a body: list its name fields in BODY_NAMES"
                )
                names = list(BODY_NAMES[(method, route.path)])
            targets.extend(Target(method, route.path, f"body:{n}") for n in names)
    return targets


@dataclass
class World:
    server: LiveServer
    root: Path
    ws: str
    ws_id: str
    run_id: str
    exp_id: int
    conn: http.client.HTTPConnection
    before: list[str] | None = None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("corpus")
    (root / "secret.txt").write_text(SECRET)
    (root / "outside").mkdir()
    (root / "outside" / "secret.txt").write_text(SECRET)
    server = start_server(f"sqlite:///{root / 'ty.db'}", root / "files")
    admin = RestTrackingStore(server.url, server.admin_token)
    ws = admin.ensure_workspace(unique_name("ws"))
    exp = admin.get_or_create_experiment(ws.id, "exp")
    run = admin.create_run(NewRun(run_id=unique_name("run"), experiment_id=exp.id, run_type="t"))
    files = RestArtifactStore(Transport(server.url, server.admin_token), ws.name)
    files.write_bytes("a.txt", b"a")
    files.write_bytes(f"runs/{run.run_id}/x.txt", b"x")
    art = root / "files" / ws.name / "artifacts"
    os.symlink(root / "outside", art / "runs" / "escape")
    os.symlink(art / "runs" / "loop", art / "runs" / "loop")
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    world = World(server, root, ws.name, ws.id, run.run_id, exp.id, conn)
    world.before = sorted(_tree(root / "files"))
    yield world
    conn.close()
    server.stop()


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def _valid(w: World, target: Target, param: str) -> str:
    return {
        "workspace": w.ws,
        "run_id": w.run_id,
        "path": "a.txt",
        "name": "user_logs/std_log.txt",
        "user": "admin",
        "prefix": "runs",
    }.get(param, "0" * 32)


def _request(w: World, target: Target, payload: str, encoding: str) -> tuple[int, Any, bytes]:
    kind, _, name = target.where.partition(":")
    url = target.path
    for param in re.findall(r"{(\w+)(?::path)?}", target.path):
        value = payload if (kind == "path" and param == name) else _valid(w, target, param)
        wire = value.encode("utf-8", "surrogatepass")  # a lone surrogate goes as broken UTF-8
        raw = value if encoding == "raw" else quote(wire, safe="/" if encoding == "slash" else "")
        url = re.sub(r"{" + param + r"(?::path)?}", lambda _m, v=raw: v, url)
    body: Any = None
    if kind == "query":
        url += f"?{name}={quote(payload.encode('utf-8', 'surrogatepass'), safe='')}"
    if "/store/" in target.path:
        op = OPERATIONS[target.path.rsplit("/", 1)[-1]]
        body = {p.name: _store_default(w, p.name, op.name) for p in op.params if p.required}
    elif target.method in ("POST", "PUT") and "/artifacts/" not in target.path:
        body = dict(BODY_DEFAULTS.get(target.path, {}))
    if kind == "body":
        if name.startswith("new."):
            body["new"][name[4:]] = payload
        else:
            body[name] = payload
    data = b"x" if "/artifacts/" in target.path and target.method == "PUT" else None
    if body is not None:
        data = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {w.server.admin_token}", "Host": "127.0.0.1"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        w.conn.request(target.method, url, body=data, headers=headers)
        resp = w.conn.getresponse()
    except (http.client.HTTPException, OSError):
        w.conn.close()  # a request line http.client itself refuses to send: nothing reached us
        raise
    raw_body = resp.read()
    return resp.status, resp.getheader("X-Trainyard-Error-Code"), raw_body


def _store_default(w: World, param: str, op: str) -> Any:
    if param == "new":
        return encode(NewRun(run_id=unique_name("r"), experiment_id=w.exp_id, run_type="t"))
    if param == "run_id":
        return w.run_id
    if param == "workspace_id":
        return w.ws_id
    if param == "name":
        return w.ws if op in ("get_workspace", "ensure_workspace") else "exp"
    if param in ("experiment_id", "version"):
        return w.exp_id
    if param in ("tags", "properties", "spec", "config", "data"):
        return {}
    if param in ("keys", "chunks"):
        return []
    if param == "model":
        return None
    return "x"


TARGETS = _targets()


def test_the_route_walk_finds_the_path_routes() -> None:
    where = {(t.method, t.path, t.where) for t in TARGETS}
    art = "/api/v1/workspaces/{workspace}/artifacts/{path:path}"
    for method in ("GET", "HEAD", "PUT", "DELETE"):
        assert (method, art, "path:path") in where
    assert ("GET", "/api/v1/workspaces/{workspace}/artifacts-list", "query:prefix") in where
    assert ("POST", "/api/v1/store/create_run", "body:new.run_id") in where
    assert len(PAYLOADS) >= 40
    assert sum(t.where.startswith("path:") for t in TARGETS) >= 20


@pytest.mark.parametrize("target", TARGETS, ids=[f"{t.method} {t.path} {t.where}" for t in TARGETS])
def test_every_payload_gets_a_clean_4xx(world: World, target: Target) -> None:
    failures = []
    artifact_route = "/artifact" in target.path and target.where not in ("path:workspace",)
    for payload in PAYLOADS + (SYMLINK_NAMES if artifact_route else []):
        if target.where.endswith(":prefix") and payload in ("", ".", "./", "././/."):
            continue  # the whole folder, by design (deleting it needs a workspace admin)
        for encoding in ("quoted", "slash", "raw"):
            if encoding != "quoted" and not target.where.startswith("path:"):
                continue
            if encoding == "raw" and (
                not payload.isascii() or re.search(r"[\s?#%\x00-\x1f\x7f]", payload)
            ):
                continue
            try:
                status, code, body = _request(world, target, payload, encoding)
            except (http.client.HTTPException, OSError):
                continue
            if SECRET.encode() in body or b"root:x:0:0" in body:
                failures.append(f"{payload!r} ({encoding}): leaked a file outside the folder")
            typed = code or _code(body)
            if not (400 <= status < 500) or not typed:
                failures.append(f"{payload!r} ({encoding}): {status} {typed!r} {body[:120]!r}")
    failures = [f"{target.method} {target.path} {target.where}: {f}" for f in failures]
    assert not failures, "\n".join(failures[:30])


def _code(body: bytes) -> str | None:
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def test_nothing_was_written_or_read_outside(world: World) -> None:
    """Runs after the corpus (file order): the tree is as the fixture left it, but the database."""
    before = {
        "secret.txt": SECRET,
        "outside/secret.txt": SECRET,
    }
    for rel, text in before.items():
        assert (world.root / rel).read_text() == text
    assert sorted(p.name for p in (world.root / "outside").iterdir()) == ["secret.txt"]
    files = RestArtifactStore(Transport(world.server.url, world.server.admin_token), world.ws)
    assert sorted(files.list("")) == ["a.txt", f"runs/{world.run_id}/x.txt"]
    strays = [
        p
        for p in _tree(world.root)
        if not (p.startswith("files") or p.startswith("outside") or p.startswith("ty.db"))
        and p not in ("secret.txt",)
        and not p.startswith("server-")
    ]
    assert not strays, strays
    after = [p for p in _tree(world.root / "files") if not p.endswith("/workspace.json")]
    assert sorted(after) == world.before  # (workspace.json: the server's own, for its runs)
    assert files.read_bytes("a.txt") == b"a"
