"""``LocalWebservice`` (v1: ``azureml.core.webservice.local``): a service on a chosen or free port.

In v1 this needed Docker; here it is a plain local process (see :mod:`._manager`), with no resource
limits and no auth.

Example::

    config = LocalWebservice.deploy_configuration(port=8890)
    service = Model.deploy(ws, "mnist-local", [model], inference_config, config)
    service.wait_for_deployment()
    service.run('{"data": [0]}')
"""

from __future__ import annotations

from typing import ClassVar

from trainyard.core.webservice._configs import LocalWebserviceDeploymentConfiguration
from trainyard.core.webservice._options import ServerOptions
from trainyard.core.webservice.webservice import Webservice


class LocalWebservice(Webservice):
    """A deployed local service (see the module docstring).

    Example::

        svc = LocalWebservice(ws, "mnist-local")
        svc.port
    """

    _webservice_type: ClassVar[str] = "Local"

    @staticmethod
    def deploy_configuration(
        port: int | None = None,
        *,
        worker_count: int = 1,
        host: str = "127.0.0.1",
        max_request_bytes: int = 10 * 1024 * 1024,
        server_options: ServerOptions | None = None,
    ) -> LocalWebserviceDeploymentConfiguration:
        """A deployment configuration: ``port`` in [1, 65535] or ``None`` for a free one, else
        :class:`~trainyard.exceptions.WebserviceException`. A port in use makes the deployment
        ``Failed`` with the bind error. ``server_options``: timeouts, accepted hosts and origins,
        log rotation (:class:`~trainyard.core.webservice.ServerOptions`).

        Example::

            LocalWebservice.deploy_configuration(port=8890)
        """
        return LocalWebserviceDeploymentConfiguration(
            port=port,
            worker_count=worker_count,
            host=host,
            max_request_bytes=max_request_bytes,
            server_options=server_options,
        )

    def delete(self, delete_cache: bool = True, delete_image: bool = False) -> None:
        """Stop the service and remove it (v1's ``delete_cache`` / ``delete_image`` are accepted;
        there is no image, and the environment cache is shared, so it stays).

        Example::

            service.delete()
        """
        super().delete()


__all__ = ["LocalWebservice", "LocalWebserviceDeploymentConfiguration"]
