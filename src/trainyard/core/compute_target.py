"""v1 path ``azureml.core.compute_target``: ``ComputeTargetException`` lives here too."""

from trainyard.core.compute.target import ComputeTarget
from trainyard.exceptions import ComputeTargetException

__all__ = ["ComputeTarget", "ComputeTargetException"]
