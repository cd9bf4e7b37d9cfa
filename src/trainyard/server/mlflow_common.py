"""What every MLflow route of the team server shares: MLflow's error format, reading a request's
fields, basic auth as a bearer token, the access checks of one request's workspace, and the route
table → FastAPI routes glue. No MLflow import.

Example::

    add_json_routes(router, (("GET", "runs/get", "runs_get", READ),), state, principal, Api)
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from trainyard._store.entities import ExperimentInfo, RunInfo
from trainyard.exceptions import (
    AlreadyExistsError,
    AuthenticationError,
    NotFoundError,
    PermissionDenied,
    RateLimited,
    TrainyardError,
    UserErrorException,
)
from trainyard.mlflow_plugin import _mapping as m
from trainyard.server.auth import Principal, require, require_run_write
from trainyard.server.state import ServerState

BASE = "/mlflow/{workspace}"
READ = {"x-trainyard-access": "store:read"}
WRITE = {"x-trainyard-access": "store:write"}
#: A multipart upload's part: no token, the URL's secret (from ``mpu/create``) authorises it.
PRESIGNED = {"x-trainyard-access": "presigned"}
#: One route: HTTP method, path below ``…/2.0/mlflow/``, handler method name, access rule.
RouteSpec = tuple[str, str, str, dict[str, str]]


class MlflowError(Exception):
    """An answer in MLflow's error format."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def error_response(err: BaseException) -> JSONResponse:
    """``{"error_code", "message"}`` with the status MLflow's client expects for ``err``."""
    if isinstance(err, MlflowError):
        code, status, message = err.code, err.status, err.message
    elif isinstance(err, NotFoundError):
        code, status, message = "RESOURCE_DOES_NOT_EXIST", 404, err.message
    elif isinstance(err, AlreadyExistsError):
        code, status, message = "RESOURCE_ALREADY_EXISTS", 400, err.message
    elif isinstance(err, AuthenticationError):
        code, status, message = "UNAUTHENTICATED", 401, err.message
    elif isinstance(err, PermissionDenied):
        code, status, message = "PERMISSION_DENIED", 403, err.message
    elif isinstance(err, RateLimited):
        code, status, message = "REQUEST_LIMIT_EXCEEDED", 429, err.message
    elif isinstance(err, UserErrorException):
        code, status, message = "INVALID_PARAMETER_VALUE", 400, err.message
    elif isinstance(err, TrainyardError):
        code, status, message = "INTERNAL_ERROR", err.http_status, err.message
    else:  # a malformed request that got past the checks: the caller's input, not a fault here
        code, status, message = "INVALID_PARAMETER_VALUE", 400, f"Bad request: {err}"
    headers = {"X-Trainyard-Error-Code": code}
    return JSONResponse({"error_code": code, "message": message}, status, headers=headers)


def need(args: dict[str, Any], key: str) -> str:
    """A required scalar field as a string (``INVALID_PARAMETER_VALUE`` when missing)."""
    value = args.get(key)
    if value is None or value == "":
        raise MlflowError(
            "INVALID_PARAMETER_VALUE", f"Missing value for required parameter '{key}'."
        )
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Parameter '{key}' must be a string.")
    return str(value)


