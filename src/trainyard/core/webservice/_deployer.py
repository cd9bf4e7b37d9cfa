"""The background deployer: one detached process per deploy / update / restart of a service.

``Model.deploy`` (and ``update`` / ``restart``) write the record with state ``Transitioning`` and an
``operation``, copy the app, then start this process and return. It survives the notebook that
started it and does the slow part:

1. download the models into ``trainyard-models/<name>/<version>/`` (deploy, update);
2. build or reuse the environment (uv, cached by content hash; output into ``service.log``);
3. start ``python -m trainyard._serving`` detached, read its port, wait for ``GET /`` = 200;
4. switch the record to the new generation (state ``Healthy``), in one compare-and-set write;
5. for an update: keep the old generation serving for :data:`DRAIN_S` more seconds (clients that
   still hold its address), then stop it (SIGTERM: requests in flight finish) and free its files.

Any failure stops what it started and records the reason: a deploy or restart becomes ``Failed``;
a failed update leaves the old generation serving (``Healthy``) with the operation ``Failed``.
SIGTERM (from ``delete()``) is handled like a failure, so nothing it started outlives it.

Example::

    python -m trainyard.core.webservice._deployer --workspace ./ws --name svc --operation <id>
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from trainyard._execution.daemon import Entrypoint, run_daemon
from trainyard._execution.processes import ProcessId, stop_process
from trainyard.core.webservice import _manager as m
from trainyard.core.webservice import _record as r
from trainyard.core.webservice._environment import ServingPython, build_python
from trainyard.core.webservice._options import ServerOptions
from trainyard.exceptions import TrainyardError, WebserviceException

if TYPE_CHECKING:
    from trainyard._context import WorkspaceContext

#: Seconds the old generation keeps serving after the switch (clients holding the old address).
DRAIN_S = 2.0
#: Seconds a stopping server gets to finish its requests before SIGKILL.
STOP_GRACE_S = 10.0
#: Seconds to wait for the ``listening on`` line, and for ``init()`` to finish.
LISTEN_TIMEOUT_S = 120.0
INIT_TIMEOUT_S = 900.0


DEPLOYER_MODULE = "trainyard.core.webservice._deployer"


def entrypoint(ctx: WorkspaceContext, name: str, op_id: str, log: Path) -> Entrypoint:
    """The detached entrypoint that runs one operation (started through a compute backend).

    Example::

        backend_for(ctx, "local").launch(entrypoint(ctx, "svc", op["id"], gen.log))
    """
    args = ("--name", name, "--operation", op_id, "--env-cache", str(ctx.settings.env_cache_dir))
    return Entrypoint(DEPLOYER_MODULE, ctx.home, args, log)


class _Stop(BaseException):
    """SIGTERM arrived."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop


