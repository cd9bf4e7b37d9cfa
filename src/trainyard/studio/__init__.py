"""trainyard studio: the web UI where people look at their runs.

``trainyard ui`` serves it over one embedded workspace (:func:`create_ui_app`); ``trainyard
server`` mounts :func:`studio_router` behind its login. The JSON API is in :mod:`.routes_runs`
and :mod:`.routes_registry`, who may see what in :mod:`.access`, chart downsampling in
:mod:`.series`; the front-end is built from ``studio/frontend`` into ``static/``.

Example::

    from trainyard.studio import create_ui_app
    app = create_ui_app(open_context(Path("./ws")))
"""

from __future__ import annotations

from trainyard.studio.access import EmbeddedAccess, StudioAccess, Viewer
from trainyard.studio.app import create_ui_app, studio_router

__all__ = ["EmbeddedAccess", "StudioAccess", "Viewer", "create_ui_app", "studio_router"]
