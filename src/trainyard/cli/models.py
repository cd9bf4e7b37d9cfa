"""``trainyard models``: the model registry of a workspace: list, show, download, register.

Example::

    $ trainyard models list --latest
    $ trainyard models show chainer-dnn-mnist:2 --json
    $ trainyard models download chainer-dnn-mnist ./model --version 2
    $ trainyard models register mnist outputs/model.npz --run RUN_ID --tag stage=dev
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trainyard.cli._common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    fmt_time,
    iso_utc,
    open_workspace,
    print_json,
)

if TYPE_CHECKING:
    from trainyard.core.model import Model
    from trainyard.core.workspace import Workspace

app = typer.Typer(
    help="List, show, download and register models.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

ModelRefArg = Annotated[
    str,
    typer.Argument(metavar="NAME[:VERSION]", help="A model name (latest version) or NAME:VERSION."),
]


def register(root: typer.Typer) -> None:
    """Add ``trainyard models`` to ``root``.

    Example::

        register(app)
    """
    root.add_typer(app, name="models")


def parse_model_ref(ref: str) -> tuple[str, int | None]:
    """``"name"`` → ``("name", None)``; ``"name:3"`` → ``("name", 3)``. A version that is not a
    positive whole number raises ``ValidationError``.

    Example::

        parse_model_ref("mnist:2")   # ('mnist', 2)
    """
    from trainyard.exceptions import ValidationError

    name, sep, version = ref.rpartition(":")
    if not sep:
        return ref, None
    if not version.isdigit() or int(version) < 1:
        raise ValidationError(
            f"{ref!r}: the version after ':' must be a whole number from 1 (e.g. {name}:1).",
            model=ref,
        )
    return name, int(version)


def get_model(ws: Workspace, ref: str) -> Model:
    """The model ``NAME[:VERSION]`` refers to; ``ModelNotFoundException`` names the versions
    that do exist.

    Example::

        get_model(ws, "mnist").version   # the latest
    """
    from trainyard.core.model import Model
    from trainyard.exceptions import ModelNotFoundException

    name, version = parse_model_ref(ref)
    try:
        return Model(ws, name, version=version)
    except ModelNotFoundException as err:
        versions = sorted(m.version for m in Model.list(ws, name=name))
        hint = (
            f" Its versions: {', '.join(str(v) for v in versions)}."
            if versions
            else " See `trainyard models list`."
        )
        raise ModelNotFoundException(
            f"Workspace {ws.name!r} has no model {ref!r}.{hint}", name=name, version=version
        ) from err


def model_json(model: Model) -> dict[str, Any]:
    """``model.serialize()`` (v1 keys) with ``createdTime`` as ISO UTC.

    Example::

        model_json(Model(ws, "mnist"))["id"]   # 'mnist:1'
    """
    data = model.serialize()
    data["createdTime"] = iso_utc(model.created_time)
    return data


@app.command("list")
def list_models(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", metavar="NAME", help="Only versions of this model."),
    ] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Only the latest version of each model.")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List registered models, newest first: name, version, framework, run, created, tags.

    Example: [bold]trainyard models list --latest --json[/bold]
    """
    from trainyard.core.model import Model

    ws = open_workspace(ctx, workspace)
    models = Model.list(ws, name=name, latest=latest)
    if as_json:
        print_json([model_json(m) for m in models])
        return
    out = console()
    if not models:
        which = f" named {name}" if name else ""
        out.print(f"No registered models{which} in workspace {ws.name}.")
        return
    from rich.table import Table

    table = Table(title=f"Models in {ws.name}", title_justify="left")
    table.add_column("Name", style="bold", no_wrap=True)
    table.add_column("Version", justify="right")
    table.add_column("Framework")
    table.add_column("Run", no_wrap=True)
    table.add_column("Created", no_wrap=True)
    table.add_column("Files", justify="right")
    table.add_column("Tags", overflow="fold")
    for m in models:
        table.add_row(
            m.name,
            str(m.version),
            m.model_framework or "-",
            m.run_id or "-",
            fmt_time(m.created_time),
            str(len(m.get_info().files)),
            ", ".join(f"{k}={v}" for k, v in sorted(m.tags.items())) or "-",
        )
    out.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    model: ModelRefArg,
    version: VersionOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one model version: id, lineage (run, experiment), framework, tags, properties, files.

    Example: [bold]trainyard models show chainer-dnn-mnist --version 1[/bold]
    """
    ws = open_workspace(ctx, workspace)
    m = get_model(ws, with_version(model, version))
    data = model_json(m)
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    out = console()
    head = Table(
        title=f"Model {m.id}",
        title_justify="left",
        show_header=False,
        box=None,
        padding=(0, 2, 0, 0),
    )
    head.add_column("key", style="bold", no_wrap=True)
    head.add_column("value", overflow="fold")
    framework = m.model_framework or "-"
    if m.model_framework_version:
        framework += f" {m.model_framework_version}"
    for key, value in (
        ("Name", m.name),
        ("Version", str(m.version)),
        ("Description", m.description or "-"),
        ("Framework", framework),
        ("Run", m.run_id or "-"),
        ("Experiment", m.experiment_name or "-"),
        ("Created", fmt_time(m.created_time)),
        ("URL", m.url),
    ):
        head.add_row(key, value)
    out.print(head)
    for title, values in (("Tags", m.tags), ("Properties", m.properties)):
        out.print()
        if not values:
            out.print(f"{title}: (none)")
            continue
        out.print(f"{title}:")
        for k, v in sorted(values.items()):
            out.print(f"  {k}: {v}")
    out.print()
    out.print(f"Files ({len(data['files'])}):")
    for f in data["files"]:
        out.print(f"  {f}")


VersionOpt = Annotated[
    int | None,
    typer.Option(
        "--version",
        min=1,
        metavar="N",
        help="The model version (default: the latest; same as NAME:N).",
        show_default=False,
    ),
]


def with_version(ref: str, version: int | None) -> str:
    """``NAME[:VERSION]`` with ``--version`` applied; both, disagreeing, is a usage error.

    Example::

        with_version("mnist", 2)   # 'mnist:2'
    """
    if version is None:
        return ref
    name, given = parse_model_ref(ref)
    if given is not None and given != version:
        raise typer.BadParameter(
            f"{ref!r} names version {given} but --version is {version}; give one of them.",
            param_hint="'--version'",
        )
    return f"{name}:{version}"


@app.command("download")
def download(
    ctx: typer.Context,
    model: ModelRefArg,
    target_dir: Annotated[
        Path | None,
        typer.Argument(
            metavar="[DIR]",
            help="Folder to download into (default: --output, else here).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="DIR", help="Folder to download into (same as DIR)."
        ),
    ] = None,
    version: VersionOpt = None,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Overwrite files that already exist.")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a model's files, keeping their layout (outputs/model.npz lands as DIR/model.npz).

    Prints the local path of the model (its file, or its folder). --json prints
    {"id", "path", "files"}.

    Example: [bold]trainyard models download chainer-dnn-mnist ./model --version 1[/bold]
    """
    if target_dir is not None and output is not None and target_dir != output:
        raise typer.BadParameter(
            f"DIR {str(target_dir)!r} and --output {str(output)!r} differ; give one of them.",
            param_hint="'--output'",
        )
    output = target_dir or output or Path(".")
    ws = open_workspace(ctx, workspace)
    m = get_model(ws, with_version(model, version))
    from trainyard.exceptions import AlreadyExistsError

    try:
        path = Path(m.download(output, exist_ok=exist_ok)).resolve()
    except AlreadyExistsError as err:
        raise AlreadyExistsError(
            f"{err.details.get('path')} already exists; pass --exist-ok to overwrite it.",
            **err.details,
        ) from None
    files = [str((output / f).resolve()) for f in m.get_info().files]
    if as_json:
        print_json({"id": m.id, "path": str(path), "files": files})
        return
    noun = "file" if len(files) == 1 else "files"
    console(stderr=True).print(f"Downloaded model {m.id} ({len(files)} {noun}) to:")
    typer.echo(str(path))


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE.", param_hint=f"'--{what}'")
        out[key] = value
    return out


