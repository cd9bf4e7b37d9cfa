"""The studio's run API: experiments, the runs table, a run's details, charts, logs and files.

Every list is paged in the store; charts are downsampled to the pixels asked for
(:mod:`trainyard.studio.series`); logs are read by byte offset, so a live page asks only for what
is new since its last call.

Example::

    GET api/w/team/runs?experiment=3&sort=property:lr&desc=0&offset=0&limit=50
    GET api/w/team/series?run=mnist_1&run=mnist_2&name=loss&x=step&points=800
    GET api/w/team/runs/mnist_1/log?name=user_logs/std_log.txt&offset=4096
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from trainyard._execution.sysmetrics import FIELDS, SYSTEM_METRICS_LOG, read_samples
from trainyard._lifecycle import RunStatus
from trainyard._store.artifacts.paths import safe_relpath
from trainyard.exceptions import ArtifactNotFound, ValidationError
from trainyard.studio.chart_cache import ChartCache
from trainyard.studio.deps import StudioDeps
from trainyard.studio.series import Axis, bucket_lists, check_points, json_points, preload
from trainyard.studio.views import experiment_view, run_details, run_row

#: Longest piece of a log one call returns.
LOG_CHUNK_BYTES = 256 * 1024
#: Most bytes of system-metric samples one chart reads (about 10 days at one sample each 5 s).
SYSTEM_METRICS_MAX_BYTES = 32 * 1024 * 1024
#: Most runs one chart (compare, a sweep) overlays.
MAX_SERIES_RUNS = 50
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": None}


def _filters(request: Request, prefix: str) -> dict[str, str | None]:
    """``tag.<key>=<value>`` query parameters (an empty value: the key only)."""
    out: dict[str, str | None] = {}
    for key, value in request.query_params.multi_items():
        if key.startswith(prefix) and len(key) > len(prefix):
            out[key[len(prefix) :]] = value or None
    return out


def _download(
    stream: Any, rel: str, size: int, media: str | None = None, inline: bool = False
) -> StreamingResponse:
    """A file as a streamed response of type ``media`` (default: bytes), named after ``rel``'s
    last part; an attachment unless ``inline``."""
    name = rel.rsplit("/", 1)[-1]
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    disposition = "inline" if inline else "attachment"

    def chunks() -> Any:
        with stream:
            while block := stream.read(1 << 16):
                yield block

    return StreamingResponse(
        chunks(),
        media_type=media or "application/octet-stream",
        headers={
            "Content-Disposition": f'{disposition}; filename="{ascii_name}"; '
            f"filename*=UTF-8''{quote(name, safe='')}",
            "X-Content-Type-Options": "nosniff",
            "Content-Length": str(size),
        },
    )


def runs_router(deps: StudioDeps) -> APIRouter:
    """The routes of the module docstring."""
    router = APIRouter()
    charts = ChartCache()
    threading.Thread(target=preload, name="trainyard-studio-preload", daemon=True).start()

    @router.get("/api/w/{workspace}/experiments")
    def experiments(request: Request, workspace: str, archived: bool = False) -> dict[str, Any]:
        """Every experiment of the workspace with its number of top-level runs."""
        ctx = deps.read(request, workspace)
        found = ctx.store.list_experiments(ctx.workspace_id, include_archived=archived)
        counted = len(found) <= 200
        return {
            "experiments": [
                experiment_view(
                    e,
                    ctx.store.search_runs(ctx.workspace_id, experiment_id=e.id, limit=1).total
                    if counted
                    else None,
                )
                for e in found
            ]
        }

    @router.get("/api/w/{workspace}/runs")
    def runs(
        request: Request,
        workspace: str,
        experiment: int | None = None,
        parent: str | None = None,
        children: bool = False,
        status: list[str] = Query(default_factory=list),
        q: str | None = None,
        user: str | None = None,
        sort: str = "created_at",
        desc: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> dict[str, Any]:
        """A page of the runs table, sorted and filtered in the store, with each run's latest
        metrics (``tag.<key>=<value>`` and ``property.<key>=<value>`` filter too)."""
        ctx = deps.read(request, workspace)
        page = ctx.store.search_runs(
            ctx.workspace_id,
            experiment_id=experiment,
            parent_run_id=parent,
            include_children=children,
            statuses=[s for s in status if s] or None,
            text=q,
            submitted_by=user,
            tags=_filters(request, "tag.") or None,
            properties=_filters(request, "property.") or None,
            order_by=sort,
            descending=desc,
            offset=offset,
            limit=limit,
        )
        latest = ctx.store.latest_metrics([r.run_id for r in page.runs])
        now = time.time()
        return {
            "total": page.total,
            "offset": offset,
            "runs": [run_row(r, latest.get(r.run_id), now) for r in page.runs],
        }

    @router.get("/api/w/{workspace}/runs/{run_id}")
    def run(request: Request, workspace: str, run_id: str) -> dict[str, Any]:
        """A run's record, status timeline, latest metrics and the names of its metrics."""
        ctx = deps.read(request, workspace)
        info = ctx.store.get_run(run_id)
        chunks = ctx.store.get_metric_chunks(run_id)
        metrics: dict[str, dict[str, Any]] = {}
        for c in chunks:
            entry = metrics.setdefault(c.name, {"name": c.name, "kind": c.kind, "count": 0})
            entry["count"] += c.count
            entry["numeric"] = c.kind == "scalar" and c.dtype != "j"
        latest = ctx.store.latest_metrics([run_id]).get(run_id)
        details = run_details(info, ctx.store.status_history(run_id), latest, time.time())
        details["metric_names"] = list(metrics.values())
        details["terminal"] = RunStatus.parse(info.status).is_terminal()
        details["children"] = ctx.store.search_runs(
            ctx.workspace_id, parent_run_id=run_id, limit=1
        ).total
        return details

    @router.get("/api/w/{workspace}/series")
    def series(
        request: Request,
        workspace: str,
        name: str,
        run: list[str] = Query(default_factory=list),
        x: Axis = "step",
        points: int = 1000,
    ) -> dict[str, Any]:
        """One metric of one or more runs as chart data, at most ``points`` buckets each."""
        ctx = deps.read(request, workspace)
        check_points(points)
        if not run or len(run) > MAX_SERIES_RUNS:
            raise ValidationError(
                f"Give between 1 and {MAX_SERIES_RUNS} runs (run=ID&run=ID…).", runs=len(run)
            )
        out = {}
        for run_id in dict.fromkeys(run):
            out[run_id] = charts.series(ctx.store, ctx.workspace_id, run_id, name, x, points)
        return {"name": name, "x": x, "runs": out}

    @router.get("/api/w/{workspace}/runs/{run_id}/values")
    def values(
        request: Request, workspace: str, run_id: str, name: str, limit: int = 50
    ) -> dict[str, Any]:
        """The last points of a metric that is not a number series (table, row, image, text)."""
        ctx = deps.read(request, workspace)
        chunks = ctx.store.get_metric_chunks(run_id, [name])
        kind = chunks[0].kind if chunks else None
        return {"name": name, "kind": kind, "points": json_points(chunks, max(1, min(limit, 500)))}

    @router.get("/api/w/{workspace}/runs/{run_id}/system")
    def system(request: Request, workspace: str, run_id: str, points: int = 1000) -> dict[str, Any]:
        """The system metrics its supervisor sampled (CPU, memory, disk and network I/O, GPUs) as
        chart data over time: ``{"metrics": [{"name", "label", "unit", "series"}]}``."""
        ctx = deps.read(request, workspace)
        check_points(points)
        target = deps.run(ctx, run_id)
        data = b""
        while len(data) < SYSTEM_METRICS_MAX_BYTES:
            piece = target.read_log(SYSTEM_METRICS_LOG, len(data), LOG_CHUNK_BYTES)
            data += piece
            if len(piece) < LOG_CHUNK_BYTES:
                break
        samples = read_samples(data[: data.rfind(b"\n") + 1])
        metrics = []
        for name, (label, unit) in FIELDS.items():
            if name in samples:
                xs, ys = samples[name]
                metrics.append(
                    {
                        "name": name,
                        "label": label,
                        "unit": unit,
                        "series": bucket_lists(xs, ys, points),
                    }
                )
        return {"run_id": run_id, "metrics": metrics}

    @router.get("/api/w/{workspace}/runs/{run_id}/logs")
    def logs(request: Request, workspace: str, run_id: str) -> dict[str, Any]:
        """The names of a run's log files so far (live while it executes)."""
        ctx = deps.read(request, workspace)
        return {"logs": sorted(deps.run(ctx, run_id).get_log_names())}

    @router.get("/api/w/{workspace}/runs/{run_id}/log")
    def log(
        request: Request, workspace: str, run_id: str, name: str, offset: int = 0
    ) -> dict[str, Any]:
        """Log ``name`` from byte ``offset`` (whole lines; ``next`` is the offset to ask next)."""
        ctx = deps.read(request, workspace)
        target = deps.run(ctx, run_id)
        if offset < 0:
            raise ValidationError("offset must be 0 or more.", offset=offset)
        terminal = RunStatus.parse(target.get_status()).is_terminal()
        data = target.read_log(safe_relpath(name), offset, LOG_CHUNK_BYTES)
        if not terminal and len(data) < LOG_CHUNK_BYTES:
            data = data[: data.rfind(b"\n") + 1]  # a line still being written comes next time
        return {
            "name": name,
            "offset": offset,
            "next": offset + len(data),
            "text": data.decode("utf-8", errors="replace"),
            "more": len(data) == LOG_CHUNK_BYTES,
            "terminal": terminal,
        }

    @router.get("/api/w/{workspace}/runs/{run_id}/files")
    def files(request: Request, workspace: str, run_id: str) -> dict[str, Any]:
        """Every file of the run (outputs, logs, uploads) with its size."""
        ctx = deps.read(request, workspace)
        ctx.store.get_run(run_id)
        prefix = f"runs/{run_id}/"
        out = []
        for key in ctx.artifacts.list(prefix.rstrip("/"))[:10_000]:
            out.append({"path": key[len(prefix) :], "size": ctx.artifacts.size(key)})
        return {"files": out}

    @router.get("/api/w/{workspace}/runs/{run_id}/snapshot")
    def snapshot(request: Request, workspace: str, run_id: str) -> dict[str, Any]:
        """The files of the run's source snapshot (path, size), sorted; ``snapshot_id`` is
        ``None`` for a run submitted without one (an interactive run)."""
        from trainyard._execution.snapshot import SnapshotStore

        ctx = deps.read(request, workspace)
        sid = ctx.store.get_run(run_id).snapshot_id
        if not sid:
            return {"snapshot_id": None, "files": [], "total_bytes": 0}
        try:
            manifest = SnapshotStore(ctx.snapshots_dir).manifest(str(sid))
        except ArtifactNotFound:
            return {"snapshot_id": sid, "files": [], "total_bytes": 0, "missing": True}
        files = [
            {"path": path, "size": int(entry.get("size", 0))}
            for path, entry in sorted(manifest["files"].items())
        ]
        return {
            "snapshot_id": sid,
            "files": files[:10_000],
            "file_count": len(files),
            "total_bytes": sum(f["size"] for f in files),
        }

    @router.get("/api/w/{workspace}/runs/{run_id}/file")
    def file(request: Request, workspace: str, run_id: str, path: str) -> StreamingResponse:
        """Download one file of the run (images are shown inline)."""
        ctx = deps.read(request, workspace)
        rel = safe_relpath(path)
        key = f"runs/{run_id}/{rel}"
        if not ctx.artifacts.exists(key):
            raise ArtifactNotFound(
                f"Run {run_id!r} has no file {rel!r}; see its Files tab.", run_id=run_id
            )
        suffix = "." + rel.rsplit(".", 1)[-1].lower() if "." in rel else ""
        media = _IMAGE_TYPES.get(suffix)
        size = ctx.artifacts.size(key)
        return _download(ctx.artifacts.open(key), rel, size, media, inline=media is not None)

    @router.get("/api/w/{workspace}/runs/{run_id}/snapshot/file")
    def snapshot_file(
        request: Request, workspace: str, run_id: str, path: str
    ) -> StreamingResponse:
        """Download one file of the run's source snapshot (always as an attachment)."""
        from trainyard._execution.snapshot import SnapshotStore

        ctx = deps.read(request, workspace)
        sid = ctx.store.get_run(run_id).snapshot_id
        if not sid:
            raise ArtifactNotFound(f"Run {run_id!r} was not submitted with a snapshot.")
        stream, size = SnapshotStore(ctx.snapshots_dir).open_file(str(sid), path)
        return _download(stream, safe_relpath(path), size)

    @router.get("/api/w/{workspace}/runs/{run_id}/snapshot.zip")
    def snapshot_zip(request: Request, workspace: str, run_id: str) -> StreamingResponse:
        """The run's whole source snapshot as one zip (v1's ``restore_snapshot``)."""
        import tempfile
        from pathlib import Path

        from trainyard._execution.snapshot import SnapshotStore

        ctx = deps.read(request, workspace)
        sid = ctx.store.get_run(run_id).snapshot_id
        if not sid:
            raise ArtifactNotFound(f"Run {run_id!r} was not submitted with a snapshot.")
        with tempfile.TemporaryDirectory(prefix="trainyard-snapshot-") as tmp:
            zipped = SnapshotStore(ctx.snapshots_dir).restore_zip(str(sid), Path(tmp) / "s.zip")
            # Opened before the folder goes: the open file outlives its name.
            stream = zipped.open("rb")
            size = zipped.stat().st_size
        return _download(stream, f"snapshot-{run_id}.zip", size, "application/zip")

    @router.post("/api/w/{workspace}/runs/{run_id}/cancel")
    def cancel(request: Request, workspace: str, run_id: str) -> dict[str, Any]:
        """Ask the run to stop (contributors)."""
        ctx = deps.context(request, workspace, "write")
        target = deps.run(ctx, run_id)
        target.cancel()
        return {"run_id": run_id, "status": target.get_status()}

    return router
