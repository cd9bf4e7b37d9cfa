"""``trainyard env``: the cache of built environments (``$TRAINYARD_ENV_CACHE``, default
``$TRAINYARD_HOME/envs``): list them, show one, prune unused ones.

Example::

    $ trainyard env list
    $ trainyard env show 3f2a9c
    $ trainyard env prune --older-than-days 30 --yes
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trainyard.cli._common import (
    META_WORKSPACE,
    WORKSPACE_ENV,
    JsonOpt,
    WorkspaceOpt,
    console,
    fmt_time,
    open_workspace,
    print_json,
)

if TYPE_CHECKING:
    from trainyard._execution.environments.builder import CachedEnvironment, EnvironmentBuilder

app = typer.Typer(
    help="List, show and prune the cached environments runs are built into.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

#: Characters of the hash the tables show (any unique prefix of 4+ characters is accepted).
SHORT_HASH = 12


def register(root: typer.Typer) -> None:
    """Add ``trainyard env`` to ``root``.

    Example::

        register(app)
    """
    root.add_typer(app, name="env")


def fmt_bytes(size: int) -> str:
    """``512 B``, ``1.5 KiB``, ``12.0 MiB``, ``1.2 GiB``.

    Example::

        fmt_bytes(3 * 1024 * 1024)   # '3.0 MiB'
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns at GiB


def _builder() -> EnvironmentBuilder:
    from trainyard._execution.environments.builder import default_builder

    return default_builder()


def env_summary(entry: CachedEnvironment, size: int | None = None) -> dict[str, Any]:
    """One row of ``env list --json``: hash, path, Python, package counts, size, times.

    Example::

        env_summary(default_builder().list_environments()[0])["pythonVersion"]   # '3.11.9'
    """
    from trainyard._execution.environments.builder import size_bytes

    return {
        "hash": entry.spec_hash,
        "prefix": str(entry.prefix),
        "python": str(entry.python),
        "pythonVersion": entry.python_version,
        "requirements": list(entry.spec.requirements),
        "packages": len(entry.resolved),
        "sizeBytes": size_bytes(entry.prefix) if size is None else size,
        "created": entry.created_at.isoformat(),
        "lastUsed": entry.last_used_at.isoformat(),
        "buildSeconds": entry.build_seconds,
        "userManaged": entry.spec.user_managed,
    }


@app.command("list")
def list_envs(as_json: JsonOpt = False) -> None:
    """List cached environments, most recently used first: hash, Python, packages, size, times.

    Example: [bold]trainyard env list --json[/bold]
    """
    builder = _builder()
    rows = [env_summary(e) for e in builder.list_environments()]
    if as_json:
        print_json(rows)
        return
    out = console()
    if not rows:
        out.print(f"No cached environments in {builder.cache_dir}.")
        return
    from rich.table import Table

    table = Table(title=f"Environments in {builder.cache_dir}", title_justify="left")
    table.add_column("Hash", style="bold", no_wrap=True)
    table.add_column("Python", no_wrap=True)
    table.add_column("Packages", justify="right")
    table.add_column("Size", justify="right", no_wrap=True)
    table.add_column("Created", no_wrap=True)
    table.add_column("Last used", no_wrap=True)
    table.add_column("Requirements", overflow="fold")
    for r in rows:
        table.add_row(
            r["hash"][:SHORT_HASH],
            r["pythonVersion"],
            str(r["packages"]),
            fmt_bytes(r["sizeBytes"]),
            _local(r["created"]),
            _local(r["lastUsed"]),
            ", ".join(r["requirements"]) or "-",
        )
    out.print(table)


def _local(iso: str) -> str:
    import datetime as dt

    return fmt_time(dt.datetime.fromisoformat(iso).timestamp())


