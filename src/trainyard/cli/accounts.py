"""``trainyard user`` and ``trainyard token``: accounts of a team server.

The server is ``--server URL``, else ``$TRAINYARD_SERVER``, else the one server you logged in to;
the token is ``$TRAINYARD_TOKEN`` or the one ``trainyard login`` saved.

Example::

    $ trainyard user create alice --json
    $ trainyard user role alice --workspace-name team --role contributor
    $ trainyard token create --name laptop --expires-in-days 90
    $ trainyard token revoke 5f0c…
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from trainyard.cli._common import JsonOpt, console, fmt_time, print_json
from trainyard.exceptions import ConfigError

user_app = typer.Typer(
    help="Manage the users of a team server (server admins).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
token_app = typer.Typer(
    help="Create, list and revoke your API tokens on a team server.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        help="The server (default: $TRAINYARD_SERVER, else the one you logged in to).",
        show_default=False,
    ),
]


def register(root: typer.Typer) -> None:
    """Add ``trainyard user`` and ``trainyard token`` to ``root``.

    Example::

        register(app)
    """
    root.add_typer(user_app, name="user")
    root.add_typer(token_app, name="token")


def _client(server: str | None) -> Any:
    from trainyard._store.rest.credentials import credentials_path, token_for
    from trainyard._store.rest.transport import Transport

    url = server or os.environ.get("TRAINYARD_SERVER")
    if not url:
        import json

        try:
            saved = json.loads(credentials_path().read_text(encoding="utf-8")).get("servers", {})
        except (OSError, ValueError):
            saved = {}
        if len(saved) != 1:
            raise ConfigError(
                "Which server? Pass --server URL or set TRAINYARD_SERVER (or log in to exactly one "
                "with `trainyard login URL`)."
            )
        url = next(iter(saved))
    token = token_for(url)
    if not token:
        raise ConfigError(
            f"No token for {url}: run `trainyard login {url}` or set TRAINYARD_TOKEN."
        )
    return Transport(url, token, retry_seconds=10)


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="The new user's name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make them a server admin.")] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user (they get no role in any workspace until given one)."""
    user = _client(server).call_json("POST", "/api/v1/users", {"name": name, "is_admin": admin})
    if as_json:
        print_json(user)
        return
    typer.echo(f"Created user {user['name']}{' (server admin)' if user['is_admin'] else ''}.")


@user_app.command("list")
def user_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """List users."""
    users = _client(server).call_json("GET", "/api/v1/users")["users"]
    if as_json:
        print_json(users)
        return
    from rich.table import Table

    table = Table("User", "Admin", "Disabled", "Created")
    for u in users:
        table.add_row(
            u["name"],
            "yes" if u["is_admin"] else "",
            "yes" if u["disabled"] else "",
            fmt_time(u["created_at"]),
        )
    console().print(table)


@user_app.command("disable")
def user_disable(
    name: Annotated[str, typer.Argument(help="The user.")],
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Disable a user: every token of theirs stops working at once."""
    user = _client(server).call_json("POST", f"/api/v1/users/{name}/disable", {})
    if as_json:
        print_json(user)
        return
    typer.echo(f"Disabled {name}.")


@user_app.command("enable")
def user_enable(
    name: Annotated[str, typer.Argument(help="The user.")],
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Enable a disabled user again."""
    user = _client(server).call_json("POST", f"/api/v1/users/{name}/enable", {})
    if as_json:
        print_json(user)
        return
    typer.echo(f"Enabled {name}.")


@user_app.command("role")
def user_role(
    name: Annotated[str, typer.Argument(help="The user.")],
    workspace_name: Annotated[str, typer.Option("--workspace-name", help="The workspace.")],
    role: Annotated[
        str, typer.Option("--role", help="reader, contributor, admin, or none to remove it.")
    ],
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a user a role in a workspace (workspace admins)."""
    body = {"role": None if role == "none" else role}
    result = _client(server).call_json(
        "PUT", f"/api/v1/workspaces/{workspace_name}/roles/{name}", body
    )
    if as_json:
        print_json(result)
        return
    typer.echo(f"{name} is now {result['role'] or 'not a member'} in {workspace_name}.")


@token_app.command("create")
def token_create(
    name: Annotated[str | None, typer.Option("--name", help="A label for the token.")] = None,
    expires_in_days: Annotated[
        float | None, typer.Option("--expires-in-days", help="Expire after this many days.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="For another user (server admins).")
    ] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token; its secret is shown once, now."""
    body: dict[str, Any] = {"name": name, "expires_in_days": expires_in_days}
    if user:
        body["user"] = user
    made = _client(server).call_json("POST", "/api/v1/tokens", body)
    if as_json:
        print_json(made)
        return
    typer.echo(
        f"Token {made['token']['id']} ({made['token']['name'] or 'unnamed'}):\n  {made['secret']}"
    )
    typer.echo("It is shown only now; store it somewhere safe.")


@token_app.command("list")
def token_list(
    user: Annotated[
        str | None, typer.Option("--user", help="Another user's (server admins).")
    ] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List your tokens (never their secrets)."""
    path = "/api/v1/tokens" + (f"?user={user}" if user else "")
    tokens = _client(server).call_json("GET", path)["tokens"]
    if as_json:
        print_json(tokens)
        return
    from rich.table import Table

    table = Table("Id", "Name", "Prefix", "Created", "Expires", "Revoked", "Last used")
    for t in tokens:
        table.add_row(
            t["id"],
            t["name"] or "",
            t["prefix"] + "…",
            fmt_time(t["created_at"]),
            fmt_time(t["expires_at"]) if t["expires_at"] else "never",
            fmt_time(t["revoked_at"]) if t["revoked_at"] else "",
            fmt_time(t["last_used_at"]) if t["last_used_at"] else "",
        )
    console().print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID", help="The token's id.")],
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token: it stops working at once."""
    result = _client(server).call_json("POST", f"/api/v1/tokens/{token_id}/revoke", {})
    if as_json:
        print_json(result)
        return
    typer.echo(f"Revoked token {token_id}.")
