"""Accounts of a team server on the SQL store: users, API tokens (stored as hashes) and the role
each user has in each workspace; plus the server's record of idempotent requests.

Tokens are ``ty_`` + 43 URL-safe characters (256 random bits). Only their SHA-256 is stored; the
secret is returned once, when the token is created. A token is ``user`` (acts as its user) or
``run`` (a run-scoped credential for one run's supervisor and script).

Example::

    accounts = SqlAccounts(store.engine)
    alice = accounts.create_user("alice")
    token, secret = accounts.create_token(alice.id, name="laptop")
    accounts.set_role(ws.id, alice.id, "contributor")
    accounts.authenticate(secret).user_id == alice.id
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from trainyard._store.entities import TokenInfo, UserInfo
from trainyard._store.sql import schema as s
from trainyard._store.sql.engine import run_in_transaction
from trainyard.exceptions import AlreadyExistsError, TokenNotFound, UserNotFound, ValidationError

#: Workspace roles, weakest first; each includes what the ones before it may do.
ROLES = ("reader", "contributor", "admin")
TOKEN_PREFIX = "ty_"


def hash_token(secret: str) -> str:
    """The stored form of a token secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh token secret."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _user(row: Any) -> UserInfo:
    return UserInfo(
        id=row.id,
        name=row.name,
        is_admin=bool(row.is_admin),
        disabled=bool(row.disabled),
        created_at=float(row.created_at),
    )


