"""``trainyard server``: one workspace store for a team, over HTTP, with accounts and roles.

The server is the REST implementation of the metadata and bytes seams (clients use
:class:`trainyard._store.rest.tracking.RestTrackingStore` and
:class:`~trainyard._store.rest.artifacts.RestArtifactStore`, which pass the same conformance suites
as the SQL store), plus users, API tokens and workspace roles (:mod:`.auth`), behind the Host/Origin
checks of :mod:`.app`. Build the app with :func:`create_app`; run it with ``trainyard server``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainyard.server.app import create_app
    from trainyard.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from trainyard.server.app import create_app

        return create_app
    if name == "ServerConfig":
        from trainyard.server.config import ServerConfig

        return ServerConfig
    raise AttributeError(f"module 'trainyard.server' has no attribute {name!r}")
