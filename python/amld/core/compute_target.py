"""azureml.core.compute_target on amld: where ComputeTargetException is imported from.

Samples write ``from azureml.core.compute_target import ComputeTargetException``;
the classes themselves are in :mod:`amld.core.compute`.
"""

from amld.exceptions import ComputeTargetException

__all__ = ["ComputeTargetException"]
