"""The service record: states, the JSON shape kept in the store, and the operation in progress.

The store keeps ``(state, data)`` per service name. ``data``'s top-level keys describe the generation
that serves now; ``data["operation"]`` describes the last deploy / update / restart::

    computeType      "ACI" | "Local"
    generation       the serving generation (folder number)
    host, port, scoringUri, swaggerUri, server ({"pid", "start", "host"})
    authEnabled, primaryKey, secondaryKey
    models           ["name:version", ...]
    inferenceConfig  InferenceConfig.serialize() plus "appEntryScript" (relative to the app copy)
    environment      Environment.to_dict(); python, envHash (what the build produced)
    deploymentConfig the deployment configuration's to_dict(); limits (what is enforced)
    tags, properties, description, createdTime, updatedTime, error
    operation        {"id", "type", "status", "generation", "target", "deployer", "server",
                      "error", "startedTime", "endedTime"}

``operation["target"]`` holds the keys the operation will put at the top level once the new
generation is healthy. The background deployer only writes while the state is ``Transitioning`` and
the operation id is its own, so a delete (state ``Deleting``) or a newer operation wins.

Example::

    record = ws.context.store.get_webservice(ws.context.workspace_id, "svc")
    record.data["operation"]["status"]   # 'Running' | 'Succeeded' | 'Failed'
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainyard.core.workspace import Workspace

TRANSITIONING = "Transitioning"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
FAILED = "Failed"
#: Transient state while ``delete()`` runs (not a v1 state; only visible during a delete).
DELETING = "Deleting"

#: Operation types and statuses.
OP_DEPLOY, OP_UPDATE, OP_RESTART = "Deploy", "Update", "Restart"
OP_RUNNING, OP_SUCCEEDED, OP_FAILED = "Running", "Succeeded", "Failed"


def new_operation(
    kind: str, generation: int, target: dict[str, Any], deployer: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A fresh ``operation`` entry (status ``Running``).

    Example::

        op = new_operation(OP_UPDATE, 2, {"models": ["m:2"]})
    """
    return {
        "id": uuid.uuid4().hex,
        "type": kind,
        "status": OP_RUNNING,
        "generation": int(generation),
        "target": target,
        "deployer": deployer,
        "server": None,
        "error": None,
        "startedTime": time.time(),
        "endedTime": None,
    }


def commit(
    workspace: Workspace,
    name: str,
    op_id: str,
    *,
    state: str | None = None,
    data: dict[str, Any] | None = None,
    operation: dict[str, Any] | None = None,
) -> bool:
    """Write for operation ``op_id``: only while the state is ``Transitioning`` and the record's
    operation is still ``op_id``. ``operation`` entries are merged into the record's operation.
    Returns whether it was written (``False`` also when the record is gone).

    Example::

        commit(ws, "svc", op["id"], operation={"server": ident.to_dict()})
    """
    from trainyard.exceptions import WebserviceException

    store = workspace.context.store
    try:
        record = store.get_webservice(workspace.context.workspace_id, name)
    except WebserviceException:
        return False
    op = dict(record.data.get("operation") or {})
    if record.state != TRANSITIONING or op.get("id") != op_id:
        return False
    updates = dict(data or {})
    if operation:
        op.update(operation)
        updates["operation"] = op
    updates["updatedTime"] = time.time()
    try:
        return store.update_webservice(
            workspace.context.workspace_id,
            name,
            state=state,
            data=updates,
            only_from=(TRANSITIONING,),
        )
    except WebserviceException:
        return False


def scoring_host(host: str) -> str:
    """The host to put in URIs for a bind address (a wildcard bind is reached on loopback).

    Example::

        scoring_host("0.0.0.0")   # '127.0.0.1'
    """
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def base_url(host: str, port: int) -> str:
    """``http://host:port`` for a bind address.

    Example::

        base_url("127.0.0.1", 5001)   # 'http://127.0.0.1:5001'
    """
    return f"http://{scoring_host(host)}:{int(port)}"