class Deployment:
    """One operation, run to its end by :meth:`run` (see the module docstring)."""

    def __init__(self, workspace: Any, name: str, op_id: str, env_cache: Path | None) -> None:
        self.ws = workspace
        self.name = name
        self.op_id = op_id
        self.env_cache = env_cache
        self.paths = m.ServicePaths(workspace.path, name)
        self.record = workspace.context.store.get_webservice(
            workspace.context.workspace_id, name
        ).data
        self.op: dict[str, Any] = dict(self.record.get("operation") or {})
        if self.op.get("id") != op_id:
            raise WebserviceException(f"Operation {op_id} is not the current one of {name}.")
        self.target: dict[str, Any] = dict(self.op.get("target") or {})
        self.gen = self.paths.generation(int(self.op["generation"]))
        self.started: m.ServerHandle | None = None
        self.emit: Callable[[str], None] = print

    # ------------------------------------------------------------------ steps
    def _models(self) -> None:
        from trainyard.core.model import Model

        ids = list(self.target.get("models") or [])
        if not ids:
            self.gen.models.mkdir(parents=True, exist_ok=True)
            return
        models = []
        for model_id in ids:
            name, _, version = str(model_id).rpartition(":")
            models.append(Model(self.ws, name, version=int(version)))
        self.emit(f"trainyard-deploy: downloading models {', '.join(ids)}")
        m.materialise_models(models, self.gen)

    def _python(self) -> ServingPython:
        from trainyard.core.environment import Environment

        env = Environment.from_dict(self.target["environment"])
        self.emit(f"trainyard-deploy: preparing environment {env.name!r}")
        built = build_python(env, self.env_cache, self.emit)
        self.emit(f"trainyard-deploy: python {built.python}")
        return built

    def _server_args(self, port: int) -> m.ServerArgs:
        cfg = self.target.get("deploymentConfig") or {}
        inference = self.target.get("inferenceConfig") or {}
        env_vars = (self.target.get("environment") or {}).get("environmentVariables") or {}
        auth = bool(self.target.get("authEnabled"))
        return m.ServerArgs(
            entry_script=str(inference["appEntryScript"]),
            model_dir=self.gen.model_dir(list(self.target.get("models") or [])),
            service_name=self.name,
            host=str(cfg.get("host") or "127.0.0.1"),
            port=port,
            workers=int(cfg.get("workerCount") or 1),
            keys_file=self.paths.keys_file if auth else None,
            max_request_bytes=int(cfg.get("maxRequestBytes") or 10 * 1024 * 1024),
            env=env_vars,
            options=ServerOptions.from_dict(cfg.get("serverOptions")),
            log_file=self.gen.log,
        )

    def _limits(self) -> m.Limits:
        cfg = self.target.get("deploymentConfig") or {}
        if cfg.get("computeType") != "ACI":
            return m.Limits()
        return m.Limits.for_request(cfg.get("cpuCores"), cfg.get("memoryInGB"), seed=self.name)

    def _start(self, python: str, port: int, limits: m.Limits) -> tuple[m.ServerHandle, int]:
        args = self._server_args(port)
        self.emit(
            f"trainyard-deploy: starting the scoring server ({args.workers} worker(s), "
            f"port {port or 'chosen by the kernel'})"
        )
        handle = m.start_server(python, self.gen, args, limits)
        self.started = handle
        r.commit(self.ws, self.name, self.op_id, operation={"server": handle.ident.to_dict()})
        return handle, m.wait_listening(handle, LISTEN_TIMEOUT_S)

    def _old_server(self) -> ProcessId | None:
        return ProcessId.from_dict(self.record.get("server"))

    # ------------------------------------------------------------------ the operation
    def run(self) -> int:
        """Do the operation; return the process exit code (0 on success)."""
        fh, self.emit = m.log_writer(self.gen.log)
        kind = self.op.get("type")
        try:
            self.emit(
                f"trainyard-deploy: {str(kind).lower()} of service {self.name!r}, generation "
                f"{self.gen.root.name} (pid {os.getpid()})"
            )
            if kind != r.OP_RESTART or not self.gen.models.is_dir():
                self._models()
            built = self._python()
            limits = self._limits()
            cfg = self.target.get("deploymentConfig") or {}
            fixed = cfg.get("port")
            previous_port = self.record.get("port") if kind == r.OP_RESTART else None
            old = self._old_server()
            if old is not None and (kind == r.OP_RESTART or (kind == r.OP_UPDATE and fixed)):
                # Same port (or a restart): the old process must go first; an update of a service
                # on a fixed port therefore has a short gap.
                self.emit("trainyard-deploy: stopping the previous server process")
                stop_process(old, STOP_GRACE_S)
            port = int(fixed or previous_port or 0)
            try:
                handle, port = self._start(built.python, port, limits)
            except m.ServerExited as err:
                if err.details.get("exit_code") != m.EXIT_BIND_FAILED or fixed or not previous_port:
                    raise
                self.emit(f"trainyard-deploy: port {previous_port} is taken; using a free port")
                handle, port = self._start(built.python, 0, limits)
            host = str(cfg.get("host") or "127.0.0.1")
            url = r.base_url(host, port)
            self.emit(f"trainyard-deploy: listening at {url}; waiting for init()")
            m.wait_healthy(url, handle, INIT_TIMEOUT_S, workers=int(cfg.get("workerCount") or 1))
            switched = r.commit(
                self.ws,
                self.name,
                self.op_id,
                state=r.HEALTHY,
                data={
                    **self.target,
                    "generation": int(self.gen.root.name),
                    "host": host,
                    "port": port,
                    "scoringUri": f"{url}/score",
                    "swaggerUri": f"{url}/swagger.json",
                    "server": handle.ident.to_dict(),
                    "python": built.python,
                    "envHash": built.spec_hash,
                    "limits": limits.to_dict(),
                    "error": None,
                },
                operation={"status": r.OP_SUCCEEDED, "endedTime": time.time(), "error": None},
            )
            if not switched:
                self.emit("trainyard-deploy: the service was deleted or replaced; stopping")
                stop_process(handle.ident, STOP_GRACE_S)
                fh.close()
                return 1
            self.started = None
            self.emit(f"trainyard-deploy: healthy; scoring URI {url}/score")
        except (Exception, _Stop) as err:
            self._fail(err)
            fh.close()
            return 1
        try:
            if kind == r.OP_UPDATE:
                self._retire_previous()
        except _Stop:
            pass  # being deleted: delete() stops every generation itself
        except Exception as err:
            self.emit(f"trainyard-deploy: could not retire the previous generation: {err}")
        finally:
            fh.close()
        return 0

    def _retire_previous(self) -> None:
        previous = self.record.get("generation")
        if previous is None or int(previous) == int(self.gen.root.name):
            return
        time.sleep(DRAIN_S)
        old = self.paths.generation(int(previous))
        m.stop_generation(old, STOP_GRACE_S)
        m.remove_generation_files(old)
        self.emit(f"trainyard-deploy: generation {previous} stopped and removed")

    def _fail(self, err: BaseException) -> None:
        if isinstance(err, _Stop):
            message = "The deployment was stopped (the service is being deleted or replaced)."
        elif isinstance(err, TrainyardError):
            message = err.message
        else:
            message = f"{type(err).__name__}: {err}"
        self.emit(f"trainyard-deploy: FAILED: {message}")
        if not isinstance(err, TrainyardError | _Stop):
            self.emit(traceback.format_exc())
        if self.started is not None:
            stop_process(self.started.ident, STOP_GRACE_S if isinstance(err, _Stop) else 2.0)
        kind = self.op.get("type")
        old = self._old_server()
        old_serving = kind == r.OP_UPDATE and old is not None and old.alive()
        r.commit(
            self.ws,
            self.name,
            self.op_id,
            state=r.HEALTHY if old_serving else r.FAILED,
            data={} if old_serving else {"error": {"message": message, "operation": kind}},
            operation={"status": r.OP_FAILED, "endedTime": time.time(), "error": message},
        )


def _body(ctx: WorkspaceContext, args: argparse.Namespace) -> int:
    from trainyard.core.workspace import Workspace

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        deployment = Deployment(
            Workspace.from_context(ctx),
            str(args.name),
            str(args.operation),
            Path(args.env_cache) if args.env_cache else None,
        )
    except (TrainyardError, _Stop) as err:
        print(f"trainyard-deploy: {err}", file=sys.stderr)
        return 2
    return deployment.run()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m trainyard.core.webservice._deployer --workspace W --name N
    --operation ID [--env-cache DIR]``."""
    return run_daemon(
        "trainyard-deploy",
        _body,
        arguments=(("--name", True), ("--operation", True), ("--env-cache", False)),
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
