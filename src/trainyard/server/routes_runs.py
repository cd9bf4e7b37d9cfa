"""Execution over HTTP: start a stored run or sweep on the server's compute, cancel it, read its
live logs by offset, and receive the snapshots submissions need (only missing contents travel).

Example::

    POST /api/v1/workspaces/team/runs/<run_id>/submit          (contributor)
    GET  /api/v1/workspaces/team/runs/<run_id>/logs?name=user_logs/std_log.txt&offset=0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response

from trainyard._execution.snapshot import SnapshotStore
from trainyard._store.artifacts import safe_relpath
from trainyard.exceptions import PermissionDenied, ValidationError
from trainyard.server.auth import Principal, require, require_run_write
from trainyard.server.execution import Execution
from trainyard.server.routes_artifacts import BodyReader
from trainyard.server.state import ServerState

_RUNS = "/api/v1/workspaces/{workspace}/runs/{run_id}"
_SNAPSHOTS = "/api/v1/workspaces/{workspace}/snapshots"
_MAX_LOG_READ = 8 << 20


def _check_run(
    state: ServerState, principal: Principal, workspace: str, run_id: str, need: str
) -> None:
    workspace_id = state.workspace_id(workspace)
    if state.run_facts(run_id)[0] != workspace_id:
        raise PermissionDenied(f"Run {run_id} is not in workspace {workspace}.")
    if principal.is_run:
        if principal.token.workspace_id != workspace_id:
            raise PermissionDenied("This run token belongs to another workspace.")
        if need != "read":
            require_run_write(state, principal, run_id)
        return
    require(state, principal, workspace_id, "read" if need == "read" else "write")


def runs_router(
    state: ServerState, execution: Execution, principal_dep: Callable[..., Principal]
) -> APIRouter:
    """Execution and snapshot routes (see the module docstring)."""
    router = APIRouter(tags=["execution"])
    read = {"x-trainyard-access": "store:read"}
    write = {"x-trainyard-access": "store:write"}

    @router.post(f"{_RUNS}/submit", openapi_extra=write)
    def submit(
        workspace: str, run_id: str, who: Principal = Depends(principal_dep)
    ) -> JSONResponse:
        """Start a Queued run's supervisor on the server (it gets a run-scoped token)."""
        _check_run(state, who, workspace, run_id, "write")
        execution.submit(workspace, run_id)
        return JSONResponse({"submitted": run_id})

    @router.post(f"{_RUNS}/launch-controller", openapi_extra=write)
    def launch_controller(
        workspace: str, run_id: str, who: Principal = Depends(principal_dep)
    ) -> JSONResponse:
        """Start a sweep's controller on the server."""
        _check_run(state, who, workspace, run_id, "write")
        execution.launch_controller(workspace, run_id)
        return JSONResponse({"launched": run_id})

    @router.post(f"{_RUNS}/cancel", openapi_extra=write)
    def cancel(
        workspace: str, run_id: str, who: Principal = Depends(principal_dep)
    ) -> JSONResponse:
        """Cancel a run (CancelRequested; its supervisor stops the script)."""
        _check_run(state, who, workspace, run_id, "write")
        return JSONResponse({"cancelled": execution.cancel(workspace, run_id)})

    @router.get(f"{_RUNS}/logs", openapi_extra=read)
    def logs(
        workspace: str,
        run_id: str,
        name: str,
        offset: int = 0,
        limit: int = 1 << 20,
        who: Principal = Depends(principal_dep),
    ) -> Response:
        """Bytes of one log from ``offset`` (live while the run executes)."""
        _check_run(state, who, workspace, run_id, "read")
        if offset < 0 or limit < 0:
            raise ValidationError("offset and limit must not be negative.")
        data = execution.read_log(
            workspace, run_id, safe_relpath(name, portable=True), offset, min(limit, _MAX_LOG_READ)
        )
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    @router.get(f"{_RUNS}/log-names", openapi_extra=read)
    def log_names(
        workspace: str, run_id: str, who: Principal = Depends(principal_dep)
    ) -> JSONResponse:
        """The run's logs so far."""
        _check_run(state, who, workspace, run_id, "read")
        return JSONResponse({"names": execution.log_names(workspace, run_id)})

    def _snapshots(workspace: str, who: Principal) -> SnapshotStore:
        workspace_id = state.workspace_id(workspace)
        if who.is_run:
            raise PermissionDenied("A run token cannot upload snapshots.")
        require(state, who, workspace_id, "write")
        return SnapshotStore(execution.home(workspace) / "snapshots")

    @router.post(f"{_SNAPSHOTS}/missing", openapi_extra=write)
    def missing(
        workspace: str,
        body: dict[str, Any] = Body(...),
        who: Principal = Depends(principal_dep),
    ) -> JSONResponse:
        """Which of these content digests the server lacks."""
        objects = body.get("objects")
        if not isinstance(objects, list) or not all(isinstance(o, str) for o in objects):
            raise ValidationError("Give {'objects': [sha256, ...]}.")
        return JSONResponse({"missing": _snapshots(workspace, who).missing_objects(objects)})

    @router.put(f"{_SNAPSHOTS}/objects/{{digest}}", openapi_extra=write)
    async def put_object(
        request: Request, workspace: str, digest: str, who: Principal = Depends(principal_dep)
    ) -> JSONResponse:
        """One content object (its hash is checked)."""
        store = await anyio.to_thread.run_sync(_snapshots, workspace, who)
        reader: Any = BodyReader(request.stream().__aiter__())
        written = await anyio.to_thread.run_sync(lambda: store.put_object(digest, reader))
        return JSONResponse({"digest": digest, "bytes": written})

    @router.put(f"{_SNAPSHOTS}/manifests/{{snapshot_id}}", openapi_extra=write)
    def put_manifest(
        workspace: str,
        snapshot_id: str,
        body: dict[str, Any] = Body(...),
        who: Principal = Depends(principal_dep),
    ) -> JSONResponse:
        """A snapshot's manifest (its id and objects are checked)."""
        if body.get("id") != snapshot_id:
            raise ValidationError("The manifest's id does not match the URL.")
        return JSONResponse({"id": _snapshots(workspace, who).put_manifest(body)})

    return router
