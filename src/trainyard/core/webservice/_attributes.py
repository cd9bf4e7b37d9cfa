"""The attributes of a :class:`~trainyard.core.webservice.Webservice`, read from its record."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainyard.core.environment import Environment
    from trainyard.core.model import Model
    from trainyard.core.workspace import Workspace


class WebserviceAttributes:
    """v1's read-only service attributes over the record's data (``_data``), kept current by the
    service's reads of its record."""

    _data: dict[str, Any]
    _workspace: Workspace

    @property
    def compute_type(self) -> str:
        """``"ACI"`` or ``"Local"``."""
        return str(self._data.get("computeType"))

    @property
    def scoring_uri(self) -> str | None:
        """``http://127.0.0.1:<port>/score`` once the service has been healthy, else ``None``."""
        return self._data.get("scoringUri")

    @property
    def swagger_uri(self) -> str | None:
        """The OpenAPI document (``…/swagger.json``; needs the key when auth is on)."""
        return self._data.get("swaggerUri")

    @property
    def port(self) -> int | None:
        """The port the service listens on."""
        port = self._data.get("port")
        return int(port) if port is not None else None

    @property
    def tags(self) -> dict[str, str]:
        """Tags (mutable through :meth:`update`)."""
        return dict(self._data.get("tags") or {})

    @property
    def properties(self) -> dict[str, str]:
        """Properties (add-only through :meth:`update`)."""
        return dict(self._data.get("properties") or {})

    @property
    def description(self) -> str | None:
        """The description."""
        return self._data.get("description")

    @property
    def auth_enabled(self) -> bool:
        """Whether scoring needs ``Authorization: Bearer <key>``."""
        return bool(self._data.get("authEnabled"))

    @property
    def created_time(self) -> float | None:
        """Unix time of the first deployment."""
        return self._data.get("createdTime")

    @property
    def updated_time(self) -> float | None:
        """Unix time of the last change."""
        return self._data.get("updatedTime")

    @property
    def error(self) -> dict[str, Any] | None:
        """Why the service is ``Failed`` (``{"message", "operation"}``), else ``None``."""
        return self._data.get("error")

    @property
    def models(self) -> builtins.list[Model]:
        """The deployed model versions."""
        from trainyard.core.model import Model

        return [Model(self._workspace, id=str(i)) for i in self._data.get("models") or []]

    @property
    def environment(self) -> Environment | None:
        """The environment the service runs in."""
        from trainyard.core.environment import Environment

        env = self._data.get("environment")
        return Environment.from_dict(env) if env else None

    @property
    def inference_config(self) -> dict[str, Any]:
        """The inference configuration as deployed (serialised form)."""
        return dict(self._data.get("inferenceConfig") or {})