@app.command("show")
def show(
    hash_prefix: Annotated[
        str,
        typer.Argument(
            metavar="HASH_PREFIX", help="The environment's hash, or its first 4+ characters."
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Show one cached environment: its spec, the versions it resolved to, and build notices.

    Example: [bold]trainyard env show 3f2a9c1d --json[/bold]
    """
    entry = _builder().get(hash_prefix)
    data = {
        **env_summary(entry),
        "spec": entry.spec.to_dict(),
        "resolved": dict(sorted(entry.resolved.items())),
        "notices": list(entry.notices),
    }
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    out = console()
    head = Table(
        title=f"Environment {entry.spec_hash[:SHORT_HASH]}",
        title_justify="left",
        show_header=False,
        box=None,
        padding=(0, 2, 0, 0),
    )
    head.add_column("key", style="bold", no_wrap=True)
    head.add_column("value", overflow="fold")
    spec = entry.spec
    for key, value in (
        ("Hash", entry.spec_hash),
        ("Path", str(entry.prefix)),
        ("Python", f"{entry.python_version} ({entry.python})"),
        ("Size", fmt_bytes(data["sizeBytes"])),
        ("Created", _local(data["created"])),
        ("Last used", _local(data["lastUsed"])),
        ("Build time", f"{entry.build_seconds:.1f}s"),
        ("Index URL", spec.index_url or "-"),
        ("Extra index URLs", ", ".join(spec.extra_index_urls) or "-"),
        ("Find links", ", ".join(spec.find_links) or "-"),
    ):
        head.add_row(key, value)
    out.print(head)
    out.print()
    out.print("Requirements:" if spec.requirements else "Requirements: (none)")
    for req in spec.requirements:
        out.print(f"  {req}")
    out.print()
    out.print(f"Resolved ({len(entry.resolved)}):")
    for name, version in data["resolved"].items():
        out.print(f"  {name}=={version}" if "://" not in version else f"  {name} @ {version}")
    if entry.notices:
        out.print()
        out.print("Notices:")
        for notice in entry.notices:
            out.print(f"  {notice}", style="yellow")


def active_environment_hashes(ctx: typer.Context, workspace: str | None) -> list[str]:
    """Environment hashes of the unfinished runs of the workspace in use (none without one).

    An explicit ``--workspace``/``$TRAINYARD_WORKSPACE`` that cannot be opened is an error; a
    missing ``.trainyard/config.json`` just means no workspace to protect.

    Example::

        active_environment_hashes(ctx, None)   # ['3f2a9c…'] while a run uses that environment
    """
    from trainyard._lifecycle import TERMINAL, RunStatus
    from trainyard.exceptions import WorkspaceNotFound

    explicit = workspace or ctx.meta.get(META_WORKSPACE) or os.environ.get(WORKSPACE_ENV)
    try:
        ws = open_workspace(ctx, workspace)
    except WorkspaceNotFound:
        if explicit:
            raise
        return []
    statuses = [s.value for s in RunStatus if s not in TERMINAL]
    hashes: list[str] = []
    cursor: str | None = None
    while True:
        infos, cursor = ws.context.store.list_runs(
            workspace_id=ws.context.workspace_id,
            statuses=statuses,
            include_children=True,
            limit=200,
            cursor=cursor,
        )
        for info in infos:
            digest = (info.runtime or {}).get("environment_hash")
            if digest and digest not in hashes:
                hashes.append(str(digest))
        if cursor is None:
            return hashes


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than_days: Annotated[
        float | None,
        typer.Option(
            "--older-than-days",
            min=0,
            metavar="N",
            help="Environments not used for N days.",
            show_default=False,
        ),
    ] = None,
    all_envs: Annotated[bool, typer.Option("--all", help="Every cached environment.")] = False,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep",
            metavar="HASH",
            help="Never remove this environment (hash or prefix; repeat for several).",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Delete them; without it only list what would go."),
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove cached environments (a dry run listing them unless --yes is given).

    Give --older-than-days N or --all. Environments that unfinished runs of the workspace in use
    were prepared with are kept, as is every --keep HASH. --json prints
    {"dryRun", "environments" (removed, or that would be), "kept", "totalBytes"}.

    Example: [bold]trainyard env prune --older-than-days 30 --yes[/bold]
    """
    if (older_than_days is None) == (not all_envs):
        raise typer.BadParameter(
            "give exactly one of --older-than-days N or --all.", param_hint="'--older-than-days'"
        )
    import datetime as dt

    builder = _builder()
    kept = [k.strip().lower() for k in keep or () if k.strip()]
    kept += active_environment_hashes(ctx, workspace)
    cutoff = (
        None
        if older_than_days is None
        else dt.datetime.now(dt.UTC) - dt.timedelta(days=older_than_days)
    )
    entries = builder.list_environments()
    candidates = [
        e
        for e in entries
        if not e.spec_hash.startswith(tuple(kept)) and (cutoff is None or e.last_used_at < cutoff)
    ]
    protected = [e.spec_hash for e in entries if kept and e.spec_hash.startswith(tuple(kept))]
    rows: dict[str, dict[str, Any]] = {e.spec_hash: env_summary(e) for e in candidates}
    gone: list[dict[str, Any]]
    if yes:
        removed = builder.prune(older_than_days=older_than_days, keep_hashes=kept)
        # prune() decides again under its locks: report what it actually removed.
        gone = [rows.get(h, {"hash": h, "sizeBytes": 0}) for h in removed]
    else:
        gone = list(rows.values())
    freed = sum(int(r.get("sizeBytes") or 0) for r in gone)
    if as_json:
        print_json(
            {"dryRun": not yes, "environments": gone, "kept": protected, "totalBytes": freed}
        )
        return
    out = console()
    for digest in protected:
        out.print(f"Kept {digest[:SHORT_HASH]} (in use or --keep).")
    if not gone:
        out.print(f"No cached environments to remove in {builder.cache_dir}.")
        return
    verb = "Removed" if yes else "Would remove"
    for r in gone:
        out.print(
            f"{verb} {r['hash'][:SHORT_HASH]}  {fmt_bytes(int(r.get('sizeBytes') or 0))}  "
            f"{', '.join(r.get('requirements') or []) or '-'}"
        )
    noun = "environment" if len(gone) == 1 else "environments"
    if yes:
        out.print(f"Removed {len(gone)} {noun}, freed {fmt_bytes(freed)}.")
    else:
        out.print(
            f"Dry run: {len(gone)} {noun} ({fmt_bytes(freed)}) would be removed. "
            "Run again with --yes to delete them."
        )
