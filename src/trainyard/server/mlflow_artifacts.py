"""MLflow's artifact proxy on the team server: ``…/api/2.0/mlflow-artifacts/artifacts/<path>``.

Two kinds of path:

* ``<experiment id>/<run id>/artifacts/<rel>``: a run's files (PUT uploads one, raw body, streamed
  to disk; GET downloads; ``GET …/artifacts?path=…`` lists one level), stored as the run's files;
* ``_registry/<model name>/<version>/<rel>``: a registered model version's files (read-only), what
  ``get-download-uri`` answers so ``mlflow.<flavor>.load_model("models:/<name>/<version>")``
  downloads from the registry itself.

Multipart uploads (``…/mlflow-artifacts/mpu/create|complete|abort/<folder>``, the client's
``MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=true``) are served for run files: ``create`` answers one
presigned URL per part (``…/mpu/part/<upload id>/<n>?sig=…``, the secret in the URL as S3's are),
see :mod:`trainyard.server.mlflow_multipart`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from trainyard._store.artifacts import safe_relpath
from trainyard.mlflow_plugin._uri import REGISTRY_SEGMENT
from trainyard.server.auth import Principal
from trainyard.server.mlflow_common import (
    BASE,
    PRESIGNED,
    READ,
    WRITE,
    Access,
    MlflowError,
    error_response,
    with_bearer,
)
from trainyard.server.mlflow_multipart import MultipartUploads
from trainyard.server.routes_artifacts import BodyReader
from trainyard.server.state import ServerState


def target(api: Access, path: str) -> tuple[str | None, str]:
    """(run id or ``None`` for a registry path, the file's path in the artifact store)."""
    parts = safe_relpath(path).split("/")
    if parts[0] == REGISTRY_SEGMENT:
        if len(parts) < 3 or not parts[2].isdigit():
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"Registry path {path!r} is not {REGISTRY_SEGMENT}/<name>/<version>/<path>.",
            )
        name = urllib.parse.unquote(parts[1])
        info = api.store.get_model(api.ws_id, name, int(parts[2]))
        return None, "/".join([info.storage_prefix, *parts[3:]]).rstrip("/")
    if len(parts) < 3 or parts[2] != "artifacts":
        raise MlflowError(
            "INVALID_PARAMETER_VALUE",
            f"Artifact path {path!r} is not <experiment id>/<run id>/artifacts/<path>.",
        )
    run = api.run(parts[1])
    rel = "/".join(parts[3:])
    return run.run_id, f"runs/{run.run_id}/{rel}".rstrip("/")


def _root_of(api: Access, path: str) -> tuple[str, str]:
    """(the listed folder's root in the artifact store, the path below it) of a list call."""
    parts = safe_relpath(path).split("/")
    depth = 3
    _, root = target(api, "/".join([*parts[:depth], "x"]))
    return root.rsplit("/", 1)[0], "/".join(parts[depth:])


async def _put(state: ServerState, workspace: str, path: str, request: Request) -> None:
    api = Access(state, workspace, request.state.mlflow_principal)
    run_id, dest = target(api, path)
    if run_id is None:
        raise MlflowError(
            "PERMISSION_DENIED", "Registered model files are read-only; log to a run instead.", 403
        )
    api.write(run_id)
    store = state.artifacts(workspace)
    reader: Any = BodyReader(request.stream().__aiter__())
    await anyio.to_thread.run_sync(lambda: store.write_stream(dest, reader))


