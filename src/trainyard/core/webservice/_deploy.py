"""The caller's side of deploy / update / restart / delete / key rotation.

Each operation validates everything it can first, then writes the record (state ``Transitioning``
and an ``operation``), copies the app into a new generation folder and starts the background
deployer (:mod:`._deployer`), which builds the environment and starts the server. ``delete`` is
synchronous: it stops the deployer and every server process of the service, removes the files, then
the record.

Example::

    svc = deploy(ws, "svc", [model], InferenceConfig(entry_script="score.py"), None)
    svc.wait_for_deployment()
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trainyard._execution.processes import ProcessId, stop_process, wait_gone
from trainyard.core.webservice import _deployer, _keys
from trainyard.core.webservice import _manager as m
from trainyard.core.webservice import _record as r
from trainyard.core.webservice._configs import (
    AciServiceDeploymentConfiguration,
    WebserviceDeploymentConfiguration,
)
from trainyard.core.webservice._environment import inference_spec
from trainyard.exceptions import (
    AlreadyExistsError,
    InvalidNameError,
    WebserviceException,
    WebserviceNotFound,
)

if TYPE_CHECKING:
    from trainyard._store.entities import WebserviceRecord
    from trainyard.core.inference_config import InferenceConfig
    from trainyard.core.model import Model
    from trainyard.core.webservice.webservice import Webservice
    from trainyard.core.workspace import Workspace

#: Record keys that define what a generation runs (copied into an operation's target).
SPEC_KEYS = (
    "computeType",
    "models",
    "inferenceConfig",
    "environment",
    "deploymentConfig",
    "authEnabled",
)
#: Seconds ``delete`` gives the deployer to stop what it started before SIGKILL.
DEPLOYER_GRACE_S = 20.0


# ---------------------------------------------------------------------------------- checks
def _check_name(name: object) -> str:
    from trainyard.core._names import validate_service_name

    try:
        return validate_service_name(name)
    except InvalidNameError as err:
        raise WebserviceException(
            f"Error, provided service name is invalid: {err.message}", name=str(name)
        ) from err


def _check_models(workspace: Workspace, models: Any) -> list[Model]:
    from trainyard.core.model import Model

    if models is None:
        return []
    if isinstance(models, Model) or not isinstance(models, Sequence) or isinstance(models, str):
        raise WebserviceException("models must be a list of Model objects (it may be empty).")
    checked = []
    for model in models:
        if not isinstance(model, Model):
            raise WebserviceException(
                f"models must hold Model objects, not {type(model).__name__}."
            )
        Model(workspace, model.name, version=model.version)  # still registered here
        checked.append(model)
    ids = [m.id for m in checked]
    if len(set(ids)) != len(ids):
        raise WebserviceException(f"models lists the same model version twice: {ids}.")
    return checked


def _check_inference(inference_config: Any) -> InferenceConfig:
    from trainyard.core.inference_config import InferenceConfig

    if inference_config is None:
        raise WebserviceException(
            "inference_config is required: InferenceConfig(entry_script=..., environment=...) "
            "(no-code deployment is not available)."
        )
    if not isinstance(inference_config, InferenceConfig):
        raise WebserviceException(
            f"inference_config must be an InferenceConfig, not {type(inference_config).__name__}."
        )
    inference_config.validate_configuration()
    return inference_config


def _inference_target(inference: InferenceConfig) -> dict[str, Any]:
    env = inference.resolved_environment()
    inference_spec(env)  # the spec must parse before anything is stored
    source = inference.source_path
    script = inference.entry_script_path
    rel = script.resolve().relative_to(source.resolve()).as_posix() if source else script.name
    return {
        "inferenceConfig": {**inference.serialize(), "appEntryScript": rel},
        "environment": env.to_dict(),
    }


def _copy_app(inference_config: dict[str, Any], gen: m.GenerationPaths) -> None:
    from pathlib import Path

    source = inference_config.get("sourceDirectory")
    script = Path(str(inference_config["entryScript"]))
    source_path = Path(source) if source else None
    if not script.is_absolute():
        script = (source_path or Path.cwd()) / script
    m.copy_app(source_path, script, gen.app)


def _next_generation(paths: m.ServicePaths) -> int:
    existing = paths.generations()
    return int(existing[-1].root.name) + 1 if existing else 1


def _spawn(workspace: Workspace, name: str, op: dict[str, Any]) -> ProcessId | None:
    """Start the operation's deployer through the backend (services run on local compute)."""
    from trainyard._execution.backends import backend_for

    ctx = workspace.context
    gen = m.ServicePaths(ctx.home, name).generation(int(op["generation"]))
    gen.root.mkdir(parents=True, exist_ok=True)
    entrypoint = _deployer.entrypoint(ctx, name, str(op["id"]), gen.log)
    if ctx.server is not None:
        pid = _spawn_here(ctx, entrypoint)
    else:
        pid = backend_for(ctx, "local").launch(entrypoint)
    if pid is None:
        return None
    ident = ProcessId.of(pid)
    r.commit(workspace, name, str(op["id"]), operation={"deployer": ident.to_dict()})
    return ident


