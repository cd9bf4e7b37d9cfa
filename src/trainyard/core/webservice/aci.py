"""``AciWebservice`` (v1: ``azureml.core.webservice.aci``): a service with resource limits and keys.

In v1 this was an Azure Container Instance. Here it is a local scoring process (see
:mod:`._manager`): CPU cores become a CPU affinity, memory a per-process ``RLIMIT_DATA``, and
key auth (on unless ``auth_enabled=False``; v1 had it off) requires ``Authorization: Bearer <key>``
on every scoring call.

Example::

    aciconfig = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, auth_enabled=True,
                                                   tags={"name": "mnist"}, description="MNIST")
    service = Model.deploy(ws, "chainer-mnist-1", [model], inference_config, aciconfig)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from trainyard.core.webservice._configs import AciServiceDeploymentConfiguration
from trainyard.core.webservice._options import ServerOptions
from trainyard.core.webservice.webservice import Webservice


class AciWebservice(Webservice):
    """A deployed ACI-style service (see the module docstring).

    Example::

        svc = AciWebservice(ws, "chainer-mnist-1")
        key1, key2 = svc.get_keys()
    """

    _webservice_type: ClassVar[str] = "ACI"

    @staticmethod
    def deploy_configuration(
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
        max_request_bytes: int = 10 * 1024 * 1024,
        server_options: ServerOptions | None = None,
    ) -> AciServiceDeploymentConfiguration:
        """A deployment configuration (defaults: 0.1 CPU, 0.5 GB, key auth on unless
        ``auth_enabled=False``). ``worker_count`` (scoring processes), ``host``,
        ``max_request_bytes`` and ``server_options`` (timeouts, accepted hosts and origins, log
        rotation: :class:`~trainyard.core.webservice.ServerOptions`) are trainyard's. Raises
        :class:`~trainyard.exceptions.WebserviceException` for invalid values.

        Example::

            AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, auth_enabled=True)
        """
        return AciServiceDeploymentConfiguration(
            cpu_cores=cpu_cores,
            memory_gb=memory_gb,
            tags=tags,
            properties=properties,
            description=description,
            location=location,
            auth_enabled=auth_enabled,
            ssl_enabled=ssl_enabled,
            enable_app_insights=enable_app_insights,
            ssl_cert_pem_file=ssl_cert_pem_file,
            ssl_key_pem_file=ssl_key_pem_file,
            ssl_cname=ssl_cname,
            dns_name_label=dns_name_label,
            primary_key=primary_key,
            secondary_key=secondary_key,
            collect_model_data=collect_model_data,
            cmk_vault_base_url=cmk_vault_base_url,
            cmk_key_name=cmk_key_name,
            cmk_key_version=cmk_key_version,
            vnet_name=vnet_name,
            subnet_name=subnet_name,
            worker_count=worker_count,
            host=host,
            max_request_bytes=max_request_bytes,
            server_options=server_options,
        )

    @property
    def cpu_cores(self) -> float | None:
        """Requested CPU cores."""
        return (self._data.get("deploymentConfig") or {}).get("cpuCores")

    @property
    def memory_gb(self) -> float | None:
        """Requested memory in GB."""
        return (self._data.get("deploymentConfig") or {}).get("memoryInGB")


__all__ = ["AciServiceDeploymentConfiguration", "AciWebservice"]
