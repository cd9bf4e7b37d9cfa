"""``trainyard service deploy NAME``: deploy registered models behind a scoring endpoint.

Example::

    $ trainyard service deploy mnist-svc --model mnist:2 --entry-script score.py --env env.yml
    $ trainyard service deploy mnist-svc --model mnist --entry-script score.py --local --port 8890
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from trainyard.cli._common import JsonOpt, WorkspaceOpt, console, open_workspace, print_json


def register(service_app: typer.Typer) -> None:
    """Add ``deploy`` to the ``trainyard service`` group.

    Example::

        register(app)
    """
    service_app.command("deploy")(deploy)


def deploy(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The service name.")],
    model: Annotated[
        list[str],
        typer.Option(
            "--model", "-m", metavar="NAME[:VERSION]", help="A model to serve (repeat for several)."
        ),
    ],
    entry_script: Annotated[
        str,
        typer.Option(
            "--entry-script", metavar="FILE", help="The scoring script (init() and run())."
        ),
    ],
    source_dir: Annotated[
        Path | None,
        typer.Option(
            "--source-dir", metavar="DIR", help="Folder with the entry script and its helpers."
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env",
            metavar="FILE",
            help="Environment: a conda specification (.yml/.yaml) or a requirements file. "
            "Default: this interpreter, nothing installed.",
        ),
    ] = None,
    pip: Annotated[
        list[str] | None,
        typer.Option("--pip", metavar="PKG", help="A pip requirement to install (repeat)."),
    ] = None,
    local: Annotated[
        bool,
        typer.Option("--local", help="A LocalWebservice (open, loopback) instead of ACI-style."),
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Port (with --local).")
    ] = None,
    auth: Annotated[
        bool,
        typer.Option("--auth/--no-auth", help="Key authentication (ACI-style services)."),
    ] = True,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace a service of this name (a failed one too)."),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait/--no-wait", help="Wait until it is Healthy (exit 1 if it fails)."),
    ] = True,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deploy models as a web service; prints its scoring URI once it is Healthy.

    --json prints the service's details (state, scoringUri, models …; never its keys: see
    `trainyard service show`). A failed deployment exits 1 with the log tail and how to retry.

    Example: [bold]trainyard service deploy mnist-svc -m mnist --entry-script score.py[/bold]
    """
    from trainyard.cli.models import get_model
    from trainyard.cli.service import service_json
    from trainyard.core.environment import Environment
    from trainyard.core.environment_files import environment_from_file
    from trainyard.core.inference_config import InferenceConfig
    from trainyard.core.model import Model
    from trainyard.core.webservice import AciWebservice, LocalWebservice

    if port is not None and not local:
        raise typer.BadParameter("--port applies to --local services.", param_hint="'--port'")
    environment = environment_from_file(f"{name}-env", env_file, pip or ())
    if environment is None:
        environment = Environment(f"{name}-python")
        environment.python.user_managed_dependencies = True
        environment.python.interpreter_path = sys.executable
        console(stderr=True).print(
            "Serving with this interpreter (nothing installed); --env FILE builds an environment."
        )
    ws = open_workspace(ctx, workspace)
    models = [get_model(ws, ref) for ref in model]
    inference = InferenceConfig(
        entry_script=entry_script,
        source_directory=str(source_dir) if source_dir is not None else None,
        environment=environment,
    )
    config = (
        LocalWebservice.deploy_configuration(port=port)
        if local
        else AciWebservice.deploy_configuration(auth_enabled=auth)
    )
    service = Model.deploy(ws, name, models, inference, config, overwrite=overwrite)
    if wait:  # a failure is reported as an error (with --json: {"error": …} on stdout)
        service.wait_for_deployment(show_output=not as_json)
    if as_json:
        print_json(service_json(service))
        return
    typer.echo(service.scoring_uri or f"{name} ({service.state})")
