"""azureml.core.compute on amld."""
from amld.core.compute import *  # noqa: F401,F403
from amld.core.compute import __all__  # noqa: F401