def _spawn_here(ctx: Any, entrypoint: Any) -> int | None:
    """A server workspace's service runs on the machine that deploys it, as every trainyard
    service does (hosting by the server itself is not built yet); its record is on the server, and
    its deployer opens the workspace over HTTP with the caller's token."""
    import dataclasses

    from trainyard._execution import daemon

    token = getattr(getattr(ctx.store, "transport", None), "token", None)
    env = (*entrypoint.env, ("TRAINYARD_TOKEN", str(token))) if token else entrypoint.env
    return daemon.spawn(dataclasses.replace(entrypoint, env=env))


def _write_keys(workspace: Workspace, name: str, data: dict[str, Any]) -> None:
    if not data.get("authEnabled"):
        return
    _keys.write_hashes(workspace.path, name, data)


def _start_operation(
    workspace: Workspace, name: str, op: dict[str, Any], previous_state: str, copy_from: Any
) -> None:
    """Copy the app (``copy_from``: inference config dict or a generation to copy), write the keys
    file, start the deployer. On failure the operation is marked failed and the error raised."""
    paths = m.ServicePaths(workspace.path, name)
    gen = paths.generation(int(op["generation"]))
    try:
        if isinstance(copy_from, m.GenerationPaths):
            if copy_from.root != gen.root:
                if gen.app.exists():
                    shutil.rmtree(gen.app)
                shutil.copytree(copy_from.app, gen.app)
        elif copy_from is not None:
            _copy_app(copy_from, gen)
        data = workspace.context.store.get_webservice(workspace.context.workspace_id, name).data
        _write_keys(workspace, name, {**data, **op["target"]})
        _spawn(workspace, name, op)
    except Exception as err:
        message = f"{type(err).__name__}: {err}"
        failed = r.FAILED if previous_state in (r.TRANSITIONING, r.FAILED) else previous_state
        r.commit(
            workspace,
            name,
            str(op["id"]),
            state=failed,
            data={"error": {"message": message, "operation": op["type"]}}
            if failed == r.FAILED
            else {},
            operation={"status": r.OP_FAILED, "error": message, "endedTime": time.time()},
        )
        raise WebserviceException(
            f"Could not start the {op['type'].lower()} of service {name!r}: {message}", name=name
        ) from err


# ---------------------------------------------------------------------------------- deploy
def _exists_message(workspace: Workspace, name: str, existing: WebserviceRecord) -> str:
    """Why a deploy under a taken name is refused, and how to retry (a failed one especially)."""
    if existing.state != r.FAILED:
        return (
            f"A service named {name!r} already exists in workspace {workspace.name!r} "
            f"({existing.state}); pass overwrite=True to replace it, or choose another name."
        )
    reason = (existing.data.get("error") or {}).get("message") or "see service.get_logs()"
    reason = str(reason).rstrip(". ")
    return (
        f"A service named {name!r} already exists in workspace {workspace.name!r} and is Failed "
        f"({reason}). To retry, pass overwrite=True (the failed service is replaced), or fix it "
        f"in place with Webservice(ws, {name!r}).update(inference_config=...)."
    )


