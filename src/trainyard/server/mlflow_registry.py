"""MLflow's model registry on the team server: ``…/api/2.0/mlflow/registered-models/…`` and
``…/model-versions/…`` (create, get, search, update, rename, delete, tags, aliases, stages,
get-download-uri) over trainyard's model registry (:mod:`trainyard.mlflow_plugin._registry` holds
the mapping: a registered model is a trainyard model name, a version a trainyard model version).

A version's files download through the artifact proxy at
``mlflow-artifacts:/_registry/<name>/<version>/<model root>`` (:mod:`.mlflow_artifacts`).
Reading needs the reader role, writing the contributor role.

Example::

    $ MLFLOW_TRACKING_URI=http://127.0.0.1:8765/mlflow/team python -c \\
        "import mlflow; mlflow.register_model('runs:/<run id>/model', 'clf')"
"""

from __future__ import annotations

from typing import Any

from trainyard._store.entities import ModelInfo
from trainyard.mlflow_plugin._registry import ModelRegistry, version_path
from trainyard.mlflow_plugin._uri import REGISTRY_SEGMENT
from trainyard.server.auth import Principal
from trainyard.server.mlflow_common import READ, WRITE, Access, RouteSpec
from trainyard.server.state import ServerState


def download_uri(info: ModelInfo) -> str:
    """The proxy URI of a version's files (:func:`~trainyard.mlflow_plugin._registry.version_path`)."""
    return f"mlflow-artifacts:/{REGISTRY_SEGMENT}/{version_path(info)}"


class _Handlers(Access):
    """Each route's access check, then the registry call."""

    def __init__(self, state: ServerState, workspace: str, principal: Principal) -> None:
        super().__init__(state, workspace, principal)
        self.registry = ModelRegistry(
            self.store,
            state.artifacts(workspace),
            self.ws_id,
            user=principal.name,
            download_uri=download_uri,
        )

    def __getattr__(self, name: str) -> Any:
        access, sep, method = name.partition("__")
        if not sep or access not in ("r", "w") or "registry" not in self.__dict__:
            raise AttributeError(name)
        call = getattr(self.registry, method)

        def checked(args: dict[str, Any]) -> dict[str, Any]:
            if access == "w":
                self.write()
            else:
                self.read()
            result: dict[str, Any] = call(args)
            return result

        return checked


def handlers(state: ServerState, workspace: str, principal: Principal) -> _Handlers:
    """The handler object of one request (for :func:`~.mlflow_common.add_json_routes`)."""
    return _Handlers(state, workspace, principal)


def _rows() -> tuple[RouteSpec, ...]:
    rm, mv = "registered-models", "model-versions"
    spec: list[tuple[str, str, str, bool]] = [
        ("POST", f"{rm}/create", "create_registered_model", True),
        ("GET", f"{rm}/get", "get_registered_model", False),
        ("PATCH", f"{rm}/update", "update_registered_model", True),
        ("POST", f"{rm}/rename", "rename_registered_model", True),
        ("DELETE", f"{rm}/delete", "delete_registered_model", True),
        ("GET", f"{rm}/search", "search_registered_models", False),
        ("POST", f"{rm}/get-latest-versions", "get_latest_versions", False),
        ("GET", f"{rm}/get-latest-versions", "get_latest_versions", False),
        ("POST", f"{rm}/set-tag", "set_registered_model_tag", True),
        ("DELETE", f"{rm}/delete-tag", "delete_registered_model_tag", True),
        ("POST", f"{rm}/alias", "set_alias", True),
        ("DELETE", f"{rm}/alias", "delete_alias", True),
        ("GET", f"{rm}/alias", "get_model_version_by_alias", False),
        ("POST", f"{mv}/create", "create_model_version", True),
        ("GET", f"{mv}/get", "get_model_version", False),
        ("PATCH", f"{mv}/update", "update_model_version", True),
        ("POST", f"{mv}/transition-stage", "transition_stage", True),
        ("DELETE", f"{mv}/delete", "delete_model_version", True),
        ("GET", f"{mv}/search", "search_model_versions", False),
        ("GET", f"{mv}/get-download-uri", "get_download_uri", False),
        ("POST", f"{mv}/set-tag", "set_model_version_tag", True),
        ("DELETE", f"{mv}/delete-tag", "delete_model_version_tag", True),
    ]
    return tuple(
        (method, path, f"{'w' if write else 'r'}__{name}", WRITE if write else READ)
        for method, path, name, write in spec
    )


ROUTES = _rows()
