"""The MLflow model registry store over an embedded trainyard workspace (entry point ``trainyard``).

MLflow loads it through the ``mlflow.model_registry_store`` entry point for registry URIs of the
``trainyard`` scheme (by default the registry URI is the tracking URI), so with
``MLFLOW_TRACKING_URI=trainyard:...`` ``mlflow.register_model``, ``MlflowClient``'s registry calls
and ``mlflow.<flavor>.load_model("models:/<name>/<version>")`` work on the workspace's registry.

The mapping is :class:`trainyard.mlflow_plugin._registry.ModelRegistry`'s, the one the team
server's REST registry uses: a registered model is a trainyard model name, a version a trainyard
model version (``Model(ws, name, version=…)``), and the other way round. This module only turns
MLflow's call arguments into that class's request fields and its JSON answers into MLflow's
entities (through MLflow's own protos). A version's files download from
``trainyard-artifacts:/_registry/<name>/<version>/<model root>?workspace=…``
(:mod:`trainyard.mlflow_plugin.artifacts`).

Example::

    MLFLOW_TRACKING_URI=trainyard:///data/ws python -c \\
        "import mlflow; mlflow.register_model('runs:/<run id>/model', 'clf')"
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any

from google.protobuf.json_format import ParseDict
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.protos.model_registry_pb2 import ModelVersion as ModelVersionProto
from mlflow.protos.model_registry_pb2 import RegisteredModel as RegisteredModelProto
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry.abstract_store import AbstractStore

from trainyard._store.entities import ModelInfo
from trainyard.mlflow_plugin._errors import translated
from trainyard.mlflow_plugin._registry import ModelRegistry, version_path
from trainyard.mlflow_plugin._uri import REGISTRY_SEGMENT, artifact_uri
from trainyard.mlflow_plugin.store import open_workspace


def _version_entity(view: dict[str, Any]) -> ModelVersion:
    proto = ParseDict(view, ModelVersionProto(), ignore_unknown_fields=True)
    return ModelVersion.from_proto(proto)


def _model_entity(view: dict[str, Any]) -> RegisteredModel:
    proto = ParseDict(view, RegisteredModelProto(), ignore_unknown_fields=True)
    return RegisteredModel.from_proto(proto)


def _tag_list(tags: Any) -> list[dict[str, str]]:
    """MLflow's tags (entities, or a dict) → the registry's ``[{"key", "value"}]``."""
    if isinstance(tags, dict):
        return [{"key": str(k), "value": str(v)} for k, v in tags.items()]
    return [{"key": t.key, "value": t.value} for t in tags or []]


class TrainyardRegistryStore(AbstractStore):
    """MLflow's model-registry ``AbstractStore`` on a trainyard workspace (module docstring).

    Every call reads or writes the workspace's store at once (no cache), so versions registered
    through trainyard (``run.register_model``, ``Model.register``) are seen here and the other way
    round. Errors are MLflow's: an unknown model or version is ``RESOURCE_DOES_NOT_EXIST``, a
    registered model created twice ``RESOURCE_ALREADY_EXISTS``, bad input
    ``INVALID_PARAMETER_VALUE``; a refused call writes nothing.
    """

    def __init__(self, store_uri: str | None = None, tracking_uri: str | None = None) -> None:
        super().__init__()
        self.workspace = open_workspace(store_uri or "trainyard:")
        ctx = self.workspace.context
        self.registry = ModelRegistry(
            ctx.store,
            ctx.artifacts,
            ctx.workspace_id,
            user=_user(),
            download_uri=self._download_uri,
        )

    def _download_uri(self, info: ModelInfo) -> str:
        """``trainyard-artifacts:/_registry/<name>/<version>[/<model root>]?workspace=…``."""
        return artifact_uri(self.workspace.path, REGISTRY_SEGMENT, version_path(info))

    def _call(self, method: str, **args: Any) -> dict[str, Any]:
        with translated():
            result: dict[str, Any] = getattr(self.registry, method)(args)
        return result

    def _search(
        self,
        method: str,
        key: str,
        entity: Callable[[dict[str, Any]], Any],
        filter_string: str | None,
        max_results: int | None,
        order_by: Any,
        page_token: str | None,
    ) -> PagedList:
        out = self._call(
            method,
            filter=filter_string,
            max_results=max_results,
            order_by=order_by,
            page_token=page_token,
        )
        return PagedList([entity(v) for v in out.get(key, [])], out.get("next_page_token"))

    # -- registered models ------------------------------------------------------------------------
    def create_registered_model(
        self,
        name: str,
        tags: Any = None,
        description: str | None = None,
        deployment_job_id: str | None = None,
    ) -> RegisteredModel:
        """A new registered model (``RESOURCE_ALREADY_EXISTS`` if the name has one)."""
        out = self._call(
            "create_registered_model", name=name, tags=_tag_list(tags), description=description
        )
        return _model_entity(out["registered_model"])

    def update_registered_model(
        self, name: str, description: str | None, deployment_job_id: str | None = None
    ) -> RegisteredModel:
        """Set the registered model's description."""
        out = self._call("update_registered_model", name=name, description=description)
        return _model_entity(out["registered_model"])

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """Rename the model name and every version of it."""
        out = self._call("rename_registered_model", name=name, new_name=new_name)
        return _model_entity(out["registered_model"])

    def delete_registered_model(self, name: str) -> None:
        """Delete the registered model and its versions."""
        self._call("delete_registered_model", name=name)

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: Any = None,
        page_token: str | None = None,
    ) -> PagedList:
        """Registered models matching ``filter_string`` (``name = 'x'``, ``name LIKE 'x%'``…)."""
        args = (filter_string, max_results, order_by, page_token)
        return self._search("search_registered_models", "registered_models", _model_entity, *args)

    def get_registered_model(self, name: str) -> RegisteredModel:
        """The registered model ``name`` (``RESOURCE_DOES_NOT_EXIST`` if there is none)."""
        return _model_entity(self._call("get_registered_model", name=name)["registered_model"])

    def get_latest_versions(self, name: str, stages: Any = None) -> list[ModelVersion]:
        """The newest version in each stage (of ``stages``, or of every stage)."""
        out = self._call("get_latest_versions", name=name, stages=stages)
        return [_version_entity(v) for v in out["model_versions"]]

    def set_registered_model_tag(self, name: str, tag: Any) -> None:
        """Set one tag of the registered model."""
        self._call("set_registered_model_tag", name=name, key=tag.key, value=tag.value)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """Remove one tag of the registered model."""
        self._call("delete_registered_model_tag", name=name, key=key)

    # -- model versions ---------------------------------------------------------------------------
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Any = None,
        run_link: str | None = None,
        description: str | None = None,
        local_model_path: str | None = None,
        model_id: str | None = None,
    ) -> ModelVersion:
        """A new trainyard model version holding the source run's files below the source path."""
        out = self._call(
            "create_model_version",
            name=name,
            source=source,
            run_id=run_id,
            tags=_tag_list(tags),
            description=description,
            model_id=model_id,
        )
        return _version_entity(out["model_version"])

    def update_model_version(self, name: str, version: Any, description: str) -> ModelVersion:
        """Set a version's description."""
        out = self._call(
            "update_model_version", name=name, version=version, description=description
        )
        return _version_entity(out["model_version"])

    def transition_model_version_stage(
        self, name: str, version: Any, stage: str, archive_existing_versions: bool
    ) -> ModelVersion:
        """Move a version to ``stage`` (optionally archiving the others in that stage)."""
        out = self._call(
            "transition_stage",
            name=name,
            version=version,
            stage=stage,
            archive_existing_versions=str(bool(archive_existing_versions)).lower(),
        )
        return _version_entity(out["model_version"])

    def delete_model_version(self, name: str, version: Any) -> None:
        """Delete one version (its aliases go with it)."""
        self._call("delete_model_version", name=name, version=version)

    def get_model_version(self, name: str, version: Any) -> ModelVersion:
        """One version (``RESOURCE_DOES_NOT_EXIST`` if the model or version is unknown)."""
        out = self._call("get_model_version", name=name, version=version)
        return _version_entity(out["model_version"])

    def get_model_version_download_uri(self, name: str, version: Any) -> str:
        """Where MLflow downloads the version's files from (a ``trainyard-artifacts:`` URI)."""
        out = self._call("get_download_uri", name=name, version=version)
        return str(out["artifact_uri"])

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: Any = None,
        page_token: str | None = None,
    ) -> PagedList:
        """Versions matching ``filter_string`` (``name = 'x'``, ``run_id = '…'``, tags…)."""
        args = (filter_string, max_results, order_by, page_token)
        return self._search("search_model_versions", "model_versions", _version_entity, *args)

    def set_model_version_tag(self, name: str, version: Any, tag: Any) -> None:
        """Set one tag of a version."""
        self._call(
            "set_model_version_tag", name=name, version=version, key=tag.key, value=tag.value
        )

    def delete_model_version_tag(self, name: str, version: Any, key: str) -> None:
        """Remove one tag of a version."""
        self._call("delete_model_version_tag", name=name, version=version, key=key)

    # -- aliases ----------------------------------------------------------------------------------
    def set_registered_model_alias(self, name: str, alias: str, version: Any) -> None:
        """Point ``alias`` at ``version``."""
        self._call("set_alias", name=name, alias=alias, version=version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        """Remove ``alias``."""
        self._call("delete_alias", name=name, alias=alias)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version ``alias`` points at."""
        out = self._call("get_model_version_by_alias", name=name, alias=alias)
        return _version_entity(out["model_version"])


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
