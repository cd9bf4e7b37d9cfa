"""The store relay: a submitted script's records go through its supervisor, not a database driver.

A run's supervisor serves its open tracking and artifact stores on a loopback socket
(:class:`StoreRelay`, standard-library ``multiprocessing.connection`` with a per-run secret); the
script's ``Run.get_context()`` talks to it through :class:`RelayConnection` and the relay stores
(:func:`relay_stores`). So the in-run client needs nothing beyond the Python standard library: no
SQLAlchemy, Alembic or database driver is installed into — or pinned in — a user's environment.

Example::

    relay = StoreRelay(ctx.store, ctx.artifacts, describe={...})   # in the supervisor
    env.update(relay.env)                                            # the script's environment
    stores = relay_stores(RelayConnection.from_env(os.environ))       # in the script
"""

from __future__ import annotations

from trainyard._store.relay.client import RelayConnection, RelayStores, relay_stores
from trainyard._store.relay.server import StoreRelay
from trainyard._store.relay.wire import RELAY_ADDRESS_VAR, RELAY_KEY_VAR

__all__ = [
    "RELAY_ADDRESS_VAR",
    "RELAY_KEY_VAR",
    "RelayConnection",
    "RelayStores",
    "StoreRelay",
    "relay_stores",
]
