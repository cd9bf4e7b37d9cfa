"""What the relay's two ends agree on: variable names, the calls served, the message format.

Messages are JSON (``Connection.send_bytes``; nothing is ever unpickled). A request is
``{"target", "method", "args"}`` with ``args`` by name, encoded by
:mod:`trainyard._store.rest.codec` against the :class:`~trainyard._store.base.TrackingStore`
signatures — the very operation table of the REST protocol (:data:`OPERATIONS`), so the relay
serves exactly the calls a team server serves. The answer is ``{"result": …}`` or
``{"error": {"code", "message", "details"}}`` (the exception tree's wire form). Artifact calls
(for a remote workspace's files) have their own small table, :data:`ARTIFACT_CALLS`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainyard._store.rest.codec import decode, encode
from trainyard._store.rest.protocol import OPERATIONS
from trainyard.exceptions import ConfigError, StoreError, TrainyardError

#: The relay's ``host:port`` (loopback), set in a submitted script's environment.
RELAY_ADDRESS_VAR = "TRAINYARD_RUN_RELAY"
#: The relay's secret (hex): a client proves it holds it before any call (HMAC challenge).
RELAY_KEY_VAR = "TRAINYARD_RUN_RELAY_KEY"

#: Tracking-store methods served (those of the REST protocol; never ``close``).
STORE_METHODS: frozenset[str] = frozenset(OPERATIONS)
#: Artifact-store methods served: name → (argument name → type, result type).
ARTIFACT_CALLS: dict[str, tuple[dict[str, Any], Any]] = {
    "write_file": ({"path": str, "local_path": str, "overwrite": bool}, int),
    "write_bytes": ({"path": str, "data": bytes, "overwrite": bool}, int),
    "read_bytes": ({"path": str}, bytes),
    "exists": ({"path": str}, bool),
    "size": ({"path": str}, int),
    "list": ({"prefix": str}, list[str]),
    "delete": ({"path": str}, None),
    "delete_prefix": ({"prefix": str}, int),
    "download": ({"path": str, "dest": str}, str),
    "link": ({"src": str, "dst": str}, None),
    "local_file": ({"path": str}, str | None),
    "uri": ({"path": str}, str),
}
#: The relay's own calls: ``describe`` answers what a client needs to open its context.
RELAY_CALLS: dict[str, tuple[dict[str, Any], Any]] = {"describe": ({}, dict[str, Any])}


def arg_types(target: str, method: str) -> tuple[dict[str, Any], Any]:
    """(argument name → type, result type) of a served call; ``StoreError`` for any other."""
    if target == "store" and method in OPERATIONS:
        op = OPERATIONS[method]
        return {p.name: p.annotation for p in op.params}, op.result
    table = {"artifacts": ARTIFACT_CALLS, "relay": RELAY_CALLS}.get(target, {})
    if method in table:
        return table[method]
    raise StoreError(f"The store relay does not serve {target}.{method}().")


def dumps_request(target: str, method: str, args: dict[str, Any]) -> bytes:
    """A request's bytes (arguments encoded by name)."""
    payload = {"target": target, "method": method, "args": {k: _plain(v) for k, v in args.items()}}
    return json.dumps(payload).encode()


def loads_request(raw: bytes) -> tuple[str, str, dict[str, Any]]:
    """(target, method, decoded arguments); ``StoreError`` for anything malformed or not served."""
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("args"), dict):
        raise StoreError("The store relay got a malformed request.")
    target, method = str(payload.get("target")), str(payload.get("method"))
    types_, _ = arg_types(target, method)
    args: dict[str, Any] = {}
    for name, value in payload["args"].items():
        if name not in types_:
            raise StoreError(f"{target}.{method}() takes no argument {name!r}.")
        args[name] = decode(types_[name], value)
    return target, method, args


def dumps_result(value: Any) -> bytes:
    """An answer's bytes."""
    return json.dumps({"result": _plain(value)}).encode()


def dumps_error(err: BaseException) -> bytes:
    """A failure's bytes: trainyard's errors as they are, anything else as a StoreError."""
    if not isinstance(err, TrainyardError):
        err = StoreError(f"The run's store failed: {type(err).__name__}: {err}")
    try:
        return json.dumps({"error": _plain(err.to_dict())}).encode()
    except (TypeError, ValueError, TrainyardError):
        return json.dumps({"error": {"code": err.code, "message": err.message}}).encode()


def loads_answer(raw: bytes, result_type: Any) -> Any:
    """The decoded result; the error it carries is raised."""
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict):
        raise StoreError("The run's supervisor sent a malformed answer.")
    if isinstance(payload.get("error"), dict):
        raise TrainyardError.from_dict(payload["error"])
    if result_type is None or result_type is type(None):
        return None
    return decode(result_type, payload.get("result"))


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else encode(value)


def parse_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:43121"`` → ``("127.0.0.1", 43121)``; ``ConfigError`` naming the variable."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"{RELAY_ADDRESS_VAR}={text!r} is not host:port. It is set by a run's supervisor; "
            "unset it outside a submitted run."
        )
    return host, int(port)


def parse_key(text: str) -> bytes:
    """The relay secret from its hex form; ``ConfigError`` naming the variable."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ConfigError(
            f"{RELAY_KEY_VAR} is not a relay secret (hex, 16+ bytes). It is set by a run's "
            "supervisor; unset it outside a submitted run."
        )
    return key
