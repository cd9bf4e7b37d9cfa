"""What the relay's two ends agree on: variable names, the calls allowed, the address format.

A request is ``(target, method, args, kwargs)`` with ``target`` one of ``"store"``, ``"artifacts"``
or ``"relay"``; the answer is ``(True, value)`` or ``(False, exception)``. Only the public methods
of the :class:`~trainyard._store.base.TrackingStore` seam and the byte-copying methods of the
:class:`~trainyard._store.artifacts.ArtifactStore` seam can be called (never ``close``).
"""

from __future__ import annotations

import inspect

from trainyard._store.base import TrackingStore
from trainyard.exceptions import ConfigError

#: The relay's ``host:port`` (loopback), set in a submitted script's environment.
RELAY_ADDRESS_VAR = "TRAINYARD_RUN_RELAY"
#: The relay's secret (hex): a client proves it holds it before any call (HMAC challenge).
RELAY_KEY_VAR = "TRAINYARD_RUN_RELAY_KEY"

#: Tracking-store methods a script may call through the relay.
STORE_METHODS: frozenset[str] = frozenset(
    name
    for name, member in inspect.getmembers(TrackingStore, inspect.isfunction)
    if not name.startswith("_") and name != "close"
)
#: Artifact-store methods a script may call through the relay (streams are copied as bytes).
ARTIFACT_METHODS: frozenset[str] = frozenset(
    {
        "write_file",
        "write_bytes",
        "read_bytes",
        "exists",
        "size",
        "list",
        "delete",
        "delete_prefix",
        "download",
        "link",
        "local_file",
        "uri",
    }
)
#: The relay's own calls.
RELAY_METHODS: frozenset[str] = frozenset({"describe"})


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
