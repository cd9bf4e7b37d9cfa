"""``Webservice``: a deployed model behind a REST endpoint (v1: ``azureml.core.webservice.Webservice``).

``Webservice(ws, name)`` returns the concrete class (:class:`~.aci.AciWebservice` or
:class:`~.local.LocalWebservice`); ``Webservice.list(ws)`` and ``ws.webservices`` list them. Services
are local processes (see :mod:`._manager`); their records live in the workspace store.

``state`` is live: reading it checks that the server process still runs and answers ``GET /``, so a
service whose process died reads ``Unhealthy`` (and is recorded so); :meth:`restart` brings it back.

Example::

    service = Model.deploy(ws, "chainer-mnist-1", [model], inference_config, aciconfig)
    service.wait_for_deployment(show_output=True)
    print(service.state, service.scoring_uri)       # Healthy http://127.0.0.1:41231/score
    print(service.run('{"data": [0]}'))              # [7]
    service.delete()
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from trainyard._execution.processes import ProcessId, stop_process
from trainyard._store.entities import WebserviceRecord
from trainyard.core.webservice import _manager as m
from trainyard.core.webservice import _record as r
from trainyard.core.webservice._attributes import WebserviceAttributes
from trainyard.exceptions import WebserviceException, WebserviceNotFound

if TYPE_CHECKING:
    import httpx

    from trainyard.core.inference_config import InferenceConfig
    from trainyard.core.model import Model
    from trainyard.core.webservice._configs import WebserviceDeploymentConfiguration
    from trainyard.core.workspace import Workspace

#: Seconds a scoring call may take (v1's client did not cap it lower).
RUN_TIMEOUT_S = 300.0
#: A Transitioning record whose deployer pid was never written is failed after this many seconds.
_NO_DEPLOYER_AFTER_S = 120.0


def fetch_record(workspace: Workspace, name: str) -> WebserviceRecord:
    """The record of service ``name``; ``WebserviceNotFound`` (a ``WebserviceException``) if
    there is none.

    Example::

        record = fetch_record(ws, "svc")
        record.state, record.data["scoringUri"]
    """
    try:
        return workspace.context.store.get_webservice(workspace.context.workspace_id, name)
    except WebserviceNotFound:
        raise WebserviceNotFound(
            f"WebserviceNotFound: Webservice with name {name} not found in provided workspace "
            f"{workspace.name!r}. List them with Webservice.list(ws).",
            name=name,
        ) from None


class Webservice(WebserviceAttributes):
    """A deployed service (see the module docstring). Constructing it fetches an existing one.

    Example::

        svc = Webservice(ws, "chainer-mnist-1")     # an AciWebservice or LocalWebservice
        svc.get_logs(num_lines=20)
    """

    #: ``"ACI"`` or ``"Local"`` on the concrete classes.
    _webservice_type: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[Webservice]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls._webservice_type:
            Webservice._registry[cls._webservice_type] = cls

    def __new__(cls, workspace: Workspace | None = None, name: str | None = None) -> Webservice:
        if cls is Webservice and workspace is not None and name is not None:
            data = fetch_record(workspace, name).data
            sub = Webservice._registry.get(str(data.get("computeType")))
            if sub is None:
                raise WebserviceException(
                    f"Service {name!r} has unknown compute type {data.get('computeType')!r}."
                )
            return super().__new__(sub)
        return super().__new__(cls)

    def __init__(self, workspace: Workspace, name: str) -> None:
        record = fetch_record(workspace, name)
        kind = record.data.get("computeType")
        if self._webservice_type and kind != self._webservice_type:
            raise WebserviceException(
                f"Service {name!r} is a {kind} service, not {self._webservice_type}; open it with "
                f"Webservice(ws, {name!r}).",
                name=name,
            )
        self._setup(workspace, record)

    def _setup(self, workspace: Workspace, record: WebserviceRecord) -> None:
        self._workspace = workspace
        self.name = record.name
        self._state = record.state
        self._data = dict(record.data)
        self._record = record
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None

    @classmethod
    def _wrap(cls, workspace: Workspace, record: WebserviceRecord) -> Webservice:
        sub = Webservice._registry.get(str(record.data.get("computeType")), cls)
        obj = object.__new__(sub)
        obj._setup(workspace, record)
        return obj

    # ------------------------------------------------------------------ listing
    @staticmethod
    def list(
        workspace: Workspace,
        compute_type: str | None = None,
        image_name: str | None = None,
        image_id: str | None = None,
        model_name: str | None = None,
        model_id: str | None = None,
        tags: Sequence[Any] | None = None,
        properties: Sequence[Any] | None = None,
        image_digest: str | None = None,
    ) -> list[Webservice]:
        """Services of ``workspace``, by name; filters are ANDed (tag / property items are ``'key'``
        or ``['key', 'value']``). ``image_*`` filters match nothing here (there are no images).

        Example::

            Webservice.list(ws, compute_type="ACI", model_name="chainer-dnn-mnist")
        """
        from trainyard.core.model import _matches

        if image_name or image_id or image_digest:
            return []
        found = []
        for record in workspace.context.store.list_webservices(workspace.context.workspace_id):
            data = record.data
            if (
                compute_type is not None
                and str(compute_type).lower() != str(data.get("computeType", "")).lower()
            ):
                continue
            ids = [str(i) for i in data.get("models") or []]
            if model_name is not None and not any(i.rpartition(":")[0] == model_name for i in ids):
                continue
            if model_id is not None and model_id not in ids:
                continue
            if not _matches(data.get("tags") or {}, tags):
                continue
            if not _matches(data.get("properties") or {}, properties):
                continue
            found.append(Webservice._wrap(workspace, record))
        return found

    # ------------------------------------------------------------------ attributes
    @property
    def workspace(self) -> Workspace:
        """The workspace the service belongs to."""
        return self._workspace

    @property
    def state(self) -> str:
        """``Transitioning``, ``Healthy``, ``Unhealthy`` or ``Failed``, checked live (process +
        ``GET /``); a change found here is written to the record."""
        self._reconcile(probe=True)
        return self._state

    # ------------------------------------------------------------------ state
    def _refresh(self) -> None:
        record = fetch_record(self._workspace, self.name)
        self._record, self._state, self._data = record, record.state, dict(record.data)

    def get_record(self, refresh: bool = True) -> WebserviceRecord:
        """The service's stored record (state and data) as a typed, frozen value; read afresh
        unless ``refresh=False``."""
        if refresh:
            self._refresh()
        return self._record

    def _reconcile(self, probe: bool) -> None:
        """Refresh the record, then make its state match the processes (see :attr:`state`)."""
        self._refresh()
        state, data = self._state, self._data
        op = data.get("operation") or {}
        if state == r.TRANSITIONING:
            deployer = ProcessId.from_dict(op.get("deployer"))
            if deployer is None:
                # The deploying call writes the deployer's pid right after starting it; a record
                # that never got one belongs to a call that died in between.
                started = float(op.get("startedTime") or time.time())
                if time.time() - started < _NO_DEPLOYER_AFTER_S:
                    return
            elif not deployer.local or deployer.alive():
                return
            self._refresh()  # it may have finished just now
            if self._state != r.TRANSITIONING:
                return
            old = ProcessId.from_dict(data.get("server"))
            keeps = op.get("type") == r.OP_UPDATE and old is not None and old.alive()
            message = "The deployment process exited before the service was healthy."
            orphan = ProcessId.from_dict(op.get("server"))
            if orphan is not None and orphan != old:
                stop_process(orphan, grace_s=2.0)  # a server it started but never handed over
            r.commit(
                self._workspace,
                self.name,
                str(op.get("id")),
                state=r.HEALTHY if keeps else r.FAILED,
                data={} if keeps else {"error": {"message": message, "operation": op.get("type")}},
                operation={"status": r.OP_FAILED, "error": message, "endedTime": time.time()},
            )
            self._refresh()
        elif state in (r.HEALTHY, r.UNHEALTHY):
            healthy = self._server_ok(probe)
            want = r.HEALTHY if healthy else r.UNHEALTHY
            if want != state:
                self._workspace.context.store.update_webservice(
                    self._workspace.context.workspace_id,
                    self.name,
                    state=want,
                    data={"updatedTime": time.time()},
                    only_from=(state,),
                )
                self._refresh()

    def _server_ok(self, probe: bool) -> bool:
        server = ProcessId.from_dict(self._data.get("server"))
        if server is not None and server.local and not server.alive():
            return False
        if not probe or self._data.get("port") is None:
            return True
        url = r.base_url(str(self._data.get("host") or "127.0.0.1"), int(self._data["port"]))
        return m.probe(url) == 200

    def reload(self) -> None:
        """Refresh this object from the record and check the process (v1: also
        ``update_deployment_state``).

        Example::

            svc.reload(); svc.state
        """
        self._reconcile(probe=True)

    update_deployment_state = reload

    def wait_for_deployment(
        self, show_output: bool = False, timeout_sec: float | None = None
    ) -> None:
        """Block until the deployment (or update / restart) in progress ends.

        Raises :class:`WebserviceException` when it ends in anything but ``Healthy`` (the message
        carries the error and the log tail), or after ``timeout_sec``. ``show_output`` prints the
        deployment's log as it is written.

        Example::

            service.wait_for_deployment(show_output=True)
        """
        deadline = None if timeout_sec is None else time.monotonic() + float(timeout_sec)
        delay = 0.05
        offset = 0
        while True:
            self._reconcile(probe=False)
            if show_output:
                offset = self._print_new_log(offset)
            if self._state != r.TRANSITIONING:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise WebserviceException(
                    f"Service {self.name!r} is still Transitioning after {timeout_sec} s; call "
                    "wait_for_deployment again or look at get_logs().",
                    name=self.name,
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        if self._state == r.HEALTHY:
            self._reconcile(probe=True)
        op = self._data.get("operation") or {}
        if show_output:
            print(f"{self._state}: {op.get('type', 'Deploy')} operation {op.get('status')}.")
        if self._state == r.HEALTHY and op.get("status") != r.OP_FAILED:
            return
        error = op.get("error") or (self.error or {}).get("message") or "the process is not serving"
        raise WebserviceException(
            "Service deployment polling reached non-successful terminal state, current service "
            f"state: {self._state}\nOperation ID: {op.get('id')}\nOperation: {op.get('type')} "
            f"{op.get('status')}\nError: {error}\nMore information can be found using "
            f"'.get_logs()'. Log tail:\n{self._log_tail(30)}\nTo retry once the cause is "
            "fixed: service.update(inference_config=...) redeploys in place, and Model.deploy("
            "..., overwrite=True) replaces the service; service.delete() removes it.",
            name=self.name,
            state=self._state,
            operation=op.get("type"),
        )

    def _print_new_log(self, offset: int) -> int:
        path = self._log_generation().log
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except OSError:
            return offset
        end = chunk.rfind(b"\n") + 1
        if end:
            sys.stdout.write(chunk[:end].decode("utf-8", errors="replace"))
            sys.stdout.flush()
        return offset + end

    # ------------------------------------------------------------------ logs
    def _log_generation(self) -> m.GenerationPaths:
        op = self._data.get("operation") or {}
        generation = self._data.get("generation")
        if self._state in (r.TRANSITIONING, r.FAILED) or generation is None:
            generation = op.get("generation", generation or 1)
        return m.ServicePaths(self._workspace.path, self.name).generation(int(generation))

    def _log_tail(self, num_lines: int) -> str:
        return m.read_log_tail(self._log_generation().log, num_lines)

    def get_logs(self, num_lines: int = 5000, init: bool = False) -> str:
        """The last ``num_lines`` lines of the service log: the deployment steps, then the server's
        stdout and stderr (``init()`` / ``run()`` output, tracebacks, one access line per request).

        ``init`` is accepted for v1 compatibility (there is no separate init container).

        Example::

            print(service.get_logs(num_lines=20))
        """
        self._refresh()
        return self._log_tail(int(num_lines))

    # ------------------------------------------------------------------ keys
    def _require_auth(self) -> None:
        if not self._data.get("authEnabled"):
            raise WebserviceException(
                f"Service {self.name!r} does not have key auth enabled (deploy it with "
                "auth_enabled=True to get keys).",
                name=self.name,
            )

    def get_keys(self) -> tuple[str, str]:
        """``(primary, secondary)``; :class:`WebserviceException` when auth is off.

        Example::

            key1, key2 = service.get_keys()
        """
        self._refresh()
        self._require_auth()
        from trainyard.core.webservice._keys import load_keys

        return load_keys(self.workspace.path, self.name, self._data)

    def regen_key(self, key: str, set_key: str | None = None) -> None:
        """Replace the ``'Primary'`` or ``'Secondary'`` key (with ``set_key`` or a new random one);
        the other stays valid, so clients can rotate. Returns once the server enforces the change
        (about a second: it re-reads its keys file without a restart).

        Example::

            service.regen_key("Primary")
            new_primary, _ = service.get_keys()
        """
        from trainyard.core.webservice import _deploy

        _deploy.regen_key(self, key, set_key)

    def get_token(self) -> Any:
        """Token auth is an AKS feature; services here use keys (:meth:`get_keys`)."""
        raise WebserviceException(
            "Token auth is not available for this service type; use get_keys() and "
            "'Authorization: Bearer <key>'.",
            name=self.name,
        )

    # ------------------------------------------------------------------ scoring
    def _client(self) -> httpx.Client:
        import httpx

        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=httpx.Timeout(RUN_TIMEOUT_S, connect=10.0))
            return self._http

    def run(self, input_data: Any) -> Any:
        """POST ``input_data`` (a JSON string; other values are JSON-encoded) to the scoring URI.

        Sends ``Content-Type`` and ``Accept: application/json`` and, with auth on,
        ``Authorization: Bearer <primary key>``. On 401 the keys are re-read and the call retried
        once; when the service has moved (after an update) it follows the new address once. 200 →
        ``resp.json()``; anything else raises :class:`WebserviceException` with the status, headers
        and body.

        Example::

            service.run(json.dumps({"data": [0]}))   # [7]
        """
        import httpx

        body = input_data if isinstance(input_data, str | bytes) else json.dumps(input_data)
        retried = False
        while True:
            uri = self.scoring_uri
            if not uri:
                self._refresh()
                uri = self.scoring_uri
                if not uri:
                    raise WebserviceException(
                        f"Service {self.name!r} has no scoring URI yet (state {self._state}); call "
                        "wait_for_deployment() first.",
                        name=self.name,
                    )
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._data.get("authEnabled"):
                from trainyard.core.webservice._keys import load_keys

                try:
                    key = load_keys(self.workspace.path, self.name, self._data)[0]
                except WebserviceException:  # rotated since this object last read its record
                    self._refresh()
                    key = load_keys(self.workspace.path, self.name, self._data)[0]
                headers["Authorization"] = f"Bearer {key}"
            try:
                resp = self._client().post(uri, content=body, headers=headers)
            except httpx.TransportError as err:
                self._refresh()
                if not retried and self.scoring_uri and self.scoring_uri != uri:
                    retried = True
                    continue
                raise WebserviceException(
                    f"Cannot reach service {self.name!r} at {uri} ({type(err).__name__}: {err}); "
                    f"its state is {self._state}. Check service.state and service.get_logs().",
                    name=self.name,
                ) from None
            if resp.status_code == 401 and not retried and self._data.get("authEnabled"):
                retried = True
                self._refresh()
                continue
            if resp.status_code == 200:
                try:
                    return resp.json()
                except ValueError:
                    return resp.text
            raise WebserviceException(
                "Received bad response from service. More information can be found by calling "
                f"`.get_logs()` on the webservice object.\nResponse Code: {resp.status_code}\n"
                f"Headers: {dict(resp.headers)}\nContent: {resp.text}",
                name=self.name,
                status_code=resp.status_code,
                headers=dict(resp.headers),
                content=resp.text,
            )

    # ------------------------------------------------------------------ lifecycle
    def update(
        self,
        models: Sequence[Model] | None = None,
        inference_config: InferenceConfig | None = None,
        deployment_config: WebserviceDeploymentConfiguration | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
        auth_enabled: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Change the service. New models, code, environment, resources or auth start a new
        generation next to the serving one; the record switches to it once it is healthy and the
        old one is stopped a moment later (the scoring URI changes; :meth:`run` follows it). Returns
        at once (``Transitioning``): call :meth:`wait_for_deployment`. Tags, properties and the
        description alone change at once.

        Example::

            service.update(models=[Model(ws, "mnist", version=2)])
            service.wait_for_deployment()
        """
        from trainyard.core.webservice import _deploy

        _deploy.update(
            self, models, inference_config, deployment_config, tags, properties, description,
            auth_enabled,
        )  # fmt: skip

    def restart(self, timeout_sec: float | None = None) -> None:
        """Start the current generation again (for an ``Unhealthy`` or ``Failed`` service) and wait
        until it is healthy, on its previous port when that is still free.

        Example::

            if service.state == "Unhealthy":
                service.restart()
        """
        from trainyard.core.webservice import _deploy

        _deploy.restart(self, timeout_sec)

    def delete(self) -> None:
        """Stop the service and remove its record and files; returns when it is gone. A second
        delete raises :class:`WebserviceException`.

        Example::

            service.delete()
        """
        from trainyard.core.webservice import _deploy

        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
        _deploy.delete(self._workspace, self.name)

    # ------------------------------------------------------------------ serialisation
    def serialize(self) -> dict[str, Any]:
        """v1-shaped details (camelCase), plus trainyard's process details.

        Example::

            service.serialize()["scoringUri"]
        """
        d = self._data
        op = d.get("operation") or {}
        return {
            "name": self.name,
            "description": d.get("description"),
            "tags": dict(d.get("tags") or {}),
            "properties": dict(d.get("properties") or {}),
            "state": self._state,
            "createdTime": d.get("createdTime"),
            "updatedTime": d.get("updatedTime"),
            "error": d.get("error"),
            "computeType": d.get("computeType"),
            "workspaceName": self._workspace.name,
            "scoringUri": d.get("scoringUri"),
            "swaggerUri": d.get("swaggerUri"),
            "authEnabled": bool(d.get("authEnabled")),
            "models": list(d.get("models") or []),
            "environment": (d.get("environment") or {}).get("name"),
            "entryScript": (d.get("inferenceConfig") or {}).get("entryScript"),
            "deploymentConfig": dict(d.get("deploymentConfig") or {}),
            "resourceLimits": d.get("limits"),
            "generation": d.get("generation"),
            "server": d.get("server"),
            "python": d.get("python"),
            "lastOperation": {
                k: op.get(k) for k in ("id", "type", "status", "error", "startedTime", "endedTime")
            },
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(workspace={self._workspace.name!r}, name={self.name!r}, "
            f"state={self._state!r}, scoring_uri={self.scoring_uri!r})"
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Webservice)
            and other.name == self.name
            and other._workspace == self._workspace
        )

    def __hash__(self) -> int:
        return hash(self.name)


def service_from_record(workspace: Workspace, record: WebserviceRecord) -> Webservice:
    """The service object (of its compute type's class) for a record already read."""
    return Webservice._wrap(workspace, record)


def services_by_name(workspace: Workspace) -> dict[str, Webservice]:
    """name → service (what ``ws.webservices`` returns)."""
    return {s.name: s for s in Webservice.list(workspace)}
