"""The studio's registry API: sweeps, models, endpoints, environments, compute targets, members.

Example::

    GET  api/w/team/sweeps/HD_1714_1a2b           # children, primary metric, decisions
    POST api/w/team/endpoints/mnist-svc/score     # a JSON body scored by the service
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from fastapi import APIRouter, Body, Request

from trainyard.exceptions import ValidationError
from trainyard.studio.deps import StudioDeps
from trainyard.studio.views import (
    compute_view,
    endpoint_view,
    environment_view,
    model_view,
    run_row,
)

#: Log lines of a sweep's controller that record a decision about a child.
_DECISION_WORDS = ("terminat", "cancel", "early", "stopp")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def best_of(children: list[dict[str, Any]], goal: str) -> dict[str, Any]:
    """``best`` (the child with the best ``best_primary_metric`` for ``goal``: ``{"run_id",
    "value"}`` or ``None``) and ``best_so_far``: as children ended, in end order, the best value
    until then and the child that holds it (``{"after", "run_id", "value"}``)."""

    def better(a: float, b: float) -> bool:
        return a < b if goal == "minimize" else a > b

    best: dict[str, Any] | None = None
    so_far: list[dict[str, Any]] = []
    ended = sorted((c for c in children if c.get("end_time")), key=lambda c: c["end_time"])
    for child in ended:
        value = child.get("best_primary_metric")
        if value is not None and (best is None or better(value, best["value"])):
            best = {"run_id": child["run_id"], "value": value}
        if best is not None:
            so_far.append({"after": child["run_id"], **best})
    overall: dict[str, Any] | None = None
    for child in children:  # running children count for the best too
        value = child.get("best_primary_metric")
        if value is not None and (overall is None or better(value, overall["value"])):
            overall = {"run_id": child["run_id"], "value": value}
    return {"best": overall, "best_so_far": so_far}


def registry_router(deps: StudioDeps) -> APIRouter:
    """The routes of the module docstring."""
    router = APIRouter()

    @router.get("/api/w/{workspace}/sweeps/{run_id}")
    def sweep(request: Request, workspace: str, run_id: str) -> dict[str, Any]:
        """A HyperDrive sweep: primary metric and goal, every child with its hyperparameters,
        latest and best primary metric (for the goal), the best child, the best value so far as
        children ended, and the controller's early-termination decisions."""
        from trainyard.train.hyperdrive._history import best_value, goal_of, primary_series

        ctx = deps.read(request, workspace)
        parent = ctx.store.get_run(run_id)
        name, goal = goal_of(parent.tags.get("primary_metric_config"))
        page = ctx.store.search_runs(
            ctx.workspace_id, parent_run_id=run_id, descending=False, limit=1000
        )
        latest = ctx.store.latest_metrics([r.run_id for r in page.runs])
        now = time.time()
        children = [run_row(r, latest.get(r.run_id), now) for r in page.runs]
        for child in children:
            raw = child["properties"].get("hyperparameters")
            try:
                child["hyperparameters"] = json.loads(raw) if raw else {}
            except ValueError:
                child["hyperparameters"] = {}
            series = primary_series(ctx.store, child["run_id"], name) if name else []
            child["best_primary_metric"] = _finite(best_value(series, goal))
        log = deps.run(ctx, run_id).read_log("system_logs/hyperdrive.txt", 0, 1 << 20)
        lines = log.decode("utf-8", errors="replace").splitlines()
        decisions = [ln for ln in lines if any(w in ln.lower() for w in _DECISION_WORDS)]
        return {
            "run": run_row(parent, None, now),
            "primary_metric": name,
            "goal": goal,
            "children": children,
            **best_of(children, goal),
            "decisions": decisions[-200:],
        }

    @router.get("/api/w/{workspace}/models")
    def models(request: Request, workspace: str) -> dict[str, Any]:
        """Every model version, newest version first per name."""
        ctx = deps.read(request, workspace)
        return {"models": [model_view(m) for m in ctx.store.list_models(ctx.workspace_id)]}

    @router.get("/api/w/{workspace}/endpoints")
    def endpoints(request: Request, workspace: str) -> dict[str, Any]:
        """Every web service with its state and scoring URI."""
        ctx = deps.read(request, workspace)
        return {
            "endpoints": [endpoint_view(r) for r in ctx.store.list_webservices(ctx.workspace_id)]
        }

    @router.get("/api/w/{workspace}/endpoints/{name}/logs")
    def endpoint_logs(request: Request, workspace: str, name: str) -> dict[str, Any]:
        """The last lines of a service's log."""
        from trainyard.core.webservice.webservice import service_from_record

        ctx = deps.read(request, workspace)
        record = ctx.store.get_webservice(ctx.workspace_id, name)
        service = service_from_record(deps.workspace(ctx), record)
        return {"name": name, "logs": service.get_logs(num_lines=500)}

    @router.post("/api/w/{workspace}/endpoints/{name}/score")
    def score(request: Request, workspace: str, name: str, body: Any = Body(...)) -> dict[str, Any]:
        """Score a JSON body with the service (contributors)."""
        from trainyard.core.webservice.webservice import service_from_record

        ctx = deps.context(request, workspace, "write")
        record = ctx.store.get_webservice(ctx.workspace_id, name)
        service = service_from_record(deps.workspace(ctx), record)
        return {"name": name, "result": service.run(json.dumps(body))}

    @router.get("/api/w/{workspace}/environments")
    def environments(request: Request, workspace: str) -> dict[str, Any]:
        """The latest version of every registered environment."""
        ctx = deps.read(request, workspace)
        envs = ctx.store.list_environments(ctx.workspace_id)
        return {"environments": [environment_view(e) for e in envs]}

    @router.get("/api/w/{workspace}/computes")
    def computes(request: Request, workspace: str) -> dict[str, Any]:
        """Every compute target of the workspace."""
        ctx = deps.read(request, workspace)
        targets = ctx.store.list_compute_targets(ctx.workspace_id)
        return {"computes": [compute_view(t) for t in targets]}

    @router.get("/api/w/{workspace}/members")
    def members(request: Request, workspace: str) -> dict[str, Any]:
        """Who has which role in the workspace (workspace admins)."""
        deps.context(request, workspace, "admin")
        return {"members": deps.access.members(workspace)}

    @router.put("/api/w/{workspace}/members/{user}")
    def set_member(
        request: Request, workspace: str, user: str, body: dict[str, Any] = Body(...)
    ) -> dict[str, Any]:
        """Give a user a role in the workspace, or none (workspace admins)."""
        deps.context(request, workspace, "admin")
        role = body.get("role")
        if role is not None and role not in ("reader", "contributor", "admin"):
            raise ValidationError("role must be reader, contributor, admin or null.")
        deps.access.set_role(workspace, user, role)
        return {"members": deps.access.members(workspace)}

    return router
