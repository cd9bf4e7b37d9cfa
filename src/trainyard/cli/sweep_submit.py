"""``trainyard sweep submit SPEC``: start a HyperDrive sweep described by a YAML or JSON file.

The file format is :mod:`trainyard.train.hyperdrive.spec`'s.

Example::

    $ trainyard sweep submit sweep.yml --json
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trainyard.cli._common import JsonOpt, WorkspaceOpt, console, open_workspace, print_json


def register(sweep_app: typer.Typer) -> None:
    """Add ``submit`` to the ``trainyard sweep`` group.

    Example::

        register(app)
    """
    sweep_app.command("submit")(submit)


def submit(
    ctx: typer.Context,
    spec: Annotated[
        Path,
        typer.Argument(
            metavar="SPEC",
            help="The sweep file (.yml/.yaml or .json): script, sampling, primary_metric, "
            "max_total_runs … (see `trainyard.train.hyperdrive.spec`).",
            show_default=False,
        ),
    ],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a HyperDrive sweep from a YAML or JSON spec and print its run id (HD_…).

    It returns at once; follow it with `trainyard sweep show HD_ID`.
    --json prints {"runId", "experiment", "status", "maxTotalRuns", "primaryMetric", "spec"}.

    Example: [bold]trainyard sweep submit sweep.yml[/bold]
    """
    from trainyard.core.experiment import Experiment
    from trainyard.train.hyperdrive.spec import load_spec

    parsed = load_spec(spec)
    ws = open_workspace(ctx, workspace)
    run = Experiment(ws, parsed.experiment).submit(parsed.config, tags=parsed.tags)
    if as_json:
        print_json(
            {
                "runId": run.id,
                "experiment": parsed.experiment,
                "status": run.get_status(),
                "maxTotalRuns": parsed.config.max_total_runs,
                "primaryMetric": parsed.config.primary_metric_name,
                "spec": str(spec.resolve()),
            }
        )
        return
    typer.echo(run.id)
    console(stderr=True).print(
        f"Sweep submitted to experiment {parsed.experiment} "
        f"({parsed.config.max_total_runs} runs at most). Follow it with: "
        f"trainyard sweep show {run.id}"
    )