class Access:
    """One request's workspace and caller: the role checks and the lookups every handler needs."""

    def __init__(self, state: ServerState, workspace: str, principal: Principal) -> None:
        self.state, self.workspace, self.principal = state, workspace, principal
        self.store = state.store
        self.ws_id = state.workspace_id(workspace)

    def read(self) -> None:
        """Deny unless the caller may read the workspace."""
        require(self.state, self.principal, self.ws_id, "read")

    def write(self, run_id: str | None = None) -> None:
        """Deny unless the caller may write (a run token: only its own run and children)."""
        if self.principal.is_run:
            require_run_write(self.state, self.principal, run_id)
        else:
            require(self.state, self.principal, self.ws_id, "write")

    def run(self, run_id: str) -> RunInfo:
        """The run, if it is in this workspace (else ``RESOURCE_DOES_NOT_EXIST``)."""
        info = self.store.get_run(run_id)
        if info.workspace_id != self.ws_id:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found", 404)
        return info

    def experiment(self, experiment_id: str) -> ExperimentInfo:
        """The experiment with MLflow id ``experiment_id`` (``"0"``: ``Default``, created)."""
        try:
            exp_id = m.to_trainyard_experiment_id(experiment_id)
        except ValueError:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE", f"Invalid experiment id {experiment_id!r}."
            ) from None
        if exp_id is None:
            return self.store.get_or_create_experiment(self.ws_id, m.DEFAULT_EXPERIMENT_NAME)
        exp = self.store.get_experiment_by_id(exp_id)
        if exp.workspace_id != self.ws_id:
            raise MlflowError(
                "RESOURCE_DOES_NOT_EXIST", f"No Experiment with id={experiment_id} exists", 404
            )
        return exp

    def listing(self, root: str, rel: str) -> list[dict[str, Any]]:
        """MLflow's one-level listing of ``root/rel``: files with sizes, folders once."""
        store = self.state.artifacts(self.workspace)
        prefix = f"{root}/{rel}".rstrip("/")
        seen: dict[str, dict[str, Any]] = {}
        for path in store.list(prefix):
            below = path[len(prefix) + 1 :] if path.startswith(prefix + "/") else ""
            if not below:
                continue
            head, _, rest = below.partition("/")
            name = f"{rel}/{head}".strip("/")
            if rest:
                seen.setdefault(name, {"path": name, "is_dir": True})
            else:
                seen[name] = {"path": name, "is_dir": False, "file_size": store.size(path)}
        return sorted(seen.values(), key=lambda f: str(f["path"]))


async def request_args(request: Request) -> dict[str, Any]:
    """A request's fields: the query of a GET, the JSON object body of anything else."""
    if request.method == "GET":
        out: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in out:
                out[key] = [*(out[key] if isinstance(out[key], list) else [out[key]]), value]
            else:
                out[key] = [value] if key in ("experiment_ids", "stages") else value
        return out
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MlflowError("MALFORMED_REQUEST", f"The body is not JSON: {err}.") from None
    if not isinstance(body, dict):
        raise MlflowError("MALFORMED_REQUEST", "The body must be a JSON object.")
    return body


def with_bearer(request: Request) -> Request:
    """MLflow's basic auth (any user name, the token as password) as a bearer token."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return request
    try:
        _, _, secret = base64.b64decode(value.strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return request
    scope = dict(request.scope)
    scope["headers"] = [
        (k, v) for k, v in request.scope["headers"] if k.lower() != b"authorization"
    ] + [(b"authorization", f"Bearer {secret}".encode())]
    return Request(scope, request.receive)


def add_json_routes(
    router: APIRouter,
    table: Sequence[RouteSpec],
    state: ServerState,
    principal: Callable[..., Principal],
    factory: Callable[[ServerState, str, Principal], Any],
) -> None:
    """One route per row, under ``/api/2.0/mlflow/`` and ``/ajax-api/2.0/mlflow/``: the handler
    is ``factory(state, workspace, caller).<method>(fields)`` in a worker thread."""

    def _with_path_parameters(rule: Any, path: str) -> Any:
        # The handler reads these from request.path_params; declare them so the OpenAPI document
        # is valid (schemathesis and other clients need every {name} in a path described).
        names = re.findall(r"{(\w+)}", path)
        if not names:
            return rule
        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
        ]
        return {**(rule or {}), "parameters": [*(rule or {}).get("parameters", []), *params]}

    def endpoint(method_name: str) -> Callable[..., Any]:
        async def handler(workspace: str, request: Request) -> Response:
            try:
                who = principal(with_bearer(request))
                args = await request_args(request)
                args.update({k: x for k, x in request.path_params.items() if k != "workspace"})

                def call() -> dict[str, Any]:
                    result: dict[str, Any] = getattr(factory(state, workspace, who), method_name)(
                        args
                    )
                    return result

                result = await anyio.to_thread.run_sync(call)
            except Exception as err:
                return error_response(err)
            return Response(json.dumps(result, allow_nan=False), media_type="application/json")

        handler.__name__ = f"mlflow_{method_name}"
        return handler

    for prefix in ("api", "ajax-api"):
        for method, path, name, rule in table:
            router.add_api_route(
                f"{BASE}/{prefix}/2.0/mlflow/{path}",
                endpoint(name),
                methods=[method],
                name=f"mlflow.{prefix}.{method}.{path}",
                openapi_extra=_with_path_parameters(rule, path),
                response_class=Response,
            )