def deploy(
    workspace: Workspace,
    name: str,
    models: Sequence[Model] | None,
    inference_config: InferenceConfig | None = None,
    deployment_config: WebserviceDeploymentConfiguration | None = None,
    deployment_target: Any = None,
    overwrite: bool = False,
    show_output: bool = False,
) -> Webservice:
    """``Model.deploy``: validate, write the record, start the deployer, return the service
    (``Transitioning``). See :meth:`trainyard.core.model.Model.deploy`.

    Example::

        svc = deploy(ws, "svc", [model], InferenceConfig(entry_script="score.py"), None)
    """
    from trainyard._serving.auth import generate_key, hash_key
    from trainyard.core.webservice.webservice import service_from_record

    _check_name(name)
    if deployment_target is not None:
        raise WebserviceException(
            "deployment_target (an AKS cluster) is not supported; deploy with "
            "AciWebservice.deploy_configuration() or LocalWebservice.deploy_configuration()."
        )
    inference = _check_inference(inference_config)
    cfg = (
        deployment_config if deployment_config is not None else AciServiceDeploymentConfiguration()
    )
    if not isinstance(cfg, WebserviceDeploymentConfiguration):
        raise WebserviceException(
            f"deployment_config must come from AciWebservice.deploy_configuration() or "
            f"LocalWebservice.deploy_configuration(), not {type(cfg).__name__}."
        )
    cfg.validate_configuration()
    checked = _check_models(workspace, models)
    target: dict[str, Any] = {
        "computeType": cfg.webservice_type,
        "models": [mo.id for mo in checked],
        **_inference_target(inference),
        "deploymentConfig": cfg.to_dict(),
        "authEnabled": bool(getattr(cfg, "auth_enabled", False)),
    }
    store = workspace.context.store
    try:
        existing = store.get_webservice(workspace.context.workspace_id, name)
    except WebserviceException:
        existing = None
    if existing is not None:
        if not overwrite:
            raise WebserviceException(_exists_message(workspace, name, existing), name=name)
        delete(workspace, name)
    op = r.new_operation(r.OP_DEPLOY, 1, target)
    now = time.time()
    data: dict[str, Any] = {
        **target,
        "generation": None,
        "host": cfg.host,
        "port": None,
        "scoringUri": None,
        "swaggerUri": None,
        "server": None,
        "tags": {str(k): str(v) for k, v in (cfg.tags or {}).items()},
        "properties": {str(k): str(v) for k, v in (cfg.properties or {}).items()},
        "description": cfg.description or inference.description,
        "createdTime": now,
        "updatedTime": now,
        "error": None,
        "operation": op,
    }
    keys: tuple[str, str] | None = None
    if target["authEnabled"]:
        # The record keeps only the keys' hashes; the keys go to a 0600 file beside the service.
        keys = (
            getattr(cfg, "primary_key", None) or generate_key(),
            getattr(cfg, "secondary_key", None) or generate_key(),
        )
        data["primaryKeyHash"], data["secondaryKeyHash"] = hash_key(keys[0]), hash_key(keys[1])
    try:
        store.create_webservice(workspace.context.workspace_id, name, r.TRANSITIONING, data)
    except AlreadyExistsError:
        raise WebserviceException(
            f"A service named {name!r} was created by someone else just now.", name=name
        ) from None
    paths = m.ServicePaths(workspace.path, name)
    _remove_files(paths)  # leftovers of a service of this name that was never cleaned up
    if keys is not None:
        store.update_webservice(
            workspace.context.workspace_id,
            name,
            data=_keys.store_keys(workspace.path, name, *keys),
        )
    if show_output:
        print(f"Deploying service {name!r} ({cfg.webservice_type}): models {target['models']}")
    _start_operation(workspace, name, op, r.TRANSITIONING, target["inferenceConfig"])
    return service_from_record(
        workspace, workspace.context.store.get_webservice(workspace.context.workspace_id, name)
    )


