"""Accounts over HTTP: users (server admins), tokens (everyone, their own), workspace roles
(workspace admins).

Token secrets appear in one answer only — the one that creates the token — and are never logged.

Example::

    POST /api/v1/tokens {"name": "laptop", "expires_in_days": 90}   → {"token": {...}, "secret": "ty_…"}
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Body, Depends

from trainyard._store.entities import TokenInfo
from trainyard.exceptions import PermissionDenied, ValidationError
from trainyard.server.auth import Principal, require, require_server_admin
from trainyard.server.routes_store import check_name, check_text
from trainyard.server.state import ServerState


def _token_view(token: TokenInfo) -> dict[str, Any]:
    return asdict(token)


def accounts_router(state: ServerState, principal_dep: Callable[..., Principal]) -> APIRouter:
    """Users, tokens and roles (see the module docstring)."""
    router = APIRouter(prefix="/api/v1", tags=["accounts"])
    admin = {"x-trainyard-access": "server-admin"}
    own = {"x-trainyard-access": "authenticated"}
    ws_admin = {"x-trainyard-access": "workspace:admin"}

    @router.post("/users", openapi_extra=admin)
    def create_user(
        body: dict[str, Any] = Body(...),
        who: Principal = Depends(principal_dep),
    ) -> dict[str, Any]:
        """Create a user (server admins)."""
        require_server_admin(who)
        check_text(body, "create_user")
        name = body.get("name")
        if not isinstance(name, str):
            raise ValidationError("Give the new user's name: {'name': 'alice'}.")
        check_name("user", name)
        return asdict(state.accounts.create_user(name, is_admin=bool(body.get("is_admin", False))))

    @router.get("/users", openapi_extra=admin)
    def list_users(who: Principal = Depends(principal_dep)) -> dict[str, Any]:
        """Every user (server admins)."""
        require_server_admin(who)
        return {"users": [asdict(u) for u in state.accounts.list_users()]}

    @router.post("/users/{name}/disable", openapi_extra=admin)
    def disable_user(name: str, who: Principal = Depends(principal_dep)) -> dict[str, Any]:
        """Disable a user: every token of theirs stops working at once."""
        require_server_admin(who)
        if who.user is not None and who.user.name == name:
            raise ValidationError("You cannot disable yourself; ask another server admin.")
        return asdict(state.accounts.set_disabled(name, True))

    @router.post("/users/{name}/enable", openapi_extra=admin)
    def enable_user(name: str, who: Principal = Depends(principal_dep)) -> dict[str, Any]:
        """Enable a disabled user again."""
        require_server_admin(who)
        return asdict(state.accounts.set_disabled(name, False))

    @router.post("/tokens", openapi_extra=own)
    def create_token(
        body: dict[str, Any] = Body(default_factory=dict),
        who: Principal = Depends(principal_dep),
    ) -> dict[str, Any]:
        """A new token for yourself (server admins: for anyone, with ``user``)."""
        check_text(body, "create_token")
        if who.user is None:
            raise PermissionDenied("A run token cannot create tokens.")
        user = who.user
        target = body.get("user")
        if target is not None and target != user.name:
            require_server_admin(who)
            user = state.accounts.get_user(str(target))
        days = body.get("expires_in_days")
        if days is not None and (
            isinstance(days, bool) or not isinstance(days, int | float) or days <= 0
        ):
            raise ValidationError("expires_in_days must be a positive number of days.")
        expires = time.time() + float(days) * 86400 if days is not None else None
        name = body.get("name")
        token, secret = state.accounts.create_token(
            user.id, name=str(name) if name is not None else None, expires_at=expires
        )
        return {"token": _token_view(token), "secret": secret}

    @router.get("/tokens", openapi_extra=own)
    def list_tokens(
        user: str | None = None, who: Principal = Depends(principal_dep)
    ) -> dict[str, Any]:
        """Your tokens (server admins: ``?user=NAME``'s)."""
        if who.user is None:
            raise PermissionDenied("A run token has no tokens to list.")
        target = who.user
        if user is not None and user != target.name:
            require_server_admin(who)
            target = state.accounts.get_user(user)
        return {"tokens": [_token_view(t) for t in state.accounts.list_tokens(target.id)]}

    @router.post("/tokens/{token_id}/revoke", openapi_extra=own)
    def revoke_token(token_id: str, who: Principal = Depends(principal_dep)) -> dict[str, Any]:
        """Revoke one of your tokens (server admins: anyone's)."""
        token = state.accounts.get_token(token_id)
        mine = who.user is not None and token.user_id == who.user.id
        if not mine:
            require_server_admin(who)
        return _token_view(state.accounts.revoke_token(token_id))

    @router.get("/workspaces/{workspace}/roles", openapi_extra=ws_admin)
    def list_roles(workspace: str, who: Principal = Depends(principal_dep)) -> dict[str, Any]:
        """Members of a workspace and their roles (workspace admins)."""
        workspace_id = state.workspace_id(workspace)
        require(state, who, workspace_id, "admin")
        names = {u.id: u.name for u in state.accounts.list_users()}
        roles = state.accounts.roles(workspace_id)
        return {"roles": {names.get(uid, uid): role for uid, role in sorted(roles.items())}}

    @router.put("/workspaces/{workspace}/roles/{user}", openapi_extra=ws_admin)
    def set_role(
        workspace: str,
        user: str,
        body: dict[str, Any] = Body(...),
        who: Principal = Depends(principal_dep),
    ) -> dict[str, Any]:
        """Give a user a role in the workspace (``{"role": null}`` removes it)."""
        check_text(body, "set_role")
        workspace_id = state.workspace_id(workspace)
        require(state, who, workspace_id, "admin")
        role = body.get("role")
        if role is not None and not isinstance(role, str):
            raise ValidationError("role must be 'reader', 'contributor', 'admin' or null.")
        member = state.accounts.get_user(user)
        state.accounts.set_role(workspace_id, member.id, role)
        return {"workspace": workspace, "user": member.name, "role": role}

    return router