@app.command("register")
def register_model(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The model's name.")],
    path: Annotated[
        str,
        typer.Argument(
            metavar="PATH",
            help="A local file or folder; with --run, a path among the run's files "
            "(e.g. outputs/model.npz).",
        ),
    ],
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run", metavar="RUN_ID", help="Register PATH from this run's files (lineage kept)."
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", metavar="KEY=VALUE", help="A tag (repeat for several)."),
    ] = None,
    prop: Annotated[
        list[str] | None,
        typer.Option("--property", "-p", metavar="KEY=VALUE", help="A property (repeat)."),
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", "-d", metavar="TEXT", help="A description.")
    ] = None,
    framework: Annotated[
        str | None,
        typer.Option("--framework", metavar="NAME", help="e.g. Chainer, PyTorch, ScikitLearn."),
    ] = None,
    framework_version: Annotated[
        str | None, typer.Option("--framework-version", metavar="VERSION")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a model: a new version of NAME from a local PATH, or from a run's files (--run).

    Prints the model id (NAME:VERSION); --json prints the model's details.

    Example: [bold]trainyard models register mnist outputs/model.npz --run RUN_ID -t stage=dev[/bold]
    """
    from trainyard.core.model import Model

    tags, properties = _pairs(tag, "tag"), _pairs(prop, "property")
    ws = open_workspace(ctx, workspace)
    if run_id is not None:
        from trainyard.core.run import Run

        model = Run.get(ws, run_id).register_model(
            name,
            model_path=path,
            tags=tags,
            properties=properties,
            model_framework=framework,
            model_framework_version=framework_version,
            description=description,
        )
    else:
        model = Model.register(
            ws,
            path,
            name,
            tags=tags,
            properties=properties,
            description=description,
            model_framework=framework,
            model_framework_version=framework_version,
        )
    if as_json:
        print_json(model_json(model))
        return
    typer.echo(model.id)
