"""The bytes seam over HTTP: a workspace's files, streamed both ways.

``PUT /api/v1/workspaces/{ws}/artifacts/{path}`` streams the request body into the workspace's
artifact store (staged, then published atomically; never held in memory; ``?overwrite=0`` refuses an
existing file); ``GET``/``HEAD`` serve a file (``Range`` honoured) as an attachment with
``X-Content-Type-Options: nosniff``; ``DELETE`` removes one; ``artifacts-list``,
``artifacts-delete-prefix`` and ``artifacts-link`` do the rest of the :class:`ArtifactStore`
protocol. Every path goes through the store's path-safety choke point. Readers need ``reader``,
writers ``contributor``; a run token writes only under ``runs/<its run or a child>/`` (and may link
its files into ``models/``, as ``run.register_model`` does).

Example::

    router = artifact_router(state, principal_dependency)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from trainyard._store.artifacts import safe_relpath
from trainyard._store.rest import paging
from trainyard.exceptions import ArtifactNotFound, PermissionDenied, ValidationError
from trainyard.server.auth import Principal, require, require_run_write
from trainyard.server.state import ServerState
from trainyard.server.uploads import UPLOAD_HEADER, Uploads

_PREFIX = "/api/v1/workspaces/{workspace}"


def _rel(path: str) -> str:
    """A path from a client: the choke point, strict about names other systems cannot hold."""
    return safe_relpath(path, portable=True)


class BodyReader:
    """A blocking ``read(n)`` over the request's body stream, for a worker thread (the bytes are
    pulled from the event loop chunk by chunk: memory stays flat for any upload size)."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self._stream = stream
        self._buffer = b""
        self._done = False

    async def _next(self) -> bytes:
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            return b""

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = anyio.from_thread.run(self._next)
            if not chunk:
                self._done = True
                break
            self._buffer += chunk
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def readable(self) -> bool:
        return True


def _check(
    state: ServerState, principal: Principal, workspace: str, need: str, paths: tuple[str, ...]
) -> None:
    workspace_id = state.workspace_id(workspace)
    if principal.is_run:
        if principal.token.workspace_id != workspace_id:
            raise PermissionDenied("This run token belongs to another workspace.")
        if need == "read":
            return
        for path in paths:
            parts = path.split("/")
            if parts[0] == "models" and need == "link-dst":
                continue
            if parts[0] != "runs" or len(parts) < 3:
                raise PermissionDenied(f"A run token may write only its run's files, not {path!r}.")
            require_run_write(state, principal, parts[1])
        return
    require(state, principal, workspace_id, "read" if need == "read" else "write")


