"""``trainyard server`` (run the team server) and ``trainyard login`` (save a token for one).

Example::

    $ trainyard server                                   # embedded default, prints the admin token
    $ trainyard server --store postgresql://ty@db/ty --artifacts /srv/ty --workers 4
    $ trainyard login http://127.0.0.1:8765 --token ty_…
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from trainyard.cli._common import JsonOpt, print_json


def register(root: typer.Typer) -> None:
    """Add ``trainyard server`` and ``trainyard login`` to ``root``.

    Example::

        register(app)
    """
    root.command("server")(server)
    root.command("login")(login)


def server(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="URL",
            help="Metadata database: postgresql://… for a team, sqlite:///path for one machine "
            "(default: SQLite in the data folder).",
        ),
    ] = None,
    artifacts: Annotated[
        Path | None,
        typer.Option(
            "--artifacts",
            metavar="DIR",
            help="Folder for the workspaces' files (default: the data folder, "
            "$XDG_DATA_HOME/trainyard/server).",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8765,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", metavar="PEM", help="TLS certificate.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", metavar="PEM", help="TLS private key.")
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            metavar="NAME",
            help="A Host name clients use besides loopback and the bind address (repeatable; "
            "'.example.com' allows subdomains).",
        ),
    ] = None,
    allowed_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-origin", metavar="URL", help="A browser origin allowed to call the API."
        ),
    ] = None,
    insecure_allow_remote: Annotated[
        bool,
        typer.Option(
            "--insecure-allow-remote",
            help="Listen on a non-loopback address without TLS (tokens cross the network in "
            "clear text: only on a trusted network).",
        ),
    ] = False,
    max_json_bytes: Annotated[
        int,
        typer.Option(
            "--max-json-bytes",
            metavar="N",
            help="Largest JSON request body, counted on the bytes read (artifacts stream).",
        ),
    ] = 64 * 1024 * 1024,
) -> None:
    """Run the team server: one workspace store for a team, over HTTP, with accounts and roles.

    Started with no options it serves an embedded default (SQLite and a folder in the user's data
    folder) on 127.0.0.1:8765 and, the first time, prints the first admin's one-time token.

    Example: [bold]trainyard server --store postgresql://ty@db/ty --artifacts /srv/ty[/bold]
    """
    require_server_extra()
    from trainyard.server.config import ServerConfig, default_data_dir
    from trainyard.server.main import serve

    data = artifacts or default_data_dir()
    data.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(
        store_url=store or f"sqlite:///{(data / 'trainyard.db').resolve()}",
        artifacts=data.resolve(),
        host=host,
        port=port,
        workers=workers,
        tls_cert=tls_cert,
        tls_key=tls_key,
        allowed_hosts=tuple(allowed_host or ()),
        allowed_origins=tuple(allowed_origin or ()),
        insecure_allow_remote=insecure_allow_remote,
        max_json_bytes=max_json_bytes,
        homes=data.resolve(),
    )
    serve(config)


def login(
    url: Annotated[
        str, typer.Argument(metavar="URL", help="The server, e.g. http://127.0.0.1:8765.")
    ],
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            help="The API token (default: $TRAINYARD_TOKEN, else asked for without echo).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a token against a server and save it (0600, in your user config, never in a workspace).

    Example: [bold]trainyard login http://127.0.0.1:8765 --token ty_…[/bold]
    """
    from trainyard._store.rest.credentials import save_token
    from trainyard._store.rest.transport import Transport

    secret = token or os.environ.get("TRAINYARD_TOKEN") or typer.prompt("Token", hide_input=True)
    who = Transport(url, secret, retry_seconds=5).call_json("GET", "/api/v1/whoami")
    path = save_token(url, secret)
    if as_json:
        print_json({"server": url, "user": who.get("user"), "credentials": str(path)})
        return
    typer.echo(f"Logged in to {url} as {who.get('user')}; token saved in {path}.")


def require_server_extra() -> None:
    """Raise ``MissingExtraError`` (with the ``pip install`` to run) unless FastAPI and uvicorn,
    trainyard's ``server`` extra, are importable.

    Example::

        require_server_extra()
    """
    import importlib.util

    from trainyard.exceptions import MissingExtraError

    for module in ("fastapi", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError.for_extra("server", "trainyard server", module)