def add_routes(router: APIRouter, state: ServerState, principal: Callable[..., Principal]) -> None:
    """The proxy's routes (see the module docstring)."""
    base = f"{BASE}/api/2.0/mlflow-artifacts"

    @router.put(f"{base}/artifacts/{{path:path}}", openapi_extra=WRITE)
    async def put_artifact(workspace: str, path: str, request: Request) -> Response:
        """Upload one run file (raw body, streamed to disk)."""
        try:
            request.state.mlflow_principal = principal(with_bearer(request))
            await _put(state, workspace, path, request)
        except Exception as err:
            return error_response(err)
        return JSONResponse({})

    @router.get(f"{base}/artifacts/{{path:path}}", openapi_extra=READ)
    async def get_artifact(workspace: str, path: str, request: Request) -> Response:
        """Download one run file or registered model file."""
        try:
            api = Access(state, workspace, principal(with_bearer(request)))
            api.read()
            _, dest = target(api, path)
            local = state.artifacts(workspace).local_file(dest)
            if local is None or not local.is_file():
                raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No artifact at {path!r}.", 404)
        except Exception as err:
            return error_response(err)
        return FileResponse(
            local,
            media_type="application/octet-stream",
            headers={"X-Content-Type-Options": "nosniff"},
            content_disposition_type="attachment",
            filename=local.name,
        )

    @router.get(f"{base}/artifacts", openapi_extra=READ)
    async def list_artifacts(workspace: str, request: Request, path: str = "") -> Response:
        """One level of a run's (or a model version's) files."""
        try:
            api = Access(state, workspace, principal(with_bearer(request)))
            api.read()
            if not path:
                raise MlflowError(
                    "INVALID_PARAMETER_VALUE",
                    "Give path=<experiment id>/<run id>/artifacts[/<folder>] to list.",
                )
            root, rel = _root_of(api, path)
            files = await anyio.to_thread.run_sync(lambda: api.listing(root, rel))
            for f in files:  # relative to the folder listed, as MLflow's server answers
                f["path"] = f["path"][len(rel) + 1 :] if rel else f["path"]
        except Exception as err:
            return error_response(err)
        return JSONResponse({"files": files})

    async def multipart(workspace: str, path: str, request: Request, step: str) -> Response:
        try:
            principal_ = principal(with_bearer(request))
            api = Access(state, workspace, principal_)
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("path"), str):
                raise MlflowError(
                    "INVALID_PARAMETER_VALUE", "Give path: the local file's path (its name)."
                )
            name = body["path"].replace("\\", "/").rsplit("/", 1)[-1]
            run_id, dest = target(api, f"{path.strip('/')}/{name}")
            if run_id is None:
                raise MlflowError(
                    "PERMISSION_DENIED",
                    "Registered model files are read-only; log to a run instead.",
                    403,
                )
            api.write(run_id)
            uploads = MultipartUploads(state.workspace_folder(workspace) / "uploads" / "mpu")
            owner = principal_.token.id
            if step == "create":
                num_parts = body.get("num_parts", 1)
                if isinstance(num_parts, str) and num_parts.isdigit():  # MLflow's "intlike"
                    num_parts = int(num_parts)
                upload_id, secret = uploads.create(dest, run_id, owner, num_parts)
                credentials = [
                    {
                        "url": str(
                            request.url_for(
                                "mlflow.mpu.part",
                                workspace=workspace,
                                upload_id=upload_id,
                                part_number=str(n),
                            ).include_query_params(sig=secret)
                        ),
                        "part_number": n,
                        "headers": {},
                    }
                    for n in range(1, num_parts + 1)
                ]
                return JSONResponse({"upload_id": upload_id, "credentials": credentials})
            upload_id = str(body.get("upload_id", ""))
            if step == "complete":
                raw = body.get("parts")
                if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
                    raise MlflowError(
                        "INVALID_PARAMETER_VALUE", "Give parts: [{part_number, etag}, …]."
                    )
                parts = [(int(p["part_number"]), str(p.get("etag", ""))) for p in raw]
                store = state.artifacts(workspace)
                await anyio.to_thread.run_sync(
                    lambda: uploads.complete(upload_id, owner, dest, parts, store)
                )
            else:
                await anyio.to_thread.run_sync(lambda: uploads.abort(upload_id, owner, dest))
        except Exception as err:
            return error_response(err)
        return JSONResponse({})

    for step in ("create", "complete", "abort"):

        async def handler(
            workspace: str, path: str, request: Request, step: str = step
        ) -> Response:
            return await multipart(workspace, path, request, step)

        handler.__name__ = f"mlflow_mpu_{step}"
        handler.__doc__ = f"Multipart upload of a run file: {step}."
        router.add_api_route(
            f"{base}/mpu/{step}/{{path:path}}",
            handler,
            methods=["POST"],
            openapi_extra=WRITE,
            name=f"mlflow.mpu.{step}",
        )

    @router.put(
        f"{base}/mpu/part/{{upload_id}}/{{part_number}}",
        openapi_extra=PRESIGNED,
        name="mlflow.mpu.part",
    )
    async def put_part(
        workspace: str, upload_id: str, part_number: int, request: Request, sig: str = ""
    ) -> Response:
        """One part of a multipart upload; the URL's ``sig`` (from ``create``) authorises it."""
        try:
            state.workspace_id(workspace)
            uploads = MultipartUploads(state.workspace_folder(workspace) / "uploads" / "mpu")
            reader: Any = BodyReader(request.stream().__aiter__())
            etag = await anyio.to_thread.run_sync(
                lambda: uploads.receive_part(upload_id, part_number, sig, reader)
            )
        except Exception as err:
            return error_response(err)
        return JSONResponse({}, headers={"ETag": etag})
