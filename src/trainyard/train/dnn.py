"""Deep-learning estimators (v1: ``azureml.train.dnn``): ``Chainer``, ``PyTorch``, ``TensorFlow``.

Each maps its framework version onto a release that installs on this Python (aml-reference §6.4):

=========== ========================== ==============================================
estimator   supported here             v1 versions accepted (mapped, recorded in details)
=========== ========================== ==============================================
Chainer     7.8.1                      5.1.0, 7.0.0
PyTorch     2.13.0                     1.0 … 1.6
TensorFlow  2.21.0                     1.10, 1.12, 1.13, 2.0, 2.1, 2.2
=========== ========================== ==============================================

``use_gpu=True`` on a target without GPUs is an error at submit (not a silent CPU fallback).
"""

from __future__ import annotations

from typing import Any, ClassVar

from trainyard.core.runconfig import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
from trainyard.train.estimator import Estimator


class Chainer(Estimator):
    """Chainer 7.8.1 with the pins that install and train on Python 3.11 (NumPy < 2,
    setuptools < 74, protobuf < 4); CuPy is added when ``use_gpu=True``.

    Example::

        est = Chainer(source_directory="./chainer-mnist", entry_script="chainer_mnist.py",
                      script_params={"--epochs": 10, "--batchsize": 128, "--output_dir": "./outputs"},
                      compute_target="local")
    """

    _framework_name = "Chainer"
    _supported: ClassVar[tuple[str, ...]] = ("7.8.1",)
    _aliases: ClassVar[dict[str, str]] = {"5.1.0": "7.8.1", "7.0.0": "7.8.1", "7.8": "7.8.1"}

    def _framework_packages(self) -> list[str]:
        from trainyard._execution.environments.curated import CHAINER_GPU_EXTRA, CHAINER_PINS

        return list(CHAINER_PINS) + (list(CHAINER_GPU_EXTRA) if self.use_gpu else [])


class PyTorch(Estimator):
    """PyTorch pinned to 2.13.0 (the CPU wheel where pip's find-links provides it)."""

    _framework_name = "PyTorch"
    _supported: ClassVar[tuple[str, ...]] = ("2.13.0",)
    _aliases: ClassVar[dict[str, str]] = {v: "2.13.0" for v in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "2.13")}

    def _framework_packages(self) -> list[str]:
        from trainyard._execution.environments.curated import PYTORCH_PINS

        return list(PYTORCH_PINS)


class TensorFlow(Estimator):
    """TensorFlow (CPU build) at the newest release that installs here."""

    _framework_name = "TensorFlow"
    _supported: ClassVar[tuple[str, ...]] = ("2.21.0",)
    _aliases: ClassVar[dict[str, str]] = {v: "2.21.0" for v in ("1.10", "1.12", "1.13", "2.0", "2.1", "2.2", "2.21")}

    def __init__(self, source_directory: Any, *, worker_count: int = 1, parameter_server_count: int = 1, **kwargs: Any) -> None:
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count
        super().__init__(source_directory, **kwargs)

    def _framework_packages(self) -> list[str]:
        return [f"tensorflow{'' if self.use_gpu else '-cpu'}=={self.framework_version}"]


def Mpi(process_count_per_node: int = 1) -> MpiConfiguration:
    """Deprecated v1 form of ``MpiConfiguration``."""
    return MpiConfiguration(process_count_per_node=process_count_per_node)


def Nccl() -> PyTorchConfiguration:
    """Deprecated v1 alias of ``PyTorchConfiguration(communication_backend='Nccl')``."""
    return PyTorchConfiguration(communication_backend="Nccl")


def Gloo() -> PyTorchConfiguration:
    """Deprecated v1 alias of ``PyTorchConfiguration(communication_backend='Gloo')``."""
    return PyTorchConfiguration(communication_backend="Gloo")


def ParameterServer(worker_count: int = 1, parameter_server_count: int = 1) -> TensorflowConfiguration:
    """Deprecated v1 alias of ``TensorflowConfiguration``."""
    return TensorflowConfiguration(worker_count=worker_count, parameter_server_count=parameter_server_count)


__all__ = ["Chainer", "Gloo", "Mpi", "Nccl", "ParameterServer", "PyTorch", "TensorFlow"]
