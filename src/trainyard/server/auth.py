"""Who is calling, and may they: bearer tokens, workspace roles, run-scoped tokens, rate limits.

Every request but the health checks carries ``Authorization: Bearer <token>`` (a user token from
``trainyard token create`` / ``trainyard login``, or a run token the server issued for one run's
supervisor and script). Roles are per workspace: ``reader`` may read, ``contributor`` may also write
(submit, log, register, deploy), ``admin`` may also manage compute targets and the workspace's
members; a server admin (``is_admin``) is admin everywhere and manages users. A run token reads its
workspace and writes only its own run and that run's children (and models registered from them).
Deny by default: a call no rule allows is refused with 403, an unknown or missing token with 401.

Example::

    principal = authenticate(state, request)
    require(state, principal, workspace_id, "write")
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from trainyard._store.entities import TokenInfo, UserInfo
from trainyard._store.sql.accounts import ROLES, hash_token
from trainyard.exceptions import AuthenticationError, PermissionDenied, RateLimited
from trainyard.server.state import ServerState

Need = Literal["read", "write", "admin"]
_ROLE_FOR: dict[str, str] = {"read": "reader", "write": "contributor", "admin": "admin"}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a token and, for user tokens, its user."""

    token: TokenInfo
    user: UserInfo | None

    @property
    def is_run(self) -> bool:
        return self.token.kind == "run"

    @property
    def is_server_admin(self) -> bool:
        return self.user is not None and self.user.is_admin

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.name
        return f"run:{self.token.run_id}"


class FailureLimiter:
    """At most ``per_minute`` failed authentications per client address in any 60 s."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}
        self._valid: set[str] = set()
        self._lock = threading.Lock()

    def known(self, secret: str) -> bool:
        """Whether this secret was valid before (its hash is kept, never the secret)."""
        with self._lock:
            return hash_token(secret) in self._valid

    def remember(self, secret: str) -> None:
        with self._lock:
            if len(self._valid) > 100_000:
                self._valid.clear()
            self._valid.add(hash_token(secret))

    def check(self, client: str) -> None:
        with self._lock:
            window = self._window(client)
            if len(window) >= self._per_minute:
                wait = 60.0 - (time.monotonic() - window[0])
                raise RateLimited(
                    f"Too many failed logins from {client}; try again in {max(1, int(wait))} s.",
                    retry_after=max(1, int(wait)),
                )

    def failed(self, client: str) -> None:
        with self._lock:
            self._window(client).append(time.monotonic())

    def _window(self, client: str) -> deque[float]:
        window = self._failures.setdefault(client, deque())
        cutoff = time.monotonic() - 60.0
        while window and window[0] < cutoff:
            window.popleft()
        return window


def authenticate(
    state: ServerState, authorization: str | None, client: str, limiter: FailureLimiter
) -> Principal:
    """The caller behind an ``Authorization`` header; ``AuthenticationError`` if none is valid.

    Guessing is rate limited: after too many wrong tokens from one address in a minute, further
    tries from there get 429 before any is checked — except tokens this process has already seen
    valid, so the people behind a shared address keep working during an attack.
    """
    secret = ""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            secret = value.strip()
    if not secret:
        raise AuthenticationError(
            "This server needs a token: send `Authorization: Bearer <token>` (set TRAINYARD_TOKEN, "
            "or run `trainyard login URL`)."
        )
    if not limiter.known(secret):
        limiter.check(client)
    found = state.accounts.authenticate_caller(secret)
    if found is None:
        limiter.failed(client)
        raise AuthenticationError(
            "The token is unknown, expired or revoked, or its user is disabled. Create a new one "
            "with `trainyard token create` (or ask an admin)."
        )
    limiter.remember(secret)
    token, user = found
    return Principal(token=token, user=user)


def role_in(state: ServerState, principal: Principal, workspace_id: str) -> str | None:
    """The caller's role in a workspace (run tokens: ``reader`` of their own workspace)."""
    if principal.is_server_admin:
        return "admin"
    if principal.is_run:
        return "reader" if principal.token.workspace_id == workspace_id else None
    if principal.user is None:
        return None
    return state.accounts.role_of(workspace_id, principal.user.id)


def has_role(role: str | None, need: Need) -> bool:
    """Whether ``role`` allows what ``need`` asks."""
    return role is not None and ROLES.index(role) >= ROLES.index(_ROLE_FOR[need])


def require(state: ServerState, principal: Principal, workspace_id: str, need: Need) -> None:
    """Raise ``PermissionDenied`` unless the caller may ``need`` in the workspace."""
    role = role_in(state, principal, workspace_id)
    if not has_role(role, need):
        raise PermissionDenied(
            f"{principal.name} has {('role ' + role) if role else 'no role'} in this workspace, "
            f"and this needs {_ROLE_FOR[need]}. Ask a workspace admin "
            "(`trainyard user role ...`) for access.",
            need=_ROLE_FOR[need],
        )


def require_run_write(state: ServerState, principal: Principal, run_id: str | None) -> None:
    """A run token writes only its own run and that run's children."""
    root = principal.token.run_id
    if run_id is None or root is None or not state.is_in_subtree(run_id, root):
        raise PermissionDenied(
            f"This run token may write only run {root} and its children, not {run_id}.",
            run_id=run_id,
        )


def require_server_admin(principal: Principal) -> None:
    """Only a server admin may manage users and create workspaces."""
    if not principal.is_server_admin:
        raise PermissionDenied(f"{principal.name} is not a server admin; ask one to do this.")
