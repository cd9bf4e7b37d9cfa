"""Deployment configurations: how and where a service runs (v1: ``deploy_configuration(...)``).

``AciServiceDeploymentConfiguration`` (from ``AciWebservice.deploy_configuration``) runs the service
as a local process with resource limits and optional key auth; ``LocalWebserviceDeploymentConfiguration``
(from ``LocalWebservice.deploy_configuration``) runs it on a chosen or free port without auth. Both
take trainyard's ``worker_count`` (scoring processes, each runs ``init()``), ``host`` (bind address,
127.0.0.1 by default) and ``max_request_bytes``.

Example::

    cfg = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, auth_enabled=True)
    cfg.to_dict()["cpuCores"]   # 1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from trainyard.core.webservice._options import ServerOptions
from trainyard.exceptions import WebserviceException

DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _str_dict(value: Mapping[str, Any] | None, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise WebserviceException(f"{what} must be a dict, not {type(value).__name__}.")
    return {str(k): str(v) for k, v in value.items()}


class WebserviceDeploymentConfiguration:
    """Base of the deployment configurations (v1 name); see the module docstring.

    Example::

        isinstance(AciWebservice.deploy_configuration(), WebserviceDeploymentConfiguration)
    """

    #: ``"ACI"`` or ``"Local"``: the service class a deployment with this configuration creates.
    webservice_type: ClassVar[str] = ""

    def __init__(
        self,
        *,
        worker_count: int = 1,
        host: str = "127.0.0.1",
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        tags: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        description: str | None = None,
        server_options: ServerOptions | None = None,
    ) -> None:
        self.worker_count = worker_count
        self.server_options = ServerOptions() if server_options is None else server_options
        self.host = host
        self.max_request_bytes = max_request_bytes
        self.tags = tags
        self.properties = properties
        self.description = description

    def validate_configuration(self) -> None:
        """Raise :class:`~trainyard.exceptions.WebserviceException` for an invalid value."""
        if not isinstance(self.worker_count, int) or isinstance(self.worker_count, bool):
            raise WebserviceException("Invalid configuration, worker_count must be an integer.")
        if self.worker_count < 1:
            raise WebserviceException("Invalid configuration, worker_count must be at least 1.")
        if not isinstance(self.host, str) or not self.host.strip():
            raise WebserviceException("Invalid configuration, host must be a non-empty string.")
        if not isinstance(self.max_request_bytes, int) or self.max_request_bytes < 1:
            raise WebserviceException(
                "Invalid configuration, max_request_bytes must be a positive integer."
            )
        if not isinstance(self.server_options, ServerOptions):
            raise WebserviceException(
                "Invalid configuration, server_options must be a ServerOptions "
                "(from trainyard.core.webservice import ServerOptions)."
            )
        _str_dict(self.tags, "tags")
        _str_dict(self.properties, "properties")
        if self.description is not None and not isinstance(self.description, str):
            raise WebserviceException("Invalid configuration, description must be a string.")

    @property
    def port(self) -> int | None:
        """The fixed port, or ``None`` for a free one."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON form kept in the service record (camelCase keys)."""
        return {
            "computeType": self.webservice_type,
            "workerCount": self.worker_count,
            "host": self.host,
            "maxRequestBytes": self.max_request_bytes,
            "port": self.port,
            "serverOptions": self.server_options.to_dict(),
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v is not None)
        return f"{type(self).__name__}({fields})"


