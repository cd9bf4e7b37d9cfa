"""The metadata seam over HTTP: one route per operation of :mod:`trainyard._store.rest.protocol`.

Each route decodes its JSON arguments with the types of the ``TrackingStore`` method, checks the
caller (see :func:`authorize`), answers a repeated non-idempotent call from its ``Idempotency-Key``,
and calls the server's SQL store.

Example::

    router = store_router(state, principal_dependency)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from trainyard._lifecycle import RunStatus
from trainyard._store.artifacts import safe_relpath
from trainyard._store.entities import ModelInfo, NewRun
from trainyard._store.rest import paging
from trainyard._store.rest.codec import decode, encode
from trainyard._store.rest.protocol import OPERATIONS, Operation
from trainyard.exceptions import (
    InvalidNameError,
    PathSafetyError,
    PermissionDenied,
    ValidationError,
)
from trainyard.server.auth import (
    Principal,
    require,
    require_run_write,
    require_server_admin,
)
from trainyard.server.state import ServerState

#: Arguments (and entity fields) that name something: they become path segments on the server
#: (``runs/<run_id>/``, ``models/<name>/``), so each must be one safe segment.
NAME_FIELDS = ("name", "run_id", "parent_run_id", "workspace_id", "target", "snapshot_id")


def check_name(what: str, value: object) -> None:
    """``InvalidNameError`` unless ``value`` (when a str) is one safe, portable path segment."""
    if not isinstance(value, str):
        return
    try:
        ok = "/" not in value and safe_relpath(value, portable=True) == value
    except PathSafetyError:
        ok = False
    if not ok:
        shown = value if len(value) <= 200 else value[:200] + "..."
        raise InvalidNameError(
            f"{what}: {shown!r} is not a valid name (one path segment: no '/', '..', '\\', "
            "control characters, URL or Windows device names).",
            name=shown,
        )


def check_text(value: Any, where: str) -> None:
    """Text in a JSON body must be storable: no NUL (PostgreSQL refuses it) and no lone
    surrogate (``"\\udcff"`` decodes to a str that UTF-8 cannot encode). A 400 otherwise."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError(f"{where}: text must not contain NUL characters.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(
                f"{where}: text must be valid Unicode (a lone surrogate)."
            ) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_text(key, where)
            check_text(item, where)
    elif isinstance(value, list):
        for item in value:
            check_text(item, where)


def decode_args(op: Operation, body: Any) -> dict[str, Any]:
    """The call's arguments, typed; ``ValidationError`` naming what is wrong."""
    if not isinstance(body, Mapping):
        raise ValidationError(f"{op.name}: the body must be a JSON object of arguments.")
    check_text(body, op.name)
    known = {p.name for p in op.params}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValidationError(f"{op.name}: unknown arguments {unknown}; it takes {sorted(known)}.")
    args: dict[str, Any] = {}
    for p in op.params:
        if p.name in body:
            args[p.name] = decode(p.annotation, body[p.name])
        elif p.required:
            raise ValidationError(f"{op.name}: argument {p.name!r} is required.")
    for key, value in args.items():
        if key in NAME_FIELDS:
            check_name(f"{op.name}: {key}", value)
        elif key in ("new", "model"):
            for field_name in NAME_FIELDS:
                check_name(f"{op.name}: {key}.{field_name}", getattr(value, field_name, None))
    return args


def _workspace_of(state: ServerState, op: Operation, args: Mapping[str, Any]) -> str:
    if op.scope == "workspace_id":
        return str(args["workspace_id"])
    if op.scope == "run_id":
        return state.run_facts(str(args["run_id"]))[0]
    if op.scope == "experiment_id":
        return state.workspace_of_experiment(int(args["experiment_id"]))
    if op.scope == "new":
        new: NewRun = args["new"]
        return state.workspace_of_experiment(new.experiment_id)
    if op.scope == "model":
        model: ModelInfo = args["model"]
        return model.workspace_id
    if op.scope == "run_query":
        if args.get("workspace_id") is not None:
            return str(args["workspace_id"])
        if args.get("experiment_id") is not None:
            return state.workspace_of_experiment(int(args["experiment_id"]))
        if args.get("parent_run_id") is not None:
            return state.run_facts(str(args["parent_run_id"]))[0]
        raise PermissionDenied(
            "list_runs needs a workspace_id, experiment_id or parent_run_id on a team server."
        )
    return state.workspace_id(str(args["name"]))


def authorize(
    state: ServerState, principal: Principal, op: Operation, args: Mapping[str, Any]
) -> None:
    """Deny unless the caller may make this call (see :mod:`trainyard.server.auth`)."""
    if op.name == "ensure_workspace" or op.scope == "global":
        require_server_admin(principal)
        return
    workspace_id = _workspace_of(state, op, args)
    if not principal.is_run:
        require(state, principal, workspace_id, op.access)
        return
    if principal.token.workspace_id != workspace_id:
        raise PermissionDenied("This run token belongs to another workspace.")
    if op.access == "read":
        return
    if op.name == "create_run":
        require_run_write(state, principal, args["new"].parent_run_id)
    elif op.name == "create_model":
        require_run_write(state, principal, args["model"].run_id)
    elif op.run_arg is not None:
        require_run_write(state, principal, str(args[op.run_arg]))
    else:
        raise PermissionDenied(f"A run token may not call {op.name}.")


def store_router(state: ServerState, principal: Callable[..., Principal]) -> APIRouter:
    """One POST route per store operation."""
    router = APIRouter(tags=["store"])
    for op in OPERATIONS.values():
        router.add_api_route(
            op.path,
            _handler(state, op, principal),
            methods=["POST"],
            name=f"store.{op.name}",
            summary=f"TrackingStore.{op.name}",
            openapi_extra={"x-trainyard-access": f"store:{op.access}"},
            response_class=Response,
        )
    return router


def _handler(
    state: ServerState, op: Operation, principal_dep: Callable[..., Principal]
) -> Callable[..., Response]:
    def handler(
        request: Request,
        body: dict[str, Any] = Body(default_factory=dict),
        principal: Principal = Depends(principal_dep),
    ) -> Response:
        cursor = size = None
        if op.paged and isinstance(body, dict):
            body = dict(body)
            cursor, size = body.pop(paging.PAGE_CURSOR, None), body.pop(paging.PAGE_SIZE, None)
            paging.page_size(size)
        args = decode_args(op, body)
        authorize(state, principal, op, args)
        key = None if op.idempotent else request.headers.get("idempotency-key")
        if key:
            earlier = state.accounts.recall(key, op.name)
            if earlier is not None:
                return Response(earlier, media_type="application/json")
        result = getattr(state.store, op.name)(**args)
        if op.name == "create_run":
            state.note_run(result)
        elif op.name == "ensure_workspace":
            state.workspace_folder(result.name).mkdir(parents=True, exist_ok=True)
        if op.name == "update_run_status" and RunStatus.parse(result.status).is_terminal():
            state.accounts.revoke_run_tokens(result.run_id)  # a run's credential ends with it
        if op.paged:
            items, after = paging.cut(encode(result), cursor, size)
            payload = json.dumps({"result": items, paging.NEXT: after})
        else:
            payload = json.dumps({"result": encode(result)})
        if key:
            state.accounts.remember(key, op.name, payload)
        return Response(payload, media_type="application/json")

    handler.__name__ = f"store_{op.name}"
    handler.__doc__ = (getattr(type(state.store), op.name).__doc__ or "").strip() or None
    return handler
