"""``trainyard sync``: send the records that processes left in their spools for a team server.

A process logging to a remote workspace spools every run record before sending it (see
:mod:`trainyard._store.rest.spooling`). One that exits (or dies) while the server is away leaves
its spool on disk; :func:`sync_spooled` finds those spools — in the folders given, else in every
remote workspace's local folder under ``$TRAINYARD_HOME/remote`` — and sends them, in order, once.

Example::

    for line in sync_spooled([Path("/srv/trainyard/team")]):
        print(line["folder"], line["records"])
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from trainyard._context import META_FILE, open_remote_context
from trainyard._store.rest.spool import SUFFIX, Spool, sync_spools
from trainyard._store.rest.spooling import SpoolingRestStore
from trainyard.exceptions import ConfigError, TrainyardError
from trainyard.settings import Settings, load_settings


def _left_behind(home: Path) -> bool:
    """Whether ``home`` holds a spool that no live process owns."""
    for path in (home / "spool").rglob(f"*{SUFFIX}"):
        spool = Spool(path)
        owned = spool.owned
        spool.close()  # releases the lock it took to find out
        if owned:
            return True
    return False


def spool_homes(folders: Iterable[Path] = (), settings: Settings | None = None) -> list[Path]:
    """Local remote-workspace folders holding spools that no live process owns: ``folders`` if
    given, else every one under ``$TRAINYARD_HOME/remote``."""
    candidates = [p.expanduser().resolve() for p in folders]
    if not candidates:
        remote = (settings or load_settings()).home / "remote"
        if remote.is_dir():
            candidates = sorted(p for p in remote.iterdir() if p.is_dir())
    seen: list[Path] = []
    for home in candidates:
        if home not in seen and _left_behind(home):
            seen.append(home)
    return seen


def _server_of(home: Path) -> tuple[str, str]:
    path = home / META_FILE
    if path.exists():
        meta = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(meta.get("server"), str) and isinstance(meta.get("name"), str):
            return str(meta["server"]), str(meta["name"])
    raise ConfigError(
        f"{home} has spooled records but names no team server ({META_FILE} with 'server' and "
        "'name'); it is not a remote workspace's folder.",
        path=str(home),
    )


def sync_spooled(
    folders: Iterable[Path] = (),
    *,
    token: str | None = None,
    timeout: float = 300.0,
    settings: Settings | None = None,
    on_refused: Callable[[int, str, TrainyardError], None] | None = None,
) -> list[dict[str, Any]]:
    """Send every spool no live process owns; one result per folder: ``{"folder", "server",
    "workspace", "files", "records"}``, or ``"error"`` (the spools stay for the next try)."""
    results: list[dict[str, Any]] = []
    for home in spool_homes(folders, settings):
        line: dict[str, Any] = {"folder": str(home), "files": 0, "records": 0}
        try:
            server, name = _server_of(home)
            line.update(server=server, workspace=name)
            ctx = open_remote_context(server, name, token=token, settings=settings, home=home)
            store = ctx.store
            assert isinstance(store, SpoolingRestStore)
            files, records = sync_spools(
                home / "spool", store.send_now, timeout=timeout, on_refused=on_refused
            )
            line.update(files=files, records=records)
        except TrainyardError as err:
            line["error"] = {"code": err.code, "message": err.message}
        results.append(line)
    return results