def artifact_router(state: ServerState, principal_dep: Callable[..., Principal]) -> APIRouter:
    """The artifact routes (see the module docstring)."""
    router = APIRouter(tags=["artifacts"])
    read_rule = {"x-trainyard-access": "artifacts:read"}
    write_rule = {"x-trainyard-access": "artifacts:write"}

    @router.put(f"{_PREFIX}/artifacts/{{path:path}}", openapi_extra=write_rule)
    async def put_artifact(
        request: Request,
        workspace: str,
        path: str,
        overwrite: bool = True,
        principal: Principal = Depends(principal_dep),
    ) -> Response:
        """Write a file (streamed body). With ``X-Trainyard-Upload-Id`` and ``Content-Range``
        the body is one part of a resumable upload (see :mod:`trainyard.server.uploads`)."""
        rel = _rel(path)
        await anyio.to_thread.run_sync(_check, state, principal, workspace, "write", (rel,))
        store = await anyio.to_thread.run_sync(state.artifacts, workspace)
        reader: Any = BodyReader(request.stream().__aiter__())
        upload_id = request.headers.get(UPLOAD_HEADER)
        try:
            if upload_id is not None:
                uploads = Uploads(state.workspace_folder(workspace) / "uploads")
                answer = await anyio.to_thread.run_sync(
                    lambda: uploads.receive(
                        upload_id,
                        rel,
                        principal.token.id,
                        request.headers.get("content-range"),
                        reader,
                        store,
                        overwrite=overwrite,
                    )
                )
                status = 200 if answer["complete"] else 202
                return JSONResponse({**answer, "bytes": answer["offset"]}, status_code=status)
            written = await anyio.to_thread.run_sync(
                lambda: store.write_stream(rel, reader, overwrite=overwrite)
            )
        except ClientDisconnect:  # nobody is left to answer; a resumable part keeps its bytes
            return Response(status_code=400)
        return JSONResponse({"path": rel, "bytes": written})

    @router.get(f"{_PREFIX}/artifact-uploads/{{upload_id}}", openapi_extra=write_rule)
    def upload_status(
        workspace: str, upload_id: str, principal: Principal = Depends(principal_dep)
    ) -> JSONResponse:
        """How many bytes of a resumable upload the server holds (resume from ``offset``)."""
        require(state, principal, state.workspace_id(workspace), "read")
        info = Uploads(state.workspace_folder(workspace) / "uploads").session(upload_id)
        if info.get("owner") != principal.token.id:
            raise PermissionDenied("This upload session belongs to another caller.")
        _check(state, principal, workspace, "write", (str(info["path"]),))
        return JSONResponse(
            {"path": info["path"], "offset": info["offset"], "total": info["total"]}
        )

    @router.get(f"{_PREFIX}/artifacts/{{path:path}}", openapi_extra=read_rule)
    def get_artifact(
        workspace: str, path: str, principal: Principal = Depends(principal_dep)
    ) -> Response:
        """Read a file (``Range`` supported)."""
        return _serve(workspace, path, principal)

    @router.head(f"{_PREFIX}/artifacts/{{path:path}}", openapi_extra=read_rule)
    def head_artifact(
        workspace: str, path: str, principal: Principal = Depends(principal_dep)
    ) -> Response:
        """A file's size (``Content-Length``), or 404."""
        return _serve(workspace, path, principal)

    def _serve(workspace: str, path: str, principal: Principal) -> Response:
        rel = _rel(path)
        _check(state, principal, workspace, "read", (rel,))
        local = state.artifacts(workspace).local_file(rel)
        if local is None:  # pragma: no cover - the server's store is a local folder
            raise ArtifactNotFound(f"No artifact {rel!r}.", path=rel)
        name = rel.rsplit("/", 1)[-1]
        return FileResponse(
            local,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )

    @router.delete(f"{_PREFIX}/artifacts/{{path:path}}", openapi_extra=write_rule)
    def delete_artifact(
        workspace: str, path: str, principal: Principal = Depends(principal_dep)
    ) -> JSONResponse:
        """Delete one file."""
        rel = _rel(path)
        _check(state, principal, workspace, "write", (rel,))
        state.artifacts(workspace).delete(rel)
        return JSONResponse({"deleted": rel})

    @router.get(f"{_PREFIX}/artifacts-list", openapi_extra=read_rule)
    def list_artifacts(
        workspace: str,
        prefix: str = "",
        page_cursor: str | None = None,
        page_size: int | None = None,
        principal: Principal = Depends(principal_dep),
    ) -> JSONResponse:
        """The files under a folder prefix, a page at a time (``next_page_cursor``)."""
        rel = _rel(prefix) if prefix not in ("", ".") else ""
        _check(state, principal, workspace, "read", (rel,))
        paths, after = paging.cut(state.artifacts(workspace).list(rel), page_cursor, page_size)
        return JSONResponse({"paths": paths, paging.NEXT: after})

    @router.post(f"{_PREFIX}/artifacts-delete-prefix", openapi_extra=write_rule)
    def delete_prefix(
        workspace: str,
        body: dict[str, Any] = Body(...),
        principal: Principal = Depends(principal_dep),
    ) -> JSONResponse:
        """Delete every file under a folder prefix."""
        raw = body.get("prefix")
        if not isinstance(raw, str):
            raise ValidationError("Give the folder to delete as {'prefix': 'runs/<id>/…'}.")
        rel = _rel(raw) if raw not in ("", ".") else ""
        if rel:
            _check(state, principal, workspace, "write", (rel + "/x",))
        else:  # every file of the workspace: its admins only
            require(state, principal, state.workspace_id(workspace), "admin")
        return JSONResponse({"deleted": state.artifacts(workspace).delete_prefix(rel)})

    @router.post(f"{_PREFIX}/artifacts-link", openapi_extra=write_rule)
    def link(
        workspace: str,
        body: dict[str, Any] = Body(...),
        principal: Principal = Depends(principal_dep),
    ) -> JSONResponse:
        """Make ``dst`` share ``src``'s bytes."""
        src, dst = body.get("src"), body.get("dst")
        if not isinstance(src, str) or not isinstance(dst, str):
            raise ValidationError("Give {'src': path, 'dst': path}.")
        src, dst = _rel(src), _rel(dst)
        _check(state, principal, workspace, "read", (src,))
        _check(state, principal, workspace, "link-dst", (dst,))
        state.artifacts(workspace).link(src, dst)
        return JSONResponse({"src": src, "dst": dst})

    return router
