"""How to reach the Ray cluster behind a compute target.

A target served by Ray keeps, in its stored config, a ``ray`` section::

    {"backend": "ray", ...,
     "ray": {"managed": true,                       # started by trainyard (else attached)
             "address": "127.0.0.1:6379",           # the GCS address (ray start --address)
             "dashboard_url": "http://127.0.0.1:8265",  # jobs API and state API
             "token_file": "/abs/path/token",       # Ray token auth (managed clusters)
             "node_resources": {"CPU": 2, "trainyard_slot": 1}}}   # one worker node's resources

Attached clusters may keep the token itself (``"token"``) when the user gave it; a token file is read
each time, so a rotated token is picked up. Every run asks its node for one ``trainyard_slot``
(:data:`SLOT_RESOURCE`): worker nodes advertise ``runs_per_node`` of them and the head none, so runs
land on worker nodes and a node takes at most that many at once. A target may name another slot
resource (``"slot_resource"``), so targets sharing a cluster each have nodes of their own.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard.exceptions import ComputeTargetException

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

    from trainyard._store.entities import ComputeTargetRecord

#: The custom resource one run takes on a node.
SLOT_RESOURCE = "trainyard_slot"
#: A target config's ``backend`` value that selects Ray.
RAY_BACKEND = "ray"


def is_ray_target(record: ComputeTargetRecord) -> bool:
    """Whether ``record`` is served by a Ray cluster (an attached ``raycompute`` target, or an
    ``AmlCompute`` target provisioned with ``backend="ray"``)."""
    config = record.config or {}
    return record.target_type.lower() == "raycompute" or config.get("backend") == RAY_BACKEND


@dataclass(frozen=True)
class RayConnection:
    """The address, dashboard and token of one Ray cluster."""

    target: str
    address: str
    dashboard_url: str
    token: str | None = None

    @classmethod
    def of(cls, record: ComputeTargetRecord) -> RayConnection:
        """The connection ``record``'s config names; raises ``ComputeTargetException`` if none."""
        section = (record.config or {}).get("ray")
        if not isinstance(section, dict) or not section.get("dashboard_url"):
            raise ComputeTargetException(
                f"Compute target {record.name!r} names no Ray cluster (its config has no "
                "'ray.dashboard_url'). Recreate it with ComputeTarget.create or attach one with "
                "ComputeTarget.attach(ws, name, RayCompute.attach_configuration(address=...)).",
                target=record.name,
            )
        token = section.get("token")
        token_file = section.get("token_file")
        if token is None and token_file:
            try:
                token = Path(str(token_file)).read_text(encoding="utf-8").strip()
            except OSError as err:
                raise ComputeTargetException(
                    f"Compute target {record.name!r}: cannot read its Ray token {token_file} "
                    f"({err}). Was the cluster deleted? Recreate the target.",
                    target=record.name,
                ) from None
        return cls(
            target=record.name,
            address=str(section.get("address") or ""),
            dashboard_url=str(section["dashboard_url"]).rstrip("/"),
            token=token,
        )

    @property
    def headers(self) -> dict[str, str]:
        """The HTTP headers every dashboard call carries."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def job_client(self) -> JobSubmissionClient:
        """Ray's own Jobs client for this cluster."""
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError:  # pragma: no cover - ray is a dependency of the ray extra
            raise ComputeTargetException(
                f"Compute target {self.target!r} runs on Ray, which is not installed here: "
                "pip install 'trainyard[ray]'.",
                target=self.target,
            ) from None
        try:
            return JobSubmissionClient(self.dashboard_url, headers=self.headers)
        except (ConnectionError, RuntimeError) as err:
            raise self.unreachable(err) from None

    def get(self, path: str, timeout: float = 10.0) -> Any:
        """GET ``path`` of the dashboard as JSON (the state API: ``/api/v0/nodes`` …)."""
        req = urllib.request.Request(self.dashboard_url + path, headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                raise ComputeTargetException(
                    f"The Ray cluster of compute target {self.target!r} refused its token "
                    f"(HTTP {err.code}). Re-attach the target with the cluster's current token.",
                    target=self.target,
                ) from None
            raise self.unreachable(err) from None
        except (OSError, ValueError) as err:
            raise self.unreachable(err) from None

    def unreachable(self, err: BaseException) -> ComputeTargetException:
        """The error for a cluster that does not answer."""
        return ComputeTargetException(
            f"The Ray cluster of compute target {self.target!r} at {self.dashboard_url} does not "
            f"answer ({type(err).__name__}: {err}). Is it running? `trainyard compute show "
            f"{self.target}` tells; a managed cluster restarts with ComputeTarget.create.",
            target=self.target,
        )

    def nodes(self) -> list[dict[str, Any]]:
        """Every node Ray knows (alive and dead), from the state API."""
        body = self.get("/api/v0/nodes?limit=10000&detail=true")
        result = body.get("data", {}).get("result", {}).get("result", [])
        return list(result) if isinstance(result, list) else []


__all__ = ["RAY_BACKEND", "SLOT_RESOURCE", "RayConnection", "is_ray_target"]