def _token(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        kind=row.kind,
        user_id=row.user_id,
        workspace_id=row.workspace_id,
        run_id=row.run_id,
        prefix=row.prefix,
        name=row.name,
        created_at=float(row.created_at),
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class SqlAccounts:
    """Users, tokens and roles on an engine whose schema is at the head revision."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _tx(self, fn: Callable[[Connection], Any], write: bool = True) -> Any:
        return run_in_transaction(self.engine, fn, write=write)

    # -- users --------------------------------------------------------------------------------
    def create_user(self, name: str, *, is_admin: bool = False) -> UserInfo:
        """A new user; ``AlreadyExistsError`` when the name is taken."""
        if (
            not name
            or len(name) > 128
            or not name.replace("-", "").replace("_", "").replace(".", "").isalnum()
        ):
            raise ValidationError(
                f"Invalid user name {name!r}: use 1–128 letters, digits, '.', '-' or '_'.",
                name=name,
            )
        uid = str(uuid.uuid4())
        try:
            self._tx(
                lambda c: c.execute(
                    insert(s.users).values(
                        id=uid, name=name, is_admin=is_admin, disabled=False, created_at=time.time()
                    )
                )
            )
        except IntegrityError:
            raise AlreadyExistsError(f"A user named {name!r} already exists.", name=name) from None
        return self.get_user(name)

    def get_user(self, name: str) -> UserInfo:
        row = self._tx(
            lambda c: c.execute(select(s.users).where(s.users.c.name == name)).first(), write=False
        )
        if row is None:
            raise UserNotFound(
                f"No user named {name!r}. List users with `trainyard user list`.", name=name
            )
        return _user(row)

    def get_user_by_id(self, user_id: str) -> UserInfo:
        row = self._tx(
            lambda c: c.execute(select(s.users).where(s.users.c.id == user_id)).first(), write=False
        )
        if row is None:
            raise UserNotFound(f"No user with id {user_id!r}.", user_id=user_id)
        return _user(row)

    def list_users(self) -> list[UserInfo]:
        rows = self._tx(
            lambda c: c.execute(select(s.users).order_by(s.users.c.name)).all(), write=False
        )
        return [_user(r) for r in rows]

    def count_users(self) -> int:
        return len(self.list_users())

    def set_disabled(self, name: str, disabled: bool) -> UserInfo:
        """Disable (or re-enable) a user: a disabled user's tokens stop working at once."""
        user = self.get_user(name)
        self._tx(
            lambda c: c.execute(
                update(s.users).where(s.users.c.id == user.id).values(disabled=disabled)
            )
        )
        return self.get_user(name)

    # -- tokens -------------------------------------------------------------------------------
    def create_token(
        self,
        user_id: str | None,
        *,
        kind: str = "user",
        name: str | None = None,
        expires_at: float | None = None,
        workspace_id: str | None = None,
        run_id: str | None = None,
    ) -> tuple[TokenInfo, str]:
        """A new token and its secret (shown once; only its hash is kept)."""
        if kind not in ("user", "run"):
            raise ValidationError(f"Unknown token kind {kind!r}.")
        if kind == "run" and (not run_id or not workspace_id):
            raise ValidationError("A run token needs its run id and workspace id.")
        if kind == "user" and user_id is None:
            raise ValidationError("A user token needs its user.")
        secret = new_secret()
        tid = str(uuid.uuid4())
        self._tx(
            lambda c: c.execute(
                insert(s.tokens).values(
                    id=tid,
                    kind=kind,
                    user_id=user_id,
                    workspace_id=workspace_id,
                    run_id=run_id,
                    token_hash=hash_token(secret),
                    prefix=secret[:10],
                    name=name,
                    created_at=time.time(),
                    expires_at=expires_at,
                )
            )
        )
        return self.get_token(tid), secret

    def get_token(self, token_id: str) -> TokenInfo:
        row = self._tx(
            lambda c: c.execute(select(s.tokens).where(s.tokens.c.id == token_id)).first(),
            write=False,
        )
        if row is None:
            raise TokenNotFound(f"No token with id {token_id!r}.", token_id=token_id)
        return _token(row)

    def list_tokens(self, user_id: str) -> list[TokenInfo]:
        rows = self._tx(
            lambda c: c.execute(
                select(s.tokens)
                .where(s.tokens.c.user_id == user_id)
                .order_by(s.tokens.c.created_at)
            ).all(),
            write=False,
        )
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token (it stops working at once); revoking twice keeps the first time."""
        self.get_token(token_id)
        self._tx(
            lambda c: c.execute(
                update(s.tokens)
                .where(and_(s.tokens.c.id == token_id, s.tokens.c.revoked_at.is_(None)))
                .values(revoked_at=time.time())
            )
        )
        return self.get_token(token_id)

    def revoke_run_tokens(self, run_id: str) -> None:
        """A run's tokens end with the run."""
        self._tx(
            lambda c: c.execute(
                update(s.tokens)
                .where(and_(s.tokens.c.run_id == run_id, s.tokens.c.revoked_at.is_(None)))
                .values(revoked_at=time.time())
            )
        )

    def authenticate(self, secret: str) -> TokenInfo | None:
        """The usable token whose secret this is (its user enabled), else ``None``."""
        found = self.authenticate_caller(secret)
        return None if found is None else found[0]

    def authenticate_caller(self, secret: str) -> tuple[TokenInfo, UserInfo | None] | None:
        """The usable token whose secret this is and its user (``None`` for a run token), read
        in one query; ``None`` if the token is unknown, expired or revoked, or its user disabled."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        digest = hash_token(secret)
        u = s.users

        def tx(conn: Connection) -> Any:
            return conn.execute(
                select(
                    s.tokens,
                    u.c.id.label("u_id"),
                    u.c.name.label("u_name"),
                    u.c.is_admin.label("u_is_admin"),
                    u.c.disabled.label("u_disabled"),
                    u.c.created_at.label("u_created_at"),
                )
                .select_from(s.tokens.outerjoin(u, u.c.id == s.tokens.c.user_id))
                .where(s.tokens.c.token_hash == digest)
            ).first()

        row = self._tx(tx, write=False)
        if row is None or bool(row.u_disabled):
            return None
        token = _token(row)
        if not token.usable(time.time()):
            return None
        if token.user_id is None:
            return token, None
        if row.u_id is None:  # a user token whose user is gone
            return None
        user = UserInfo(
            id=row.u_id,
            name=row.u_name,
            is_admin=bool(row.u_is_admin),
            disabled=bool(row.u_disabled),
            created_at=float(row.u_created_at),
        )
        return token, user

    def touch(self, token_id: str) -> None:
        """Record that the token was used now."""
        self._tx(
            lambda c: c.execute(
                update(s.tokens).where(s.tokens.c.id == token_id).values(last_used_at=time.time())
            )
        )

    # -- roles --------------------------------------------------------------------------------
    def set_role(self, workspace_id: str, user_id: str, role: str | None) -> None:
        """Give ``user_id`` ``role`` in the workspace (``None`` removes it)."""
        if role is not None and role not in ROLES:
            raise ValidationError(f"Unknown role {role!r}; roles: {', '.join(ROLES)}.", role=role)
        rb = s.role_bindings

        def tx(conn: Connection) -> None:
            conn.execute(
                delete(rb).where(rb.c.workspace_id == workspace_id, rb.c.user_id == user_id)
            )
            if role is not None:
                conn.execute(
                    insert(rb).values(workspace_id=workspace_id, user_id=user_id, role=role)
                )

        self._tx(tx)

    def role_of(self, workspace_id: str, user_id: str) -> str | None:
        rb = s.role_bindings
        row = self._tx(
            lambda c: c.execute(
                select(rb.c.role).where(rb.c.workspace_id == workspace_id, rb.c.user_id == user_id)
            ).first(),
            write=False,
        )
        return None if row is None else str(row.role)

    def roles(self, workspace_id: str) -> dict[str, str]:
        """user id → role in the workspace."""
        rb = s.role_bindings
        rows = self._tx(
            lambda c: c.execute(select(rb).where(rb.c.workspace_id == workspace_id)).all(),
            write=False,
        )
        return {r.user_id: r.role for r in rows}

    # -- idempotent requests ------------------------------------------------------------------
    def recall(self, key: str, operation: str) -> str | None:
        """The stored answer to a request already served with this idempotency key."""
        t = s.idempotency
        row = self._tx(
            lambda c: c.execute(
                select(t.c.response).where(t.c.key == key, t.c.operation == operation)
            ).first(),
            write=False,
        )
        return None if row is None else str(row.response)

    def remember(self, key: str, operation: str, response: str) -> None:
        """Keep the answer of a request with this idempotency key (the first one wins)."""
        t = s.idempotency
        try:
            self._tx(
                lambda c: c.execute(
                    insert(t).values(
                        key=key, operation=operation, response=response, created_at=time.time()
                    )
                )
            )
        except IntegrityError:
            pass

    def forget_older_than(self, seconds: float) -> None:
        """Drop idempotency records older than ``seconds``."""
        t = s.idempotency
        cutoff = time.time() - seconds
        self._tx(lambda c: c.execute(delete(t).where(t.c.created_at < cutoff)))
