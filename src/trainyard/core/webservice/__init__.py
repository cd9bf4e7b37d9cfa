"""Web services: registered models behind REST endpoints (v1: ``azureml.core.webservice``).

``Model.deploy(ws, name, models, inference_config, deployment_config)`` starts a scoring service as
a local process (``python -m trainyard._serving``) and returns an :class:`AciWebservice` or
:class:`LocalWebservice`; ``Webservice(ws, name)``, ``Webservice.list(ws)`` and ``ws.webservices``
find them again.

Example::

    from trainyard.core.model import InferenceConfig, Model
    from trainyard.core.webservice import AciWebservice, Webservice
    cfg = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, auth_enabled=True)
    service = Model.deploy(ws, "chainer-mnist-1", [model], InferenceConfig(...), cfg)
    service.wait_for_deployment(show_output=True)
    print(service.run('{"data": [0]}'))
"""

from __future__ import annotations

from trainyard.core.inference_config import InferenceConfig
from trainyard.core.webservice._configs import (
    AciServiceDeploymentConfiguration,
    LocalWebserviceDeploymentConfiguration,
    WebserviceDeploymentConfiguration,
)
from trainyard.core.webservice._options import ServerOptions
from trainyard.core.webservice._package import ModelPackage
from trainyard.core.webservice.aci import AciWebservice
from trainyard.core.webservice.local import LocalWebservice
from trainyard.core.webservice.webservice import Webservice

__all__ = [
    "AciServiceDeploymentConfiguration",
    "AciWebservice",
    "InferenceConfig",
    "LocalWebservice",
    "LocalWebserviceDeploymentConfiguration",
    "ModelPackage",
    "ServerOptions",
    "Webservice",
    "WebserviceDeploymentConfiguration",
]
