"""The REST implementation of the metadata seam: a :class:`TrackingStore` over HTTP.

Each method is one operation of :mod:`trainyard._store.rest.protocol`; arguments and results travel
as :mod:`~trainyard._store.rest.codec` JSON, errors come back as the same exception classes the SQL
store raises, and the client passes the same conformance suite (``trainyard.testing.store``)
against a live ``trainyard server`` on SQLite and on PostgreSQL.

Example::

    store = RestTrackingStore("http://127.0.0.1:8765", token=os.environ["TRAINYARD_TOKEN"])
    ws = store.get_workspace("team")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainyard._store.base import TrackingStore
from trainyard._store.entities import (
    ComputeTargetRecord,
    EnvironmentRecord,
    ExperimentInfo,
    MetricChunk,
    ModelInfo,
    NewRun,
    RegisteredModelRecord,
    RunInfo,
    StatusEvent,
    WebserviceRecord,
    WorkspaceInfo,
)
from trainyard._store.rest import paging
from trainyard._store.rest.codec import decode, encode
from trainyard._store.rest.protocol import OPERATIONS, Operation
from trainyard._store.rest.transport import Transport
from trainyard.exceptions import StoreError


class RestTrackingStore(TrackingStore):
    """The store of a ``trainyard server`` (see the module docstring)."""

    def __init__(
        self, url: str, token: str | None = None, *, transport: Transport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.transport = transport or Transport(url, token)
        #: Items per page of a list answer (the server cuts pages by bytes too).
        self.page_size = paging.DEFAULT_PAGE

    def _call(self, name: str, args: Mapping[str, Any]) -> Any:
        op = OPERATIONS[name]
        payload = {k: encode(v) for k, v in args.items()}
        if op.paged:
            return decode(op.result, paging.follow(lambda cursor: self._page(op, payload, cursor)))
        answer = self.transport.call_json("POST", op.path, payload, idempotent=op.idempotent)
        result = answer.get("result") if isinstance(answer, dict) else None
        return decode(op.result, result)

    def _page(
        self, op: Operation, payload: dict[str, Any], cursor: str | None
    ) -> tuple[list[Any], str | None]:
        body = {**payload, paging.PAGE_CURSOR: cursor, paging.PAGE_SIZE: self.page_size}
        answer = self.transport.call_json("POST", op.path, body, idempotent=op.idempotent)
        if not isinstance(answer, dict) or not isinstance(answer.get("result"), list):
            raise StoreError(f"The server at {self.url} answered {op.name} without a list.")
        after = answer.get(paging.NEXT)
        return list(answer["result"]), (str(after) if after else None)

    def close(self) -> None:
        self.transport.close()

    def ensure_workspace(self, name: str) -> WorkspaceInfo:
        result: WorkspaceInfo = self._call("ensure_workspace", {"name": name})
        return result

    def get_workspace(self, name: str) -> WorkspaceInfo:
        result: WorkspaceInfo = self._call("get_workspace", {"name": name})
        return result

    def list_workspaces(self) -> list[WorkspaceInfo]:
        result: list[WorkspaceInfo] = self._call("list_workspaces", {})
        return result

    def get_or_create_experiment(self, workspace_id: str, name: str) -> ExperimentInfo:
        result: ExperimentInfo = self._call(
            "get_or_create_experiment", {"workspace_id": workspace_id, "name": name}
        )
        return result

    def get_experiment(self, workspace_id: str, name: str) -> ExperimentInfo:
        result: ExperimentInfo = self._call(
            "get_experiment", {"workspace_id": workspace_id, "name": name}
        )
        return result

    def get_experiment_by_id(self, experiment_id: int) -> ExperimentInfo:
        result: ExperimentInfo = self._call(
            "get_experiment_by_id", {"experiment_id": experiment_id}
        )
        return result

    def list_experiments(
        self, workspace_id: str, include_archived: bool = False
    ) -> list[ExperimentInfo]:
        result: list[ExperimentInfo] = self._call(
            "list_experiments", {"workspace_id": workspace_id, "include_archived": include_archived}
        )
        return result

    def set_experiment_archived(self, experiment_id: int, archived: bool) -> ExperimentInfo:
        result: ExperimentInfo = self._call(
            "set_experiment_archived", {"experiment_id": experiment_id, "archived": archived}
        )
        return result

    def rename_experiment(self, experiment_id: int, name: str) -> ExperimentInfo:
        result: ExperimentInfo = self._call(
            "rename_experiment", {"experiment_id": experiment_id, "name": name}
        )
        return result

    def create_run(self, new: NewRun) -> RunInfo:
        result: RunInfo = self._call("create_run", {"new": new})
        return result

    def get_run(self, run_id: str) -> RunInfo:
        result: RunInfo = self._call("get_run", {"run_id": run_id})
        return result

    def list_runs(
        self,
        experiment_id: int | None = None,
        *,
        workspace_id: str | None = None,
        run_type: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str | None] | None = None,
        statuses: Sequence[str] | None = None,
        parent_run_id: str | None = None,
        include_children: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[RunInfo], str | None]:
        result: tuple[list[RunInfo], str | None] = self._call(
            "list_runs",
            {
                "experiment_id": experiment_id,
                "workspace_id": workspace_id,
                "run_type": run_type,
                "tags": tags,
                "properties": properties,
                "statuses": statuses,
                "parent_run_id": parent_run_id,
                "include_children": include_children,
                "limit": limit,
                "cursor": cursor,
            },
        )
        return result

    def update_run_status(
        self,
        run_id: str,
        status: str,
        *,
        error: Mapping[str, Any] | None = None,
        reason: str | None = None,
        only_from: Sequence[str] | None = None,
    ) -> RunInfo:
        result: RunInfo = self._call(
            "update_run_status",
            {
                "run_id": run_id,
                "status": status,
                "error": error,
                "reason": reason,
                "only_from": only_from,
            },
        )
        return result

    def update_run(
        self,
        run_id: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        definition: Mapping[str, Any] | None = None,
        runtime: Mapping[str, Any] | None = None,
        target: str | None = None,
        snapshot_id: str | None = None,
    ) -> RunInfo:
        result: RunInfo = self._call(
            "update_run",
            {
                "run_id": run_id,
                "display_name": display_name,
                "description": description,
                "definition": definition,
                "runtime": runtime,
                "target": target,
                "snapshot_id": snapshot_id,
            },
        )
        return result

    def heartbeat(self, run_id: str) -> None:
        self._call("heartbeat", {"run_id": run_id})

    def status_history(self, run_id: str) -> list[StatusEvent]:
        result: list[StatusEvent] = self._call("status_history", {"run_id": run_id})
        return result

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._call("set_tags", {"run_id": run_id, "tags": tags})

    def remove_tags(self, run_id: str, keys: Sequence[str]) -> None:
        self._call("remove_tags", {"run_id": run_id, "keys": keys})

    def add_properties(self, run_id: str, properties: Mapping[str, str]) -> None:
        self._call("add_properties", {"run_id": run_id, "properties": properties})

    def log_metric_chunks(self, run_id: str, chunks: Sequence[MetricChunk]) -> None:
        self._call("log_metric_chunks", {"run_id": run_id, "chunks": chunks})

    def get_metric_chunks(
        self, run_id: str, names: Sequence[str] | None = None
    ) -> list[MetricChunk]:
        result: list[MetricChunk] = self._call(
            "get_metric_chunks", {"run_id": run_id, "names": names}
        )
        return result

    def register_environment(
        self, workspace_id: str, name: str, spec: Mapping[str, Any], spec_hash: str
    ) -> EnvironmentRecord:
        result: EnvironmentRecord = self._call(
            "register_environment",
            {"workspace_id": workspace_id, "name": name, "spec": spec, "spec_hash": spec_hash},
        )
        return result

    def get_environment(
        self, workspace_id: str, name: str, version: int | None = None
    ) -> EnvironmentRecord:
        result: EnvironmentRecord = self._call(
            "get_environment", {"workspace_id": workspace_id, "name": name, "version": version}
        )
        return result

    def list_environments(self, workspace_id: str) -> list[EnvironmentRecord]:
        result: list[EnvironmentRecord] = self._call(
            "list_environments", {"workspace_id": workspace_id}
        )
        return result

    def put_compute_target(
        self, workspace_id: str, name: str, target_type: str, config: Mapping[str, Any]
    ) -> ComputeTargetRecord:
        result: ComputeTargetRecord = self._call(
            "put_compute_target",
            {
                "workspace_id": workspace_id,
                "name": name,
                "target_type": target_type,
                "config": config,
            },
        )
        return result

    def get_compute_target(self, workspace_id: str, name: str) -> ComputeTargetRecord:
        result: ComputeTargetRecord = self._call(
            "get_compute_target", {"workspace_id": workspace_id, "name": name}
        )
        return result

    def list_compute_targets(self, workspace_id: str) -> list[ComputeTargetRecord]:
        result: list[ComputeTargetRecord] = self._call(
            "list_compute_targets", {"workspace_id": workspace_id}
        )
        return result

    def delete_compute_target(self, workspace_id: str, name: str) -> None:
        self._call("delete_compute_target", {"workspace_id": workspace_id, "name": name})

    def create_model(self, model: ModelInfo) -> ModelInfo:
        result: ModelInfo = self._call("create_model", {"model": model})
        return result

    def get_model(self, workspace_id: str, name: str, version: int | None = None) -> ModelInfo:
        result: ModelInfo = self._call(
            "get_model", {"workspace_id": workspace_id, "name": name, "version": version}
        )
        return result

    def list_models(
        self,
        workspace_id: str,
        name: str | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[ModelInfo]:
        result: list[ModelInfo] = self._call(
            "list_models",
            {"workspace_id": workspace_id, "name": name, "run_id": run_id, "latest": latest},
        )
        return result

    def update_model(
        self,
        workspace_id: str,
        name: str,
        version: int,
        *,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        add_properties: Mapping[str, str] | None = None,
    ) -> ModelInfo:
        result: ModelInfo = self._call(
            "update_model",
            {
                "workspace_id": workspace_id,
                "name": name,
                "version": version,
                "tags": tags,
                "description": description,
                "add_properties": add_properties,
            },
        )
        return result

    def delete_model(self, workspace_id: str, name: str, version: int) -> ModelInfo:
        result: ModelInfo = self._call(
            "delete_model", {"workspace_id": workspace_id, "name": name, "version": version}
        )
        return result

    def put_registered_model(
        self,
        workspace_id: str,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        aliases: Mapping[str, int] | None = None,
        create: bool = False,
    ) -> RegisteredModelRecord:
        result: RegisteredModelRecord = self._call(
            "put_registered_model",
            {
                "workspace_id": workspace_id,
                "name": name,
                "description": description,
                "tags": tags,
                "aliases": aliases,
                "create": create,
            },
        )
        return result

    def get_registered_model(self, workspace_id: str, name: str) -> RegisteredModelRecord:
        result: RegisteredModelRecord = self._call(
            "get_registered_model", {"workspace_id": workspace_id, "name": name}
        )
        return result

    def list_registered_models(self, workspace_id: str) -> list[RegisteredModelRecord]:
        result: list[RegisteredModelRecord] = self._call(
            "list_registered_models", {"workspace_id": workspace_id}
        )
        return result

    def rename_model(self, workspace_id: str, name: str, new_name: str) -> None:
        self._call(
            "rename_model", {"workspace_id": workspace_id, "name": name, "new_name": new_name}
        )

    def delete_registered_model(self, workspace_id: str, name: str) -> None:
        self._call("delete_registered_model", {"workspace_id": workspace_id, "name": name})

    def create_webservice(
        self, workspace_id: str, name: str, state: str, data: Mapping[str, Any]
    ) -> WebserviceRecord:
        result: WebserviceRecord = self._call(
            "create_webservice",
            {"workspace_id": workspace_id, "name": name, "state": state, "data": data},
        )
        return result

    def get_webservice(self, workspace_id: str, name: str) -> WebserviceRecord:
        result: WebserviceRecord = self._call(
            "get_webservice", {"workspace_id": workspace_id, "name": name}
        )
        return result

    def list_webservices(self, workspace_id: str) -> list[WebserviceRecord]:
        result: list[WebserviceRecord] = self._call(
            "list_webservices", {"workspace_id": workspace_id}
        )
        return result

    def update_webservice(
        self,
        workspace_id: str,
        name: str,
        *,
        state: str | None = None,
        data: Mapping[str, Any] | None = None,
        only_from: Sequence[str] | None = None,
    ) -> bool:
        result: bool = self._call(
            "update_webservice",
            {
                "workspace_id": workspace_id,
                "name": name,
                "state": state,
                "data": data,
                "only_from": only_from,
            },
        )
        return result

    def delete_webservice(self, workspace_id: str, name: str) -> None:
        self._call("delete_webservice", {"workspace_id": workspace_id, "name": name})
