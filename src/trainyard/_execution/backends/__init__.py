"""Compute backends, chosen from a compute target's type through one registry.

``backend_for(ctx, target_name)`` looks the target up (``local`` always exists) and asks the factory
registered for its type. Local processes serve ``local`` and the ``amlcompute`` targets created
without a cluster; a Ray cluster (:mod:`trainyard._execution.ray`) serves ``raycompute`` targets and
``amlcompute`` ones provisioned with ``backend="ray"``. A new backend registers with
:func:`register_backend`.

Example::

    backend = backend_for(ctx, "cpu-cluster")
    backend.submit(run_id)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from trainyard._execution.backends.base import ComputeBackend
from trainyard.exceptions import ComputeTargetException

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext
    from trainyard._store.entities import ComputeTargetRecord

BackendFactory = Callable[["WorkspaceContext", "ComputeTargetRecord"], ComputeBackend]
_FACTORIES: dict[str, BackendFactory] = {}


def register_backend(target_types: Iterable[str], factory: BackendFactory) -> None:
    """Make ``factory`` the backend of every target whose type is in ``target_types``."""
    for target_type in target_types:
        _FACTORIES[target_type.lower()] = factory


def _local(ctx: WorkspaceContext, target: ComputeTargetRecord) -> ComputeBackend:
    from trainyard._execution.backends.local import LocalProcessBackend

    return LocalProcessBackend(ctx, target)


def _ray(ctx: WorkspaceContext, target: ComputeTargetRecord) -> ComputeBackend:
    from trainyard._execution.ray.backend import RayBackend

    return RayBackend(ctx, target)


def _amlcompute(ctx: WorkspaceContext, target: ComputeTargetRecord) -> ComputeBackend:
    """An ``AmlCompute`` target provisioned on Ray runs there; an older one as local processes."""
    from trainyard._execution.ray.connection import is_ray_target

    return (_ray if is_ray_target(target) else _local)(ctx, target)


register_backend(("local",), _local)
register_backend(("amlcompute",), _amlcompute)
register_backend(("raycompute",), _ray)


def backend_for(
    ctx: WorkspaceContext, target: str | ComputeTargetRecord | None = None
) -> ComputeBackend:
    """The backend that runs work on ``target`` (a name, a record, or ``None`` for ``local``)."""
    from trainyard._execution.targets import resolve_target_record

    record = target if not isinstance(target, str | None) else resolve_target_record(ctx, target)
    if ctx.server is not None:
        # A server workspace's work runs on the server, which picks its own backend per target.
        from trainyard._execution.backends.remote import RemoteBackend

        return RemoteBackend(ctx, record)
    factory = _FACTORIES.get(record.target_type.lower())
    if factory is None:
        known = ", ".join(sorted(_FACTORIES))
        raise ComputeTargetException(
            f"Compute target {record.name!r} has type {record.target_type!r}, which no backend "
            f"runs (known types: {known}). Recreate the target with a supported configuration.",
            target=record.name,
        )
    return factory(ctx, record)


__all__ = ["BackendFactory", "ComputeBackend", "backend_for", "register_backend"]