# ---------------------------------------------------------------------------------- update
def _claim(service: Webservice, op: dict[str, Any], extra: dict[str, Any]) -> str:
    ws = service.workspace
    state = ws.context.store.get_webservice(ws.context.workspace_id, service.name).state
    if state in (r.TRANSITIONING, r.DELETING):
        raise WebserviceException(
            f"Service {service.name!r} is {state}; wait_for_deployment() before changing it.",
            name=service.name,
        )
    changed = ws.context.store.update_webservice(
        ws.context.workspace_id,
        service.name,
        state=r.TRANSITIONING,
        data={**extra, "operation": op, "updatedTime": time.time()},
        only_from=(state,),
    )
    if not changed:
        raise WebserviceException(
            f"Service {service.name!r} changed while this call ran; try again.", name=service.name
        )
    return state


def update(
    service: Webservice,
    models: Sequence[Model] | None,
    inference_config: InferenceConfig | None,
    deployment_config: WebserviceDeploymentConfiguration | None,
    tags: dict[str, Any] | None,
    properties: dict[str, Any] | None,
    description: str | None,
    auth_enabled: bool | None,
) -> None:
    """``Webservice.update`` (see its docstring)."""
    from trainyard._serving.auth import generate_key

    ws = service.workspace
    data = service.get_record().data
    meta: dict[str, Any] = {}
    if tags is not None:
        meta["tags"] = {str(k): str(v) for k, v in dict(tags).items()}
    if properties is not None:
        merged = dict(data.get("properties") or {})
        for k, v in dict(properties).items():
            if str(k) in merged and merged[str(k)] != str(v):
                raise WebserviceException(f"Property {k!r} exists and cannot be changed.")
            merged[str(k)] = str(v)
        meta["properties"] = merged
    if description is not None:
        meta["description"] = str(description)
    target = {k: data.get(k) for k in SPEC_KEYS}
    copy_from: Any = None
    redeploy = False
    if models is not None:
        target["models"] = [mo.id for mo in _check_models(ws, models)]
        redeploy = True
    if inference_config is not None:
        target.update(_inference_target(_check_inference(inference_config)))
        copy_from = target["inferenceConfig"]
        redeploy = True
    if deployment_config is not None:
        if not isinstance(deployment_config, WebserviceDeploymentConfiguration) or (
            deployment_config.webservice_type != service.compute_type
        ):
            raise WebserviceException(
                f"deployment_config must be a {service.compute_type} deployment configuration."
            )
        deployment_config.validate_configuration()
        target["deploymentConfig"] = deployment_config.to_dict()
        redeploy = True
    if auth_enabled is not None and bool(auth_enabled) != bool(data.get("authEnabled")):
        if service.compute_type == "Local":
            raise WebserviceException("LocalWebservice does not support key auth.")
        target["authEnabled"] = bool(auth_enabled)
        if auth_enabled and not (data.get("primaryKeyHash") or data.get("primaryKey")):
            meta.update(_keys.store_keys(ws.path, service.name, generate_key(), generate_key()))
        redeploy = True
    if not redeploy:
        if meta:
            ws.context.store.update_webservice(
                ws.context.workspace_id, service.name, data={**meta, "updatedTime": time.time()}
            )
        service.get_record()
        return
    paths = m.ServicePaths(ws.path, service.name)
    generation = _next_generation(paths)
    if copy_from is None:
        current = data.get("generation") or (data.get("operation") or {}).get("generation")
        copy_from = paths.generation(int(current)) if current else target["inferenceConfig"]
        if isinstance(copy_from, m.GenerationPaths) and not copy_from.app.is_dir():
            copy_from = target["inferenceConfig"]
    op = r.new_operation(r.OP_UPDATE, generation, target)
    previous = _claim(service, op, meta)
    _start_operation(ws, service.name, op, previous, copy_from)
    service.get_record()


