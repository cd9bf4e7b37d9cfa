"""Small helpers shared by the SQL store's modules."""

from __future__ import annotations

import json
from typing import Any


def _dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, sort_keys=True, default=str)


def _loads(raw: str | None, default: Any = None) -> Any:
    return default if raw is None else json.loads(raw)
