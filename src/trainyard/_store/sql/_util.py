"""What the SQL store's modules share: JSON columns and the engine-holding base class."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from trainyard._store.sql.engine import run_in_transaction


def _dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, sort_keys=True, default=str)


def _loads(raw: str | None, default: Any = None) -> Any:
    return default if raw is None else json.loads(raw)


class SqlBase:
    """Holds the engine; every aggregate module of the SQL store derives from it."""

    url: str
    engine: Engine

    def _tx(self, fn: Callable[[Any], Any], write: bool = True) -> Any:
        return run_in_transaction(self.engine, fn, write=write)