class AciServiceDeploymentConfiguration(WebserviceDeploymentConfiguration):
    """What ``AciWebservice.deploy_configuration`` returns (v1 name).

    Defaults: 0.1 CPU, 0.5 GB as v1; key auth **on** unless ``auth_enabled=False`` is passed (v1's
    default was off: a service any local web page could call through DNS rebinding). Cloud-only settings (location, DNS label, app
    insights, model data collection, customer-managed keys, VNet) are accepted and recorded but do
    nothing here; ``ssl_enabled=True`` is refused (this service speaks plain HTTP on loopback; put a
    TLS-terminating proxy in front of it).

    Example::

        AciServiceDeploymentConfiguration(cpu_cores=1, memory_gb=1, auth_enabled=True)
    """

    webservice_type: ClassVar[str] = "ACI"

    def __init__(
        self,
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        tags: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        description: str | None = None,
        location: str | None = None,
        auth_enabled: bool | None = None,
        ssl_enabled: bool | None = None,
        enable_app_insights: bool | None = None,
        ssl_cert_pem_file: str | None = None,
        ssl_key_pem_file: str | None = None,
        ssl_cname: str | None = None,
        dns_name_label: str | None = None,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        collect_model_data: bool | None = None,
        cmk_vault_base_url: str | None = None,
        cmk_key_name: str | None = None,
        cmk_key_version: str | None = None,
        vnet_name: str | None = None,
        subnet_name: str | None = None,
        *,
        worker_count: int = 1,
        host: str = "127.0.0.1",
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        server_options: ServerOptions | None = None,
    ) -> None:
        super().__init__(
            worker_count=worker_count,
            host=host,
            max_request_bytes=max_request_bytes,
            tags=tags,
            properties=properties,
            description=description,
            server_options=server_options,
        )
        self.cpu_cores = 0.1 if cpu_cores is None else cpu_cores
        self.memory_gb = 0.5 if memory_gb is None else memory_gb
        self.location = location
        self.auth_enabled = True if auth_enabled is None else bool(auth_enabled)
        self.ssl_enabled = bool(ssl_enabled)
        self.enable_app_insights = bool(enable_app_insights)
        self.ssl_cert_pem_file = ssl_cert_pem_file
        self.ssl_key_pem_file = ssl_key_pem_file
        self.ssl_cname = ssl_cname
        self.dns_name_label = dns_name_label
        self.primary_key = primary_key
        self.secondary_key = secondary_key
        self.collect_model_data = collect_model_data
        self.cmk_vault_base_url = cmk_vault_base_url
        self.cmk_key_name = cmk_key_name
        self.cmk_key_version = cmk_key_version
        self.vnet_name = vnet_name
        self.subnet_name = subnet_name
        self.validate_configuration()

    def validate_configuration(self) -> None:
        """v1's checks (positive cores and memory, keys are strings) plus trainyard's."""
        super().validate_configuration()
        if not _number(self.cpu_cores) or self.cpu_cores <= 0:
            raise WebserviceException("Invalid configuration, cpu_cores must be greater than zero.")
        if not _number(self.memory_gb) or self.memory_gb <= 0:
            raise WebserviceException("Invalid configuration, memory_gb must be greater than zero.")
        for label, key in (
            ("primary_key", self.primary_key),
            ("secondary_key", self.secondary_key),
        ):
            if key is not None and (not isinstance(key, str) or not key.strip()):
                raise WebserviceException(
                    f"Invalid configuration, {label} must be a non-empty string."
                )
        if self.ssl_enabled:
            raise WebserviceException(
                "ssl_enabled=True is not supported: trainyard services speak plain HTTP on "
                "127.0.0.1; put a TLS-terminating proxy (nginx, caddy) in front to expose one."
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (keys never included: they live in the record's key fields)."""
        data = super().to_dict()
        data.update(
            {
                "cpuCores": self.cpu_cores,
                "memoryInGB": self.memory_gb,
                "authEnabled": self.auth_enabled,
                "location": self.location,
                "dnsNameLabel": self.dns_name_label,
                "enableAppInsights": self.enable_app_insights,
                "collectModelData": self.collect_model_data,
            }
        )
        return data


class LocalWebserviceDeploymentConfiguration(WebserviceDeploymentConfiguration):
    """What ``LocalWebservice.deploy_configuration`` returns (v1 name): a port (``None`` = a free
    one chosen by the kernel), no auth.

    Example::

        LocalWebserviceDeploymentConfiguration(port=8890)
    """

    webservice_type: ClassVar[str] = "Local"

    def __init__(
        self,
        port: int | None = None,
        *,
        worker_count: int = 1,
        host: str = "127.0.0.1",
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        server_options: ServerOptions | None = None,
    ) -> None:
        super().__init__(
            worker_count=worker_count,
            host=host,
            max_request_bytes=max_request_bytes,
            server_options=server_options,
        )
        self._port = port
        self.validate_configuration()

    @property
    def port(self) -> int | None:
        """The fixed port, or ``None`` for a free one."""
        return self._port

    def validate_configuration(self) -> None:
        """``port`` must be an integer in [1, 65535] (or ``None``)."""
        super().validate_configuration()
        port = self._port
        if port is not None and (
            not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535
        ):
            raise WebserviceException(
                f"Invalid configuration, port must be an integer in the range 1 to 65535, got {port!r}."
            )
