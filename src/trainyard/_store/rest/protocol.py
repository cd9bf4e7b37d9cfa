"""The wire protocol of the metadata seam: one table, read by the server and the REST client.

Every :class:`~trainyard._store.base.TrackingStore` method is one operation,
``POST /api/v1/store/<method>`` with its arguments as a JSON object, answered with
``{"result": <value>}`` (entities encoded by :mod:`trainyard._store.rest.codec`) or, on error, the
exception tree's wire form ``{"error": {"code", "message", "details"}}`` with the class's HTTP status
— the client raises the same class again. Argument and result types come from the ABC's own
signatures (one source of truth); this table adds what the wire needs: whether the call reads or
writes (who may make it), how to find the workspace it touches (for authorisation), which argument
names a run (for run-scoped tokens), and whether a retry is safe.

Example::

    op = OPERATIONS["get_run"]
    op.path                     # '/api/v1/store/get_run'
    op.access                   # 'read'
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Literal

from trainyard._store.base import TrackingStore

API_PREFIX = "/api/v1"
STORE_PREFIX = f"{API_PREFIX}/store"

Access = Literal["read", "write", "admin"]
#: How the server finds the workspace an operation touches, to check the caller's role there:
#: ``workspace_id``/``run_id``/``experiment_id`` name the argument; ``new`` is a ``NewRun``
#: (its experiment), ``model`` a ``ModelInfo`` (its workspace); ``name`` is a workspace name;
#: ``global``: the whole store (server admins only); ``run_query``: ``list_runs``'s filters (its
#: workspace, experiment or parent run; none of them means the whole store).
Scope = Literal[
    "workspace_id", "run_id", "experiment_id", "new", "model", "name", "global", "run_query"
]


@dataclass(frozen=True)
class Param:
    """One argument: its name, type (for decoding) and whether it has a default."""

    name: str
    annotation: Any
    required: bool
    default: Any = None


@dataclass(frozen=True)
class Operation:
    """One store call on the wire."""

    name: str
    access: Access
    scope: Scope
    params: tuple[Param, ...]
    result: Any
    #: Safe to repeat after a lost answer (reads, and writes whose repeat changes nothing).
    idempotent: bool
    #: For run-scoped tokens: the argument naming the run written to (``None``: not run-scoped).
    run_arg: str | None = None
    #: The answer is a list, cut into pages on the wire (:mod:`trainyard._store.rest.paging`).
    paged: bool = False

    @property
    def path(self) -> str:
        return f"{STORE_PREFIX}/{self.name}"


#: name → (access, scope, idempotent, run argument for run-scoped writes)
_TABLE: dict[str, tuple[Access, Scope, bool, str | None]] = {
    "ensure_workspace": ("admin", "name", True, None),
    "get_workspace": ("read", "name", True, None),
    "list_workspaces": ("admin", "global", True, None),
    "get_or_create_experiment": ("write", "workspace_id", True, None),
    "get_experiment": ("read", "workspace_id", True, None),
    "get_experiment_by_id": ("read", "experiment_id", True, None),
    "list_experiments": ("read", "workspace_id", True, None),
    "set_experiment_archived": ("write", "experiment_id", True, None),
    "create_run": ("write", "new", False, "new"),
    "get_run": ("read", "run_id", True, None),
    "list_runs": ("read", "run_query", True, None),
    "update_run_status": ("write", "run_id", False, "run_id"),
    "update_run": ("write", "run_id", True, "run_id"),
    "heartbeat": ("write", "run_id", True, "run_id"),
    "status_history": ("read", "run_id", True, None),
    "set_tags": ("write", "run_id", True, "run_id"),
    "remove_tags": ("write", "run_id", True, "run_id"),
    "add_properties": ("write", "run_id", True, "run_id"),
    "log_metric_chunks": ("write", "run_id", False, "run_id"),
    "get_metric_chunks": ("read", "run_id", True, None),
    "register_environment": ("write", "workspace_id", True, None),
    "get_environment": ("read", "workspace_id", True, None),
    "list_environments": ("read", "workspace_id", True, None),
    "put_compute_target": ("admin", "workspace_id", True, None),
    "get_compute_target": ("read", "workspace_id", True, None),
    "list_compute_targets": ("read", "workspace_id", True, None),
    "delete_compute_target": ("admin", "workspace_id", False, None),
    "create_model": ("write", "model", False, None),
    "get_model": ("read", "workspace_id", True, None),
    "list_models": ("read", "workspace_id", True, None),
    "update_model": ("write", "workspace_id", True, None),
    "delete_model": ("write", "workspace_id", False, None),
    "put_registered_model": ("write", "workspace_id", False, None),
    "get_registered_model": ("read", "workspace_id", True, None),
    "list_registered_models": ("read", "workspace_id", True, None),
    "rename_model": ("write", "workspace_id", False, None),
    "delete_registered_model": ("write", "workspace_id", False, None),
    "rename_experiment": ("write", "experiment_id", False, None),
    "create_webservice": ("write", "workspace_id", False, None),
    "get_webservice": ("read", "workspace_id", True, None),
    "list_webservices": ("read", "workspace_id", True, None),
    "update_webservice": ("write", "workspace_id", False, None),
    "delete_webservice": ("write", "workspace_id", False, None),
}


def _operation(name: str) -> Operation:
    access, scope, idempotent, run_arg = _TABLE[name]
    fn = getattr(TrackingStore, name)
    hints = typing.get_type_hints(fn)
    params = []
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        required = p.default is inspect.Parameter.empty
        params.append(
            Param(p.name, hints.get(p.name, Any), required, None if required else p.default)
        )
    return Operation(
        name=name,
        access=access,
        scope=scope,
        params=tuple(params),
        result=hints.get("return", Any),
        idempotent=idempotent,
        run_arg=run_arg,
        paged=typing.get_origin(hints.get("return")) is list,
    )


def _abstract_methods() -> set[str]:
    return set(getattr(TrackingStore, "__abstractmethods__", ()))


OPERATIONS: dict[str, Operation] = {name: _operation(name) for name in sorted(_TABLE)}

missing = _abstract_methods() - set(OPERATIONS)
if missing:  # pragma: no cover - guards the table against a seam method added without a row
    raise RuntimeError(f"store methods missing from the wire protocol: {sorted(missing)}")
