"""The backend of a workspace on a team server: the server executes, the client asks.

For a server workspace every target's work runs on the server's compute (local processes on the
server machine; a cluster later): ``submit`` asks the server to start the run's supervisor (it gets
a run-scoped token, never the user's), ``launch`` asks it to start a sweep's controller,
``cancel`` goes through the server (which also writes the local kill file next to the run),
``read_log`` reads the live log from the server by offset.

Example::

    backend = RemoteBackend(ctx, target)
    backend.submit(run_id)
    backend.read_log(run_id, "user_logs/std_log.txt", 0)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from trainyard._execution.backends.base import ComputeBackend
from trainyard._store.rest.protocol import API_PREFIX
from trainyard._store.rest.transport import Transport
from trainyard.exceptions import ConfigError, ValidationError

if TYPE_CHECKING:
    from trainyard._execution.daemon import Entrypoint
    from trainyard._execution.distributed import Layout


class RemoteBackend(ComputeBackend):
    """Runs a server workspace's work on the server (see the module docstring)."""

    def _transport(self) -> Transport:
        transport = getattr(self.ctx.store, "transport", None)
        if not isinstance(transport, Transport):
            raise ConfigError("A server workspace's store must be the REST store.")
        return transport

    def _run_path(self, run_id: str, action: str) -> str:
        ws = quote(self.ctx.name, safe="")
        return f"{API_PREFIX}/workspaces/{ws}/runs/{quote(run_id, safe='')}/{action}"

    def check_layout(self, layout: Layout, gpu_count: int) -> None:
        """The server runs the ranks on its own machine: the same rules, except that its MPI
        runtime is checked there (the supervisor fails the run saying what to install)."""
        from trainyard._execution.distributed import check_layout, check_single_node

        check_layout(layout, self.target.name, self.target.config, gpu_count)
        check_single_node(layout, self.target.name, runtime_here=False)

    def submit(self, run_id: str, env: Mapping[str, str] | None = None) -> None:
        if env:
            raise ValidationError("A server workspace's runs get their environment on the server.")
        self._transport().call_json("POST", self._run_path(run_id, "submit"), {}, idempotent=False)

    def launch(self, entrypoint: Entrypoint) -> int | None:
        # Only the entrypoints the server knows are started there (never an arbitrary module).
        run_id = dict(zip(entrypoint.args[::2], entrypoint.args[1::2], strict=False)).get(
            "--run-id"
        )
        if entrypoint.module != "trainyard.train.hyperdrive._controller" or not run_id:
            raise ValidationError(
                f"A server workspace cannot start {entrypoint.module} from a client; deploy "
                "services through the server's own deployment."
            )
        self._transport().call_json(
            "POST", self._run_path(run_id, "launch-controller"), {}, idempotent=False
        )
        return None

    def cancel(self, run_id: str) -> bool:
        answer = self._transport().call_json("POST", self._run_path(run_id, "cancel"), {})
        return bool((answer or {}).get("cancelled"))

    def read_log(self, run_id: str, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        query = f"?name={quote(name, safe='/')}&offset={int(offset)}&limit={int(limit)}"
        resp = self._transport().request("GET", self._run_path(run_id, "logs") + query)
        return resp.read()

    def log_names(self, run_id: str) -> list[str]:
        answer = self._transport().call_json("GET", self._run_path(run_id, "log-names"))
        return [str(n) for n in (answer or {}).get("names", [])]