def restart(service: Webservice, timeout_sec: float | None) -> None:
    """``Webservice.restart`` (see its docstring)."""
    ws = service.workspace
    service.reload()
    data = service.get_record(refresh=False).data
    generation = data.get("generation") or (data.get("operation") or {}).get("generation") or 1
    target = {k: data.get(k) for k in SPEC_KEYS}
    op = r.new_operation(r.OP_RESTART, int(generation), target)
    previous = _claim(service, op, {})
    _start_operation(ws, service.name, op, previous, None)
    service.wait_for_deployment(timeout_sec=timeout_sec)


# ---------------------------------------------------------------------------------- delete
def _remove_files(paths: m.ServicePaths) -> None:
    for gen in paths.generations():
        m.stop_generation(gen, _deployer.STOP_GRACE_S)
    shutil.rmtree(paths.root, ignore_errors=True)


def delete(workspace: Workspace, name: str) -> None:
    """``Webservice.delete``: stop everything, remove files, then the record (synchronous)."""
    from trainyard.core.webservice.webservice import fetch_record

    try:
        data = fetch_record(workspace, name).data
    except WebserviceNotFound:
        raise WebserviceNotFound(
            f"Webservice {name!r} does not exist in workspace {workspace.name!r}; it may already "
            "have been deleted.",
            name=name,
        ) from None
    store = workspace.context.store
    store.update_webservice(workspace.context.workspace_id, name, state=r.DELETING)
    op = data.get("operation") or {}
    deployer = ProcessId.from_dict(op.get("deployer"))
    if deployer is not None and deployer.alive():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            import os
            import signal

            os.kill(deployer.pid, signal.SIGTERM)
        if not wait_gone(deployer, DEPLOYER_GRACE_S):
            stop_process(deployer, 0.0)
    for entry in (data.get("server"), op.get("server")):
        ident = ProcessId.from_dict(entry)
        if ident is not None:
            stop_process(ident, _deployer.STOP_GRACE_S)
    _remove_files(m.ServicePaths(workspace.path, name))
    with contextlib.suppress(WebserviceException):
        store.delete_webservice(workspace.context.workspace_id, name)


# ---------------------------------------------------------------------------------- keys
def regen_key(service: Webservice, key: str, set_key: str | None) -> None:
    """``Webservice.regen_key`` (see its docstring)."""
    from trainyard._serving.auth import RELOAD_INTERVAL_S, generate_key

    ws = service.workspace
    if not service.get_record().data.get("authEnabled"):
        raise WebserviceException(
            f"Service {service.name!r} does not have key auth enabled (deploy it with "
            "auth_enabled=True to get keys).",
            name=service.name,
        )
    which = str(key).strip().lower()
    if which not in ("primary", "secondary"):
        raise WebserviceException(f"key must be 'Primary' or 'Secondary', not {key!r}.")
    if set_key is not None and (not isinstance(set_key, str) or not set_key.strip()):
        raise WebserviceException("set_key must be a non-empty string.")
    new = set_key if set_key is not None else generate_key()
    data = service.get_record().data
    try:
        primary, secondary = _keys.load_keys(ws.path, service.name, data)
    except WebserviceException:  # the keys are on another machine: both are replaced here
        primary, secondary = generate_key(), generate_key()
    if which == "primary":
        primary = new
    else:
        secondary = new
    fields = _keys.store_keys(ws.path, service.name, primary, secondary)
    ws.context.store.update_webservice(
        ws.context.workspace_id, service.name, data={**fields, "updatedTime": time.time()}
    )
    record = service.get_record()
    if record.state in (r.HEALTHY, r.TRANSITIONING, r.UNHEALTHY):
        # Each server process re-reads the keys file at most RELOAD_INTERVAL_S after a change.
        time.sleep(RELOAD_INTERVAL_S + 0.2)
