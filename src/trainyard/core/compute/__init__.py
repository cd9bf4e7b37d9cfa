"""Compute targets (v1: ``azureml.core.compute``)."""

from trainyard.core.compute.ray_target import RayCompute, RayComputeAttachConfiguration
from trainyard.core.compute.target import (
    AmlCompute,
    AmlComputeProvisioningConfiguration,
    ComputeTarget,
    ComputeTargetProvisioningConfiguration,
    LocalCompute,
)
from trainyard.exceptions import ComputeTargetException

__all__ = [
    "AmlCompute",
    "AmlComputeProvisioningConfiguration",
    "ComputeTarget",
    "ComputeTargetException",
    "ComputeTargetProvisioningConfiguration",
    "LocalCompute",
    "RayCompute",
    "RayComputeAttachConfiguration",
]
