"""Deep-learning estimators (v1: ``azureml.train.dnn``): ``Chainer``, ``PyTorch``, ``TensorFlow``.

Each resolves its ``framework_version`` through the release table
:data:`trainyard._execution.environments.frameworks.FRAMEWORKS` (aml-reference §6.4): a version
that installs on this Python is honoured; a v1 version that cannot is mapped to the nearest release
that does, with a :class:`UserWarning`, and ``frameworkInfo`` records both.

=========== ======================= =================================================================
estimator   installs here           v1 versions mapped (why)
=========== ======================= =================================================================
Chainer     5.1.0, 7.0.0, 7.8.1     none; ``use_gpu=True`` needs 7.8.1 (CuPy 5/7 do not install)
            (default 7.8.1)
PyTorch     2.13.0 (default, CPU    1.0 … 1.6 → 2.13.0 (no wheels for Python 3.11); ``use_gpu=True``
            wheel), 2.14.1 (+       needs 2.14.1 (the 2.13.0 wheel here is the CPU build)
            torchvision 0.29.1)
TensorFlow  2.21.0                  1.10, 1.12, 1.13, 2.0, 2.1, 2.2 → 2.21.0
=========== ======================= =================================================================

The framework constraint table adds what each needs beside it (NumPy < 1.24 by default, NumPy < 2
and setuptools < 74 always for Chainer, …). ``use_gpu=True`` on a target without GPUs is an error
at submit (not a silent CPU fallback).
"""

from __future__ import annotations

from typing import Any

from trainyard.core.runconfig import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
from trainyard.train.estimator import Estimator


class Chainer(Estimator):
    """Chainer at the requested release (5.1.0, 7.0.0 or 7.8.1; 7.8.1 by default), with CuPy when
    ``use_gpu=True`` and mpi4py when distributed training is asked for (ChainerMN).

    Example::

        est = Chainer(source_directory="./chainer-mnist", entry_script="chainer_mnist.py",
                      script_params={"--epochs": 10, "--batchsize": 128, "--output_dir": "./outputs"},
                      compute_target="local", framework_version="5.1.0")
    """

    _framework_name = "Chainer"

    def _framework_packages(self) -> list[str]:
        # v1's Chainer images carried mpi4py for ChainerMN; only MPI jobs need it here (its wheel
        # installs without Open MPI, but running MPI needs it).
        return super()._framework_packages() + (["mpi4py"] if self._wants_mpi() else [])


class PyTorch(Estimator):
    """PyTorch 2.13.0 (the CPU wheel where pip's find-links provides it) or 2.14.1 with
    torchvision 0.29.1.

    Example::

        est = PyTorch(source_directory="./pytorch-mnist", entry_script="pytorch_mnist.py",
                      compute_target="local")
    """

    _framework_name = "PyTorch"


class TensorFlow(Estimator):
    """TensorFlow (CPU build) at the newest release that installs here."""

    _framework_name = "TensorFlow"

    def __init__(
        self,
        source_directory: Any,
        *,
        worker_count: int = 1,
        parameter_server_count: int = 1,
        **kwargs: Any,
    ) -> None:
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count
        super().__init__(source_directory, **kwargs)


def Mpi(process_count_per_node: int = 1) -> MpiConfiguration:
    """Deprecated v1 form of ``MpiConfiguration``."""
    return MpiConfiguration(process_count_per_node=process_count_per_node)


def Nccl() -> PyTorchConfiguration:
    """Deprecated v1 alias of ``PyTorchConfiguration(communication_backend='Nccl')``."""
    return PyTorchConfiguration(communication_backend="Nccl")


def Gloo() -> PyTorchConfiguration:
    """Deprecated v1 alias of ``PyTorchConfiguration(communication_backend='Gloo')``."""
    return PyTorchConfiguration(communication_backend="Gloo")


def ParameterServer(
    worker_count: int = 1, parameter_server_count: int = 1
) -> TensorflowConfiguration:
    """Deprecated v1 alias of ``TensorflowConfiguration``."""
    return TensorflowConfiguration(
        worker_count=worker_count, parameter_server_count=parameter_server_count
    )


__all__ = ["Chainer", "Gloo", "Mpi", "Nccl", "ParameterServer", "PyTorch", "TensorFlow"]
