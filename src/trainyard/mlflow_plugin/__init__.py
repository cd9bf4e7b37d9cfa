"""MLflow plugin: ``MLFLOW_TRACKING_URI=trainyard:...`` makes MLflow calls land in a trainyard workspace.

MLflow finds the plugin through entry points (``mlflow.tracking_store``,
``mlflow.model_registry_store`` and ``mlflow.artifact_repository``, scheme ``trainyard`` /
``trainyard-artifacts``), so nobody imports this package by hand and trainyard never depends on
MLflow. The modules that import MLflow (:mod:`.store`, :mod:`.registry`, :mod:`.artifacts`) are loaded only by MLflow itself; this ``__init__`` imports
nothing.

Example::

    $ MLFLOW_TRACKING_URI=trainyard:///data/ws python train.py    # mlflow.log_metric → trainyard

URI forms, the record mapping and the supported MLflow versions are documented in
:mod:`trainyard.mlflow_plugin._uri`, :mod:`trainyard.mlflow_plugin._mapping` and ``ARCHITECTURE.md``.
"""

from __future__ import annotations
