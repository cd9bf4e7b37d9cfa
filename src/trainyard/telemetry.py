"""v1's ``azureml.telemetry``: trainyard collects no telemetry, so this accepts the calls and does nothing."""

from __future__ import annotations

from typing import Any


def set_diagnostics_collection(send_diagnostics: bool = True, *args: Any, **kwargs: Any) -> None:
    """Accepted for v1 notebooks; trainyard never sends diagnostics anywhere."""
    return None


def get_diagnostics_collection_info(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Always reports that nothing is collected."""
    return {"collecting": False}


__all__ = ["get_diagnostics_collection_info", "set_diagnostics_collection"]
